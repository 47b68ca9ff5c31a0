// Where spans go: the OTLP and Jaeger exporter settings, resolved from options over OTEL_* variables
// and validated up front, so a bad endpoint stops start-up instead of losing every span later.
import type { JaegerOptions, OtlpOptions, OtlpProtocol, ResolvedTelemetryConfig, TelemetryOptions } from './options'
import { checkHttpUrl, envString, firstSet, quote } from './env'

export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc']

/** The Jaeger exporter's constructor config (exporter-jaeger's ExporterConfig, the fields used). */
export interface JaegerExporterConfig extends Omit<JaegerOptions, 'endpoint' | 'host' | 'port'> {
  endpoint?: string
  host?: string
  port?: number
}

export function resolveOtlp (options: TelemetryOptions, env: NodeJS.ProcessEnv, issues: string[]): { otlp: NonNullable<ResolvedTelemetryConfig['otlp']>, otlpOptions: OtlpOptions } {
  let protocol: OtlpProtocol = 'http/protobuf'
  const protoSource = firstSet<string>(
    ['options.otlp.protocol', options.otlp?.protocol],
    ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL')])
  if (protoSource !== undefined) {
    if ((OTLP_PROTOCOLS as readonly string[]).includes(protoSource[1])) {
      protocol = protoSource[1] as OtlpProtocol
    } else {
      issues.push(`${protoSource[0]}=${quote(protoSource[1])} is not a supported OTLP protocol (expected one of ${OTLP_PROTOCOLS.join(', ')})`)
    }
  }
  let url: string
  let urlSource: string
  const specific = envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
  const generic = envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT')
  if (options.otlp?.endpoint !== undefined) {
    url = options.otlp.endpoint
    urlSource = 'options.otlp.endpoint'
  } else if (specific !== undefined) {
    url = specific
    urlSource = 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
  } else if (generic !== undefined) {
    urlSource = 'OTEL_EXPORTER_OTLP_ENDPOINT'
    const bad = checkHttpUrl(generic, urlSource)
    if (bad !== undefined) issues.push(bad)
    // The spec's rule: the generic endpoint is a base URL, the signal's path is appended (not for grpc).
    url = protocol === 'grpc' ? generic : generic.replace(/\/+$/, '') + '/v1/traces'
  } else {
    url = protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318/v1/traces'
    urlSource = 'default'
  }
  if (urlSource !== 'OTEL_EXPORTER_OTLP_ENDPOINT') {
    const bad = checkHttpUrl(url, urlSource)
    if (bad !== undefined) issues.push(bad)
  }
  return { otlp: { protocol, url }, otlpOptions: { ...options.otlp, protocol, endpoint: url } }
}

export function resolveJaeger (options: TelemetryOptions, env: NodeJS.ProcessEnv, issues: string[]): { jaeger: NonNullable<ResolvedTelemetryConfig['jaeger']>, jaegerConfig: JaegerExporterConfig, jaegerForceUdp: boolean } {
  const o = options.jaeger ?? {}
  const optionsWantUdp = o.endpoint === undefined && (o.host !== undefined || o.port !== undefined)
  const endpoint = o.endpoint ?? (optionsWantUdp ? undefined : envString(env, 'OTEL_EXPORTER_JAEGER_ENDPOINT'))
  const jaegerConfig: JaegerExporterConfig = {
    username: o.username,
    password: o.password,
    maxPacketSize: o.maxPacketSize,
    flushTimeout: o.flushTimeout,
    tags: o.tags
  }
  if (endpoint !== undefined) {
    const source = o.endpoint !== undefined ? 'options.jaeger.endpoint' : 'OTEL_EXPORTER_JAEGER_ENDPOINT'
    const bad = checkHttpUrl(endpoint, source)
    if (bad !== undefined) issues.push(bad)
    jaegerConfig.endpoint = endpoint
    return { jaeger: { transport: 'http', endpoint }, jaegerConfig, jaegerForceUdp: false }
  }
  const host = o.host ?? envString(env, 'OTEL_EXPORTER_JAEGER_AGENT_HOST') ?? 'localhost'
  let port = 6832
  if (o.port !== undefined) {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      issues.push(`options.jaeger.port=${quote(o.port)} is not a valid port (1-65535)`)
    } else port = o.port
  } else {
    const raw = envString(env, 'OTEL_EXPORTER_JAEGER_AGENT_PORT')
    if (raw !== undefined) {
      const n = Number(raw)
      if (!/^\d+$/.test(raw) || n < 1 || n > 65535) {
        issues.push(`OTEL_EXPORTER_JAEGER_AGENT_PORT=${quote(raw)} is not a valid port (1-65535)`)
      } else port = n
    }
  }
  jaegerConfig.host = host
  jaegerConfig.port = port
  return { jaeger: { transport: 'udp', host, port }, jaegerConfig, jaegerForceUdp: true }
}
