import { initializeLogger, voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.ts';
import { otlpEndpointConfigured, setupTelemetry } from '../../agent/process/telemetry.ts';
import { startOpenAIStandIn, type StandIn } from '../support/openai-stand-in.ts';
import { otlpReceiver } from '../support/otlp-receiver.ts';

/** What loadAgentConfig needs besides the telemetry variables. */
const requiredVars = {
  LIVEKIT_URL: 'ws://127.0.0.1:7880',
  LIVEKIT_API_KEY: 'k',
  LIVEKIT_API_SECRET: 's',
  OPENAI_API_KEY: 'sk',
};

let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
afterAll(() => standIn.close());

describe('OTLP traces', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    expect(otlpEndpointConfigured({})).toBe(false);
    expect(setupTelemetry({ room_id: 'x' }, { env: {} })).toBeUndefined();
    expect(otlpEndpointConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' })).toBe(true);
  });

  /** One turn through the real session and plugin, traced; returns everything the receiver got. */
  async function tracedTurn(env: Record<string, string>, userInput: string) {
    const receiver = await otlpReceiver();
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    try {
      const config = loadAgentConfig({ ...requiredVars, ...env });
      const tel = setupTelemetry(
        { room: 'call-otel-test', room_id: 'RM_otel_test', job_id: 'AJ_otel_test' },
        { allowContent: config.LIVEKIT_TELEMETRY_ALLOW_PII },
      )!;
      expect(tel).toBeDefined();
      const session = new voice.AgentSession({
        llm: new openai.LLM({ apiKey: 'sk-local', baseURL: standIn.url, model: 'stand-in' }),
      });
      await session.start({ agent: new voice.Agent({ instructions: 'Be brief.' }) });
      await session.run({ userInput }).wait();
      await session.close();
      const posted = receiver.next();
      await tel.flush(Date.now() + 5_000);
      await posted;
      expect(receiver.posts[0]).toMatchObject({
        path: '/v1/traces',
        contentType: 'application/x-protobuf',
      });
      // Protobuf keeps strings as UTF-8 bytes: the span names and attributes are readable.
      return receiver.text();
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      await receiver.close();
    }
  }

  it('exports agents-js’s spans of a turn over OTLP/HTTP to the endpoint, with the call’s ids', async () => {
    const body = await tracedTurn({}, 'Hello there');
    expect(body).toContain('agent_turn');
    expect(body).toContain('llm_node');
    expect(body).toContain('RM_otel_test');
    expect(body).toContain('livekit-voice-agent');
  });

  it('leaves the conversation out by default: neither the caller’s words nor the reply nor the instructions', async () => {
    const body = await tracedTurn({}, 'my card number is 4111 1111');
    expect(body).toContain('llm_node'); // the turn is traced, timings and all
    expect(body).not.toContain('4111 1111');
    expect(body).not.toContain('You said:');
    expect(body).not.toContain('Be brief.');
    // The call's ids stay, the room name among them: an id for finding the call in the logs and
    // the ledger (docs/configuration.md, LIVEKIT_TELEMETRY_ALLOW_PII).
    expect(body).toContain('call-otel-test');
    expect(body).toContain('RM_otel_test');
  });

  it('puts the conversation in the spans only when LIVEKIT_TELEMETRY_ALLOW_PII=true', async () => {
    const body = await tracedTurn(
      { LIVEKIT_TELEMETRY_ALLOW_PII: 'true' },
      'my card number is 4111 1111',
    );
    expect(body).toContain('my card number is 4111 1111');
    expect(body).toContain('You said: my card number is 4111 1111');
  });
});
