// Spans the batch span processor drops because its queue is full, counted. The SDK drops them with
// a diag message only (off by default) and keeps its count private, so the queue's length is
// mirrored from outside, through public methods only. Read from sdk-trace's BatchSpanProcessorBase
// (2.x): onEnd queues a span only if it is sampled and shutdown() has not been called, and drops it
// when maxQueueSize spans are already queued; spans leave the queue only in the batches it hands to
// the exporter. So the processor is wrapped to count sampled spans in, its exporter to count
// batches out, and a span that finds the mirror full is one the processor drops.
//
// One gap: while the resource still has asynchronous attributes to settle (host.id, before the
// first export), a batch leaves the queue a few microtasks before it reaches the exporter; a span
// ending in between on a full queue would be counted though the processor queued it.
import type { SpanExporter, SpanProcessor } from './options'
import type { LossWarning, SpanLoss } from './span-loss'

/** TraceFlags.SAMPLED of @opentelemetry/api (a const enum there). */
const SAMPLED = 1

/**
 * The processor `makeProcessor` builds around `exporter`, told its queue holds `capacity` spans
 * (the mirror and the processor use the same number), with its queue-full drops counted in `loss`.
 */
export function watchQueue (exporter: SpanExporter, capacity: number, makeProcessor: (exporter: SpanExporter, maxQueueSize: number) => SpanProcessor,
  endpoint: string, loss: SpanLoss, warn: LossWarning): SpanProcessor {
  let queued = 0
  let shutDown = false
  const dequeuing: SpanExporter = {
    export (spans, done) {
      queued = Math.max(0, queued - spans.length)
      exporter.export(spans, done)
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: exporter.forceFlush === undefined ? undefined : () => (exporter.forceFlush as () => Promise<void>)()
  }
  const processor = makeProcessor(dequeuing, capacity)
  const watched: SpanProcessor = {
    onStart: (span, parentContext) => processor.onStart(span, parentContext),
    onEnd (span) {
      // Counted before the processor sees it: a span that fills a batch is exported synchronously
      // from its onEnd, and the batch taken out must include it.
      if (!shutDown && (span.spanContext().traceFlags & SAMPLED) !== 0) {
        if (queued < capacity) queued++
        else {
          loss.droppedSpans++
          warn('FST_OBSERVABILITY_SPANS_DROPPED', `spans dropped: the batch span processor's queue for ${endpoint} is full ` +
            `(maxQueueSize ${capacity}): spans end faster than they are exported (collector slow or unreachable)`)
        }
      }
      processor.onEnd(span)
    },
    forceFlush: () => processor.forceFlush(),
    shutdown () {
      shutDown = true
      return processor.shutdown()
    }
  }
  // A hook later SDK versions may give processors: passed on when the processor has it.
  const onEnding = (processor as { onEnding?: (span: unknown) => void }).onEnding
  if (typeof onEnding === 'function') (watched as { onEnding?: (span: unknown) => void }).onEnding = (span) => onEnding.call(processor, span)
  return watched
}
