// The resource every span carries: service.name/version from options, OTEL_* variables or the npm
// package, over what the resource detectors find.
import type { Attributes } from '@opentelemetry/api'
import type { Resource, ResourceDetector, TelemetryOptions } from './options'
import { envString, withEnv } from './env'
import { autoInstrumentations } from './instrumentations'
import { requireFromSdk } from './packages'

/** The part of @opentelemetry/resources used here (the same in 2.x and 3.x). */
interface Resources {
  defaultResource (): Resource
  resourceFromAttributes (attributes: Attributes): Resource
  detectResources (config: { detectors: ResourceDetector[] }): Resource
  envDetector: ResourceDetector
  hostDetector: ResourceDetector
  processDetector: ResourceDetector
}

function detectorsFor (options: TelemetryOptions, env: NodeJS.ProcessEnv, r: Resources): ResourceDetector[] {
  if (options.resourceDetectors) return options.resourceDetectors
  const raw = envString(env, 'OTEL_NODE_RESOURCE_DETECTORS')
  // Unset: the cheap local ones. Set: exactly what the SDK's own reader makes of it (cloud
  // detectors included); it reads process.env, hence withEnv when options.env is another object.
  if (raw === undefined) return [r.envDetector, r.processDetector, r.hostDetector]
  const normalized = raw.split(',').map(s => s.trim()).join(',')
  return withEnv({ OTEL_NODE_RESOURCE_DETECTORS: normalized }, () => autoInstrumentations().getResourceDetectors())
}

export function buildResource (options: TelemetryOptions, env: NodeJS.ProcessEnv): Resource {
  const r = requireFromSdk<Resources>('@opentelemetry/resources', 'the resource')
  const fallback: Attributes = {}
  const pkgName = envString(env, 'npm_package_name')
  const pkgVersion = envString(env, 'npm_package_version')
  if (pkgName !== undefined) fallback['service.name'] = pkgName
  if (pkgVersion !== undefined) fallback['service.version'] = pkgVersion

  const explicit: Attributes = { ...options.resourceAttributes }
  const envServiceName = envString(env, 'OTEL_SERVICE_NAME')
  if (options.serviceName !== undefined) explicit['service.name'] = options.serviceName
  else if (envServiceName !== undefined) explicit['service.name'] = envServiceName
  if (options.serviceVersion !== undefined) explicit['service.version'] = options.serviceVersion

  return r.defaultResource()
    .merge(r.resourceFromAttributes(fallback))
    .merge(r.detectResources({ detectors: detectorsFor(options, env, r) }))
    .merge(r.resourceFromAttributes(explicit))
}
