import { telemetry } from '@livekit/agents';
import type { OTLPTraceExporter as OTLPTraceExporterType } from '@opentelemetry/exporter-trace-otlp-proto';
import type { resourceFromAttributes as ResourceFromAttributes } from '@opentelemetry/resources';
import type {
  BatchSpanProcessor as BatchSpanProcessorType,
  NodeTracerProvider as NodeTracerProviderType,
} from '@opentelemetry/sdk-trace-node';
import { createRequire } from 'node:module';

/**
 * OpenTelemetry traces of agents-js's own spans (agent session, user and agent turns, LLM, TTS,
 * end of turn, with `lk.e2e_latency` and friends), exported over OTLP/HTTP (protobuf) when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter
 * reads the standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout) itself.
 *
 * Without the conversation: agents-js marks what a caller said, the replies, the instructions and
 * the participants' identities as PII (`lk.pii.*`, gen_ai messages) and strips them before export
 * unless told otherwise, but its own default is to allow them. Here they stay out unless the
 * operator opts in (`allowContent`, from LIVEKIT_TELEMETRY_ALLOW_PII in agent/config.ts).
 *
 * The exporter and the SDK are the ones agents-js 1.9 itself depends on (its Cloud tracer uses
 * them): they are loaded from agents-js's own dependency tree, so no second OpenTelemetry copy
 * is installed and the versions always match the ones agents-js was built against.
 */
export type CallTelemetry = {
  /**
   * Sends every span that has ended and stops exporting. The first call starts it; every call
   * resolves when it is done or at its own `deadline` (epoch ms), whichever comes first, so the
   * process can exit on time whatever the collector does. Never throws.
   */
  flush(deadline: number): Promise<void>;
};

export function otlpEndpointConfigured(env: Record<string, string | undefined> = process.env) {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Sets agents-js's tracer provider to one exporting to the OTLP endpoint, with the call's ids on
 * every span; `undefined` (nothing set up) when no endpoint is configured.
 */
export function setupTelemetry(
  metadata: Record<string, string>,
  {
    allowContent = false,
    env = process.env,
  }: { allowContent?: boolean; env?: Record<string, string | undefined> } = {},
): CallTelemetry | undefined {
  if (!otlpEndpointConfigured(env)) return undefined;
  const fromAgents = createRequire(createRequire(import.meta.url).resolve('@livekit/agents'));
  const { OTLPTraceExporter } = fromAgents('@opentelemetry/exporter-trace-otlp-proto') as {
    OTLPTraceExporter: typeof OTLPTraceExporterType;
  };
  const { NodeTracerProvider, BatchSpanProcessor } = fromAgents(
    '@opentelemetry/sdk-trace-node',
  ) as {
    NodeTracerProvider: typeof NodeTracerProviderType;
    BatchSpanProcessor: typeof BatchSpanProcessorType;
  };
  const { resourceFromAttributes } = fromAgents('@opentelemetry/resources') as {
    resourceFromAttributes: typeof ResourceFromAttributes;
  };
  const fanout = new telemetry.FanoutSpanProcessor();
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME || 'livekit-voice-agent',
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter()), fanout],
  });
  telemetry.setTracerProvider(provider, {
    metadata,
    registerSpanProcessor: (processor) => fanout.add(processor),
    // Explicit, so agents-js's allow-by-default (LIVEKIT_TELEMETRY_ALLOW_PII unset) never applies.
    allowPii: allowContent,
  });
  let flushed: Promise<void> | undefined;
  return {
    async flush(deadline) {
      flushed ??= provider.shutdown().catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        flushed,
        new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    },
  };
}
