import { describe, expect, it } from 'vitest';
import { screenshots, type CallPage } from '../support/browser.ts';
import { CallPageRig } from '../support/call-page-rig.ts';
import {
  alert,
  callButton,
  caption,
  dial,
  ended,
  pageConfig,
  startCall,
  status,
  typeToAssistant,
} from '../support/call-page-steps.ts';
import { END_REASONS, type EndReason } from '../../wire-contract/index.ts';

/**
 * Every way a call on the edge's page ends or fails to start, as the person sees it, in headless
 * Chromium against the real system (LiveKit server, the edge under wrangler dev, the built agent,
 * the OpenAI stand-in). Each test brings its ending about the way it happens for real and saves
 * the page at phone and desktop widths in test-artifacts/call-page/.
 */
/** Agents a test starts (or never starts) itself, so LiveKit sends only its calls there. */
const AGENTS = {
  idle: 'voice-agent-idle',
  drain: 'voice-agent-drain',
  killed: 'voice-agent-killed',
  late: 'voice-agent-late',
  absent: 'voice-agent-absent',
};
/**
 * The open-call cap, on here (System turns it off): every anonymous caller in this file is one
 * caller to it (127.0.0.1), and the few calls that linger after their test stay well below it.
 * Below the per-identity rate limit (wrangler.toml: 20 a minute), so the cap answers first.
 */
const OPEN_CALL_CAP = 10;
/** The edge ends a call no agent took after this long (agent_unavailable). */
const AGENT_WAIT_SECONDS = 10;
const rig = new CallPageRig('call page ending tests', {
  edgeVars: {
    AGENT_ALLOWED_NAMES: ['voice-agent', ...Object.values(AGENTS)].join(','),
    AGENT_WAIT_SECONDS: String(AGENT_WAIT_SECONDS),
    MAX_OPEN_CALLS_PER_CALLER: String(OPEN_CALL_CAP),
  },
});

/**
 * The page's /token through the app's backend, the way an app that embeds the call chooses a
 * call's settings: it adds the caller's identity and the agent's settings and signs with the app
 * key (an end user may not choose them).
 */
async function throughAppBackend(p: CallPage, settings: Record<string, unknown>) {
  await p.page.route('**/token', async (route) => {
    const body = JSON.parse(route.request().postData() || '{}');
    const agent = body.room_config?.agents?.[0] ?? {};
    body.participant_identity = `app-user-${Date.now()}`;
    body.room_config = {
      ...body.room_config,
      agents: [{ ...agent, metadata: JSON.stringify(settings) }],
    };
    await route.continue({
      headers: { ...route.request().headers(), authorization: `Bearer ${rig.system.edge.appKey}` },
      postData: JSON.stringify(body),
    });
  });
}

/** A token for an end user straight from the edge (another tab, another device). */
const tokenFor = (jwt: string) =>
  fetch(`${rig.system.edge.url}/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: '{}',
  });

/** The page said this ending's words, and the ledger recorded the same reason. */
async function endedWith(p: CallPage, room: string, reason: EndReason, timeout = 30_000) {
  await ended(p, END_REASONS[reason].clientMessage, timeout);
  expect(await callButton(p).isEnabled()).toBe(true);
  expect((await rig.system.endedCallAs(room, reason)).end_reason).toBe(reason);
}

describe.skipIf(rig.skipped)('every ending and failure on the call page', () => {
  it('end mode leave: the assistant says goodbye and leaves, and the page says it left', async () => {
    const p = await rig.openCallPage();
    await throughAppBackend(p, { end_mode: 'leave' });
    const { room } = await startCall(p);
    await typeToAssistant(p, 'Goodbye!');
    await caption(p, 'assistant', 'Goodbye, take care!');
    await endedWith(p, room, 'agent_leave');
    await screenshots(p.page, 'ended-assistant-left');
  });

  it('the time limit: the time-limit goodbye, then the page says the call reached its limit', async () => {
    const p = await rig.openCallPage();
    await throughAppBackend(p, { max_duration_seconds: 8 });
    const { room } = await startCall(p);
    await caption(p, 'assistant', END_REASONS.max_duration.goodbye!);
    await endedWith(p, room, 'max_duration');
    await screenshots(p.page, 'ended-max-duration');
  });

  it('the assistant removed through the API: the page says so and the call is over', async () => {
    const p = await rig.openCallPage();
    const { room } = await startCall(p);
    const removed = await rig.system.endAsAdmin(room, 'remove_agent');
    expect(removed.status).toBe(200);
    await endedWith(p, room, 'api_remove_agent');
    await screenshots(p.page, 'ended-assistant-removed');
  });

  it('the room deleted on LiveKit by someone else (an operator, a script): the page says the call was ended for everyone', async () => {
    const p = await rig.openCallPage();
    const { room } = await startCall(p);
    await rig.system.rooms.deleteRoom(room);
    await status(p, END_REASONS.api_end_call.clientMessage);
    // The agent only saw its room vanish: the ledger says so, and who did it is not known.
    expect(await rig.system.endedCall(room)).toMatchObject({ end_reason: 'room_deleted' });
    await screenshots(p.page, 'ended-room-deleted');
  });

  it('a deploy drains the agent worker (SIGTERM): the maintenance goodbye, then the page says to call again', async () => {
    const draining = await rig.system.startAgent('agent-drain', {
      AGENT_NAME: AGENTS.drain,
      DRAIN_TIMEOUT_SECONDS: '3',
    });
    try {
      const p = await rig.openCallPage({ init: pageConfig({ agentName: AGENTS.drain }) });
      const { room } = await startCall(p);
      draining.proc.child.kill('SIGTERM');
      await caption(p, 'assistant', END_REASONS.drain.goodbye!);
      await endedWith(p, room, 'drain');
      await screenshots(p.page, 'ended-drain');
    } finally {
      await draining.stop('SIGKILL');
    }
  });

  it('the agent worker dies mid-call (SIGKILL): the page says the problem is on our side, and the ledger says error', async () => {
    const doomed = await rig.system.startAgent('agent-killed', { AGENT_NAME: AGENTS.killed });
    try {
      const p = await rig.openCallPage({ init: pageConfig({ agentName: AGENTS.killed }) });
      const { room } = await startCall(p);
      await doomed.stop('SIGKILL');
      // LiveKit holds a participant whose connection dropped for a while before it says it left.
      await endedWith(p, room, 'error', 60_000);
      await screenshots(p.page, 'ended-error');
    } finally {
      await doomed.stop('SIGKILL');
    }
  });

  it('the ending the idle timer brings: a prompt, the goodbye, and the page says nobody was talking', async () => {
    const idle = await rig.system.startAgent('agent-idle', {
      AGENT_NAME: AGENTS.idle,
      IDLE_PROMPT_SECONDS: '2',
      IDLE_END_SECONDS: '2',
    });
    try {
      const p = await rig.openCallPage({ init: pageConfig({ agentName: AGENTS.idle }) });
      const { room } = await startCall(p);
      await caption(p, 'assistant', 'Are you still there?');
      await caption(p, 'assistant', END_REASONS.idle_timeout.goodbye!);
      await endedWith(p, room, 'idle_timeout');
      await screenshots(p.page, 'ended-idle-timeout');
    } finally {
      await idle.stop('SIGKILL');
    }
  });

  it(`no agent worker took the call within the edge's AGENT_WAIT_SECONDS: the edge ends it, and the page says no assistant was available`, async () => {
    const p = await rig.openCallPage({ init: pageConfig({ agentName: AGENTS.absent }) });
    const { room } = await dial(p);
    await endedWith(p, room, 'agent_unavailable', (AGENT_WAIT_SECONDS + 30) * 1000);
    await screenshots(p.page, 'ended-agent-unavailable');
  });

  it('no agent joined within the page’s own wait: "No assistant is available right now", and the next Call works once one is up', async () => {
    const p = await rig.openCallPage({
      init: pageConfig({ agentName: AGENTS.late, agentJoinTimeoutMs: 5_000 }),
    });
    await callButton(p).click();
    await alert(p, 'No assistant is available right now.');
    await status(p, 'Press Call to try again.');
    await screenshots(p.page, 'no-assistant');
    const late = await rig.system.startAgent('agent-late', { AGENT_NAME: AGENTS.late });
    try {
      // The new worker answers one call first, so its job processes are warm: the page's 5 s wait
      // is then about the agent joining, not a cold process start on a busy machine.
      const warmUp = await rig.system.backendCaller(`warm-${Date.now().toString(36)}`, {
        agentName: AGENTS.late,
      });
      await warmUp.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);
      await warmUp.leave();
      await startCall(p);
    } finally {
      await late.stop('SIGKILL');
    }
  });

  it('a microphone the browser refuses: the page says how to fix it, and calls once it is allowed', async () => {
    const p = await rig.openCallPage({ microphone: 'refused' });
    await callButton(p).click();
    await alert(p, 'Microphone access was refused.');
    await status(p, 'Press Call to try again.');
    await screenshots(p.page, 'microphone-refused');
    await p.context.grantPermissions(['microphone']);
    await startCall(p);
    expect(await p.page.locator('#alert').isHidden()).toBe(true);
  });

  it('a token the edge refuses: the page says to sign in again', async () => {
    const p = await rig.openCallPage({ init: pageConfig({}, 'not-a-jwt.at-all.really') });
    await callButton(p).click();
    await alert(p, 'You are not signed in, or your sign-in has expired.');
    await status(p, 'Press Call to try again.');
    await screenshots(p.page, 'token-refused');
  });

  it('a caller already holding as many open calls as allowed: the page says to end one first', async () => {
    const jwt = await rig.signUserJwt('busy-user');
    // Tokens fetched and not used yet hold their place until they expire.
    for (let i = 0; i < OPEN_CALL_CAP; i++) {
      const res = await tokenFor(jwt);
      expect(res.status).toBe(201);
      await res.body?.cancel();
    }
    const p = await rig.openCallPage({ init: pageConfig({}, jwt) });
    await callButton(p).click();
    await alert(p, 'You already have as many calls open as you are allowed.');
    await status(p, 'Press Call to try again.');
    await screenshots(p.page, 'too-many-open-calls');
  });

  it('a caller asking for tokens too fast: the page says how long to wait', async () => {
    const jwt = await rig.signUserJwt('hasty-user');
    // The local rate limiter's minute is the wall clock's (Miniflare aligns its windows): the 21
    // requests must fall in one. They take seconds; with less than 25 s left, wait it out.
    const leftInMinute = 60_000 - (Date.now() % 60_000);
    if (leftInMinute < 25_000) await new Promise((r) => setTimeout(r, leftInMinute + 100));
    const answers: number[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await tokenFor(jwt);
      answers.push(res.status);
      await res.body?.cancel();
    }
    // The first ones opened calls up to the cap, the rest were refused by it, and every one
    // counted towards the rate limit: the page's is one too many.
    expect(answers).toEqual([
      ...Array<number>(OPEN_CALL_CAP).fill(201),
      ...Array<number>(20 - OPEN_CALL_CAP).fill(429),
    ]);
    const p = await rig.openCallPage({ init: pageConfig({}, jwt) });
    await callButton(p).click();
    await alert(p, 'Too many calls started just now. Please wait 60 seconds and try again.');
    // Call is off while the wait counts down: another click could only be refused again.
    await status(p, /^You can call again in \d+ s\.$/);
    expect(await callButton(p).isDisabled()).toBe(true);
    await screenshots(p.page, 'rate-limited');
  });

  it('LiveKit unreachable when the call starts: the page says to check the connection', async () => {
    const p = await rig.openCallPage();
    rig.signal.refusing = true;
    await callButton(p).click();
    await alert(p, 'Could not connect to the call. Check your connection and try again.');
    await status(p, 'Press Call to try again.');
    await screenshots(p.page, 'livekit-unreachable');
    rig.signal.refusing = false;
    await startCall(p);
  });

  it('the connection drops and never comes back: reconnecting, then the page says the connection was lost', async () => {
    const p = await rig.openCallPage();
    await startCall(p);
    rig.signal.refusing = true;
    rig.signal.cut();
    await p.page.locator('#reconnecting').waitFor({ timeout: 30_000 });
    // livekit-client gives up after its own reconnect attempts (about 40 s of them).
    await ended(p, 'Connection lost.', 120_000);
    expect(await p.page.locator('#reconnecting').isHidden()).toBe(true);
    await screenshots(p.page, 'connection-lost');
  });
});
