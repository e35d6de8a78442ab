import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { initializeLogger } from '@livekit/agents';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.ts';
import { liveKitEndSteps, speakLine, type CallContext } from '../../agent/end-steps.ts';

// LiveKit faked at the Twirp boundary to see which operation each end mode uses; the e2e suite
// shows the same against the real server (call-endings.test.ts: the goodbye that deletes the room
// for everyone, and mode leave).
const twirp: string[] = [];
let url = '';
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    twirp.push(`${req.url?.split('/').pop()} ${body}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

function steps(endMode: 'end_for_all' | 'leave', { connected = true } = {}) {
  const calls: string[] = [];
  const room = {
    name: 'call-x',
    isConnected: connected,
    localParticipant: undefined,
    disconnect: async () => void calls.push('disconnect'),
  };
  const config = loadAgentConfig({
    LIVEKIT_URL: url,
    LIVEKIT_API_KEY: 'k',
    LIVEKIT_API_SECRET: 's',
    OPENAI_API_KEY: 'sk',
  });
  const ctx = {
    room,
    job: { room: { name: 'call-x' } },
    info: { url, apiKey: 'k', apiSecret: 's' },
  } as unknown as CallContext['ctx'];
  return {
    s: liveKitEndSteps({
      ctx,
      session: () => undefined,
      config,
      endMode,
      agentName: 'a',
      roomSid: () => 'RM',
      errors: [],
      realtime: false,
    }),
    calls,
  };
}

describe('ending by mode', () => {
  beforeEach(() => {
    twirp.length = 0;
  });

  it('end_for_all deletes the room', async () => {
    const forAll = steps('end_for_all');
    await forAll.s.finish('max_duration');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(forAll.calls).toEqual([]);
  });

  it('an error in end_for_all mode deletes the room, so the caller is not left alone with no agent', async () => {
    const { s, calls } = steps('end_for_all');
    await s.finish('error');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
    expect(calls).toEqual([]);
  });

  it('an error in leave mode only disconnects the agent', async () => {
    const { s, calls } = steps('leave');
    await s.finish('error');
    expect(twirp).toEqual([]);
    expect(calls).toEqual(['disconnect']);
  });

  it('deletes the room even when the agent never connected (the call failed during setup)', async () => {
    const { s } = steps('end_for_all', { connected: false });
    await s.finish('error');
    expect(twirp).toEqual(['DeleteRoom {"room":"call-x"}']);
  });

  it('leave only disconnects the agent', async () => {
    const leave = steps('leave');
    await leave.s.finish('max_duration');
    await leave.s.finish('agent_leave');
    expect(twirp).toEqual([]);
    expect(leave.calls).toEqual(['disconnect', 'disconnect']);
  });

  it('when the user hung up or the API ended the call, the agent only leaves', async () => {
    const { s, calls } = steps('end_for_all');
    await s.finish('participant_left');
    await s.finish('api_end_call');
    expect(twirp).toEqual([]);
    expect(calls).toEqual(['disconnect', 'disconnect']);
  });
});

describe('speaking a fixed line', () => {
  beforeAll(() => initializeLogger({ pretty: false, level: 'fatal' }));

  it('returns nothing instead of throwing when the session is already closing', () => {
    const closing = {
      say: () => {
        throw new Error('AgentSession is closing, cannot use say()');
      },
      generateReply: () => {
        throw new Error('AgentSession is closing, cannot use generateReply()');
      },
    } as unknown as Parameters<typeof speakLine>[0];
    expect(speakLine(closing, 'Are you still there?', false)).toBeUndefined();
    expect(speakLine(closing, 'Are you still there?', true)).toBeUndefined();
  });
});
