// Errors of `fastify-observability/sdk` and `/register`. They stop a process at start-up, where Node
// prints them as they are: plain Error subclasses with a stable `code` (FST_OBSERVABILITY_*, like the
// plugin's @fastify/error ones), whose printed form is `Name: message` and nothing Fastify-specific.

/** Invalid configuration (options or OTEL_* variables): ONE error listing every problem. */
export class TelemetryConfigError extends Error {
  readonly code = 'FST_OBSERVABILITY_INVALID_TELEMETRY_CONFIG'
  readonly issues: string[]
  constructor (issues: string[]) {
    super(`fastify-observability: invalid telemetry configuration: ${issues.join('; ')}`)
    this.name = 'TelemetryConfigError'
    this.issues = issues
  }
}

/** An OpenTelemetry SDK package `./sdk` or `./register` needs is not installed. */
export class TelemetryPackageMissingError extends Error {
  readonly code = 'FST_OBSERVABILITY_SDK_MISSING'
  /** The package that is missing. */
  readonly packageName: string
  constructor (who: string, packageName: string, install: string) {
    super(`fastify-observability: ${who} needs ${packageName}, which is not installed: npm install ${install}`)
    this.name = 'TelemetryPackageMissingError'
    this.packageName = packageName
  }
}
