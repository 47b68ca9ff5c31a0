'use strict'

const neostandard = require('neostandard')

module.exports = [
  ...neostandard({
    ts: true,
    // neostandard's `ts` covers *.ts only; the ESM/CJS TypeScript entries and fixtures are .mts/.cts
    filesTs: ['**/*.mts', '**/*.cts'],
    ignores: [
      'dist/**',
      'coverage/**',
      '.tap/**',
      '.scratch/**',
      'node_modules/**',
      'benchmarks/results/**',
      '.ci/node24/**',
    ],
  }),
  {
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    rules: {
      // tsc reports real redeclarations itself; the rule misfires on the const + namespace merge that types/index.d.ts uses for `export =`
      '@typescript-eslint/no-redeclare': 'off',
    },
  },
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a flush started from a signal handler)
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
]
