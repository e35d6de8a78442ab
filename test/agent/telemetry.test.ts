import { initializeLogger, voice } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { otlpEndpointConfigured, setupTelemetry } from '../../agent/telemetry.ts';
import { startOpenAIStandIn, type StandIn } from '../support/openai-stand-in.ts';

/** A tiny OTLP/HTTP receiver: every POST /v1/traces body (protobuf), as the exporter sent it. */
async function otlpReceiver() {
  const posts: { path: string; contentType?: string; body: Buffer }[] = [];
  let arrived: () => void = () => {};
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    posts.push({
      path: req.url ?? '',
      contentType: req.headers['content-type'],
      body: Buffer.concat(chunks),
    });
    res.writeHead(200, { 'content-type': 'application/x-protobuf' });
    res.end();
    arrived();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    posts,
    next: () => new Promise<void>((r) => (arrived = r)),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let standIn: StandIn;
beforeAll(async () => {
  initializeLogger({ pretty: false, level: 'warn' });
  standIn = await startOpenAIStandIn();
});
afterAll(() => standIn.close());

describe('OTLP traces', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    expect(otlpEndpointConfigured({})).toBe(false);
    expect(setupTelemetry({ room_id: 'x' }, {})).toBeUndefined();
    expect(otlpEndpointConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' })).toBe(true);
  });

  it('exports agents-js’s spans of a turn over OTLP/HTTP to the endpoint, with the call’s ids', async () => {
    const receiver = await otlpReceiver();
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    try {
      const tel = setupTelemetry({ room_id: 'RM_otel_test', job_id: 'AJ_otel_test' })!;
      expect(tel).toBeDefined();
      const session = new voice.AgentSession({
        llm: new openai.LLM({ apiKey: 'sk-local', baseURL: standIn.url, model: 'stand-in' }),
      });
      await session.start({ agent: new voice.Agent({ instructions: 'Be brief.' }) });
      await session.run({ userInput: 'Hello there' }).wait();
      await session.close();
      const posted = receiver.next();
      await tel.shutdown(); // flushes the batch
      await posted;
      const body = Buffer.concat(receiver.posts.map((p) => p.body)).toString('latin1');
      expect(receiver.posts[0]).toMatchObject({
        path: '/v1/traces',
        contentType: 'application/x-protobuf',
      });
      // Protobuf keeps strings as UTF-8 bytes: the span names and attributes are readable.
      expect(body).toContain('agent_turn');
      expect(body).toContain('llm_node');
      expect(body).toContain('RM_otel_test');
      expect(body).toContain('livekit-voice-agent');
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      await receiver.close();
    }
  });
});
