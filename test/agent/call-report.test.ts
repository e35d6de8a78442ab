import { llm } from '@livekit/agents';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildReport } from '../../agent/report/call-report.ts';
import { deliverReport, ReportNotDelivered, ReportRefused } from '../../agent/report/delivery.ts';
import {
  CallReport,
  FINAL_REPORT_REFUSALS,
  isFinalReportRefusal,
  verifySignedBody,
} from '../../wire-contract/index.ts';

const summary = {
  reason: 'agent_end_call' as const,
  room: 'call-1',
  jobId: 'AJ_1',
  startedAt: new Date(1_000_000),
  endedAt: new Date(1_060_000),
};

describe('buildReport', () => {
  it('turns a real session history and usage into the wire report', () => {
    const chat = llm.ChatContext.empty();
    chat.addMessage({ role: 'system', content: 'You are helpful.' });
    chat.addMessage({ role: 'assistant', content: 'Hello! How can I help?' });
    chat.addMessage({ role: 'user', content: 'Goodbye' });
    const report = buildReport({
      summary,
      roomSid: 'RM_1',
      agentName: 'voice-agent',
      history: chat.items,
      usage: [
        { type: 'llm_usage', inputTokens: 100, outputTokens: 20 },
        { type: 'llm_usage', inputTokens: 50, outputTokens: 5 },
        { type: 'tts_usage', charactersCount: 42 },
        { type: 'stt_usage', audioDurationMs: 3500 },
      ],
      errors: [{ at: new Date(1_030_000), source: 'tts', message: 'slow' }],
      hooks: [{ name: 'x', status: 'ok', duration_ms: 1 }],
    });
    expect(() => CallReport.parse(report)).not.toThrow();
    expect(report).toMatchObject({
      call_id: 'RM_1:AJ_1',
      end_reason: 'agent_end_call',
      ended_by: 'agent',
      duration_ms: 60_000,
    });
    expect(report.transcript.map((t) => [t.role, t.text])).toEqual([
      ['assistant', 'Hello! How can I help?'],
      ['user', 'Goodbye'],
    ]);
    expect(report.usage).toEqual({
      llm_prompt_tokens: 150,
      llm_completion_tokens: 25,
      tts_characters: 42,
      stt_seconds: 3.5,
    });
  });
});

describe('buildReport never drops a report', () => {
  const base = {
    summary,
    roomSid: 'RM_1',
    agentName: 'voice-agent',
    history: [],
    usage: [],
    errors: [],
  };

  it('keeps 99 hooks and counts the rest in one last entry, with long names cut', () => {
    const hooks = Array.from({ length: 150 }, (_, i) => ({
      name: `${'h'.repeat(300)}-${i}`,
      status: i % 50 === 0 ? ('error' as const) : ('ok' as const),
      duration_ms: 1,
    }));
    const report = buildReport({ ...base, hooks });
    expect(() => CallReport.parse(report)).not.toThrow();
    expect(report.hooks).toHaveLength(100);
    expect(report.hooks[0]!.name).toHaveLength(200);
    expect(report.hooks.at(-1)).toMatchObject({
      name: '51 more hooks',
      status: 'error',
      duration_ms: 51,
    });
  });

  it('cuts a room name past the contract limit instead of failing', () => {
    const report = buildReport({
      ...base,
      summary: { ...summary, room: 'r'.repeat(400) },
      hooks: [],
    });
    expect(report.room).toHaveLength(256);
  });

  it('falls back to a minimal report naming the problem when the full one cannot validate', () => {
    const report = buildReport({
      ...base,
      summary: { ...summary, endedAt: new Date(summary.startedAt.getTime() - 1) },
      hooks: [{ name: 'x', status: 'ok', duration_ms: -1 }],
    });
    expect(() => CallReport.parse(report)).not.toThrow();
    expect(report.hooks).toEqual([]);
    expect(report.errors[0]).toMatchObject({ source: 'report' });
    expect(report.errors[0]!.message).toMatch(/hooks\.0\.duration_ms/);
  });
});

describe('a long, text-heavy call still fits the edge', () => {
  const bytes = (r: unknown) => Buffer.byteLength(JSON.stringify(r));
  // Multi-byte text: the edge counts bytes, not characters.
  const long = (i: number) => `${i}: ${'Grüße aus Köln, 東京 🚀 '.repeat(600)}`.slice(0, 19_000);
  const history = () => {
    const chat = llm.ChatContext.empty();
    for (let i = 0; i < 400; i++)
      chat.addMessage({ role: i % 2 ? 'assistant' : 'user', content: long(i) });
    return chat.items;
  };

  it('cuts the transcript to a byte budget, keeping its start and end, and says what was cut', () => {
    const report = buildReport({
      summary,
      roomSid: 'RM_1',
      agentName: 'voice-agent',
      history: history(),
      usage: [],
      errors: Array.from({ length: 300 }, (_, i) => ({
        at: new Date(1_030_000),
        source: 'tts',
        message: `failure ${i} ${'x'.repeat(3000)}`,
      })),
      hooks: [],
    });
    expect(() => CallReport.parse(report)).not.toThrow();
    expect(bytes(report)).toBeLessThanOrEqual(1024 * 1024);
    expect(report.transcript[0]!.text).toBe(long(0));
    expect(report.transcript.at(-1)!.text).toBe(long(399));
    const marker = report.transcript.find((t) => t.role === 'system');
    expect(marker?.text).toMatch(
      /^\[\d+ transcript entries \(\d+ bytes\) cut to fit the report\]$/,
    );
    const cut = Number(/^\[(\d+)/.exec(marker!.text)![1]);
    expect(report.transcript.length - 1 + cut).toBe(400);
  });
});

describe('deliverReport', () => {
  let close: (() => void) | undefined;
  afterEach(() => close?.());

  /** Answers each post with the next status, a refusal in the edge's error shape when a code is given. */
  async function edgeAnswering(statuses: (number | [number, string])[]) {
    const seen: { auth?: string; body: string }[] = [];
    const server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      seen.push({ auth: req.headers.authorization, body });
      const next = statuses.shift() ?? 201;
      const [status, code] = typeof next === 'number' ? [next] : next;
      res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify(code ? { error: { code, message: `refused: ${code}` } } : {}));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    close = () => server.close();
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
  }
  const report = buildReport({
    summary,
    roomSid: 'RM_1',
    agentName: 'a',
    history: [],
    usage: [],
    errors: [],
    hooks: [],
  });

  it('retries 5xx and 429 with backoff, signing every attempt verifiably', async () => {
    const edge = await edgeAnswering([503, 429, 201]);
    const result = await deliverReport(report, {
      edgeUrl: edge.url,
      apiKey: 'k',
      apiSecret: 's'.repeat(32),
      deadline: Date.now() + 10_000,
    });
    expect(result).toEqual({ status: 201, attempts: 3 });
    for (const attempt of edge.seen)
      expect(await verifySignedBody(attempt.body, attempt.auth, 'k', 's'.repeat(32))).toEqual({
        ok: true,
      });
  });

  it('retries a network failure with growing pauses, resending the same signed body, and stops once delivered', async () => {
    const attempts: { at: number; body: string; auth: string }[] = [];
    const fetchImpl = (async (_url: string, init: RequestInit) => {
      const headers = init.headers as Record<string, string>;
      attempts.push({ at: Date.now(), body: init.body as string, auth: headers.authorization! });
      if (attempts.length <= 3) throw new TypeError('fetch failed'); // connection refused, reset
      return new Response('{}', { status: 201 });
    }) as unknown as typeof fetch;
    const logged: unknown[] = [];
    const result = await deliverReport(report, {
      edgeUrl: 'http://edge.invalid',
      apiKey: 'k',
      apiSecret: 's'.repeat(32),
      deadline: Date.now() + 10_000,
      fetchImpl,
      log: (_level, msg, fields) => void logged.push({ msg, ...fields }),
    });
    expect(result).toEqual({ status: 201, attempts: 4 });
    expect(attempts).toHaveLength(4);
    // One call id, one body: the edge accepts the call once, whichever attempt lands.
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    expect(JSON.parse(attempts[0]!.body).call_id).toBe(report.call_id);
    for (const a of attempts)
      expect(await verifySignedBody(a.body, a.auth, 'k', 's'.repeat(32))).toEqual({ ok: true });
    // Backoff: each pause at least the one before it doubled (250 ms, 500 ms, 1 s).
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(240);
    expect(gaps[1]).toBeGreaterThanOrEqual(490);
    expect(gaps[2]).toBeGreaterThanOrEqual(990);
    expect(logged).toEqual(
      [1, 2, 3].map((attempt) => ({
        msg: 'report delivery failed, retrying',
        attempt,
        outcome: 'fetch failed',
      })),
    );
  });

  it('does not retry a 4xx the edge will never accept', async () => {
    const edge = await edgeAnswering([[400, 'invalid_field']]);
    const done = deliverReport(report, {
      edgeUrl: edge.url,
      apiKey: 'k',
      apiSecret: 's',
      deadline: Date.now() + 10_000,
    });
    await expect(done).rejects.toThrow(/refused the report: 400/);
    await expect(done).rejects.toBeInstanceOf(ReportRefused);
    expect(edge.seen).toHaveLength(1);
  });

  it('a 401 (a key rotation, a clock off) is not final: no retry now, an error line naming status and code, and the report is left to the outbox', async () => {
    const edge = await edgeAnswering([[401, 'invalid_signature']]);
    const logged: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
    const done = deliverReport(report, {
      edgeUrl: edge.url,
      apiKey: 'k',
      apiSecret: 's',
      deadline: Date.now() + 10_000,
      log: (level, msg, fields) => void logged.push({ level, msg, fields }),
    });
    await expect(done).rejects.toBeInstanceOf(ReportNotDelivered);
    await expect(done).rejects.toThrow(/401 invalid_signature/);
    expect(edge.seen).toHaveLength(1);
    expect(logged).toEqual([
      {
        level: 'error',
        msg: expect.stringMatching(/refused the report for now/),
        fields: expect.objectContaining({ status: 401, code: 'invalid_signature' }),
      },
    ]);
  });

  it('gives up at the deadline when the edge is unreachable', async () => {
    const started = Date.now();
    await expect(
      deliverReport(report, {
        edgeUrl: 'http://127.0.0.1:9',
        apiKey: 'k',
        apiSecret: 's',
        deadline: started + 1_500,
      }),
    ).rejects.toThrow(/not delivered after \d+ attempts/);
    expect(Date.now()).toBeLessThan(started + 1_500 + 1_500);
  });

  it('on a 413, resends a minimal report for the same call that names what was dropped', async () => {
    const edge = await edgeAnswering([413, 201]);
    const logged: string[] = [];
    const result = await deliverReport(report, {
      edgeUrl: edge.url,
      apiKey: 'k',
      apiSecret: 's',
      deadline: Date.now() + 10_000,
      log: (_level, msg) => void logged.push(msg),
    });
    expect(result.status).toBe(201);
    expect(edge.seen).toHaveLength(2);
    const minimal = CallReport.parse(JSON.parse(edge.seen[1]!.body));
    expect(minimal).toMatchObject({ call_id: report.call_id, transcript: [], hooks: [] });
    expect(minimal.errors.at(-1)).toMatchObject({ source: 'report' });
    expect(minimal.errors.at(-1)!.message).toMatch(/413/);
  });
});

describe('which refusals drop a report', () => {
  it('only the listed (status, code) pairs: every one a judgement on the body or the room, none on the credential or the clock', () => {
    expect(FINAL_REPORT_REFUSALS).toEqual([
      { status: 400, code: 'malformed_body' },
      { status: 400, code: 'malformed_json' },
      { status: 400, code: 'invalid_field' },
      { status: 400, code: 'unsupported_field' },
      { status: 404, code: 'call_not_found' },
      { status: 413, code: 'body_too_large' },
    ]);
    for (const { status, code } of FINAL_REPORT_REFUSALS)
      expect(isFinalReportRefusal(status, code)).toBe(true);
    for (const [status, code] of [
      [401, 'invalid_signature'],
      [403, 'forbidden'],
      [404, 'not_found'],
      [404, undefined],
      [400, undefined],
      [408, 'call_not_found'],
    ] as const)
      expect(isFinalReportRefusal(status, code)).toBe(false);
  });
});
