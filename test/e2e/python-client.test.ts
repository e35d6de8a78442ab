import { beforeAll, describe, expect, it } from 'vitest';
import { systemForThisFile } from '../support/e2e-system.ts';
import { testIdentityProvider } from '../support/identity-provider.ts';
import { TTS_MS_PER_CHAR } from '../support/openai-stand-in.ts';
import { runPythonCall } from '../support/python-client.ts';
import { END_REASONS, type EndReason } from '../../wire-contract/index.ts';

/**
 * The edge's client contract outside JavaScript: LiveKit's Python real-time SDK (`livekit` from
 * PyPI, test/clients/python/voice_call.py) joins with a token from /token as a signed-in user,
 * hears the greeting, ends the call for everyone with its own participant token, reads the agent's
 * end notice, and reads the edge's errors, against the real system (LiveKit server, the edge
 * under wrangler dev, the built agent, the OpenAI stand-in).
 */
const OPEN_CALL_CAP = 2;
let idp: Awaited<ReturnType<typeof testIdentityProvider>>;
// Before the system's own hooks, so the edge starts knowing the identity provider.
beforeAll(async () => {
  idp = await testIdentityProvider();
});
const system = systemForThisFile('Python client tests', {
  needs: ['python'],
  edgeVars: () => ({ ...idp.edgeVars, MAX_OPEN_CALLS_PER_CALLER: String(OPEN_CALL_CAP) }),
});
/**
 * The greeted caller's call ended as the agent said (its notice), with LiveKit's disconnect, and the
 * ledger says the same.
 */
async function endedByTheAgent(steps: Record<string, any>, reason: EndReason, disconnect: string) {
  expect(steps.greeted.greeting).toMatch(/Hello!/);
  expect(steps.ended).toMatchObject({ reason, agent_reason: reason, disconnect });
  expect((await system.endedCallAs(steps.token.room, reason)).end_reason).toBe(reason);
}
const user = () => `py-user-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;

describe.skipIf(system.skipped)(
  'a Python client on the edge, against the real LiveKit server',
  () => {
    it('a signed-in caller joins, hears the greeting, ends the call for everyone with its own token, and reads the words the call page shows', async () => {
      const sub = user();
      const steps = await runPythonCall(
        'end-for-everyone',
        system.edge.url,
        await idp.signUserJwt(sub),
      );
      expect(steps.token).toMatchObject({ status: 201, identity: sub });
      expect(steps.token.room).toMatch(/^call-/);
      // Heard, not only captioned: the agent's track carried about as much tone as the greeting's
      // words make in the TTS stand-in (40 ms a character).
      expect(steps.greeted.greeting).toMatch(/Hello!/);
      expect(steps.greeted.loud_ms).toBeGreaterThan(
        0.5 * steps.greeted.greeting.length * TTS_MS_PER_CHAR,
      );
      expect(steps.end).toEqual({ step: 'end', already_ended: false, end_reason: 'api_end_call' });
      expect(steps.ended).toMatchObject({ reason: 'api_end_call', disconnect: 'ROOM_DELETED' });
      // The caller's view of the call: the same reason, and the page's words for it.
      expect(steps.record).toMatchObject({
        status: 'ended',
        end_reason: 'api_end_call',
        end_message: END_REASONS.api_end_call.clientMessage,
        ended_by: 'api',
        caller: { identity: sub },
      });
      const ledger = await system.call(steps.token.room);
      expect(ledger.end_caller).toMatchObject({ kind: 'participant', identity: sub });
    });

    it("the agent ends the call: the Python caller takes the reason from the agent's end notice, as the page does", async () => {
      const steps = await runPythonCall(
        'agent-ends',
        system.edge.url,
        await idp.signUserJwt(user()),
      );
      await endedByTheAgent(steps, 'agent_end_call', 'ROOM_DELETED');
    });

    it('the agent leaves a room that stays (end mode leave): the Python caller leaves too, saying why', async () => {
      const steps = await runPythonCall('agent-leaves', system.edge.url, system.edge.appKey);
      // The notice named the reason; the caller left on the agent's departure, not on the notice.
      await endedByTheAgent(steps, 'agent_leave', 'CLIENT_INITIATED');
    });

    it('another participant’s call.end notice changes nothing: the Python caller believes only the agent', async () => {
      const steps = await runPythonCall('forged-notice', system.edge.url, system.edge.appKey);
      expect(steps.greeted.greeting).toMatch(/Hello!/);
      // Both forgeries reached the caller and were not believed, whether or not it knew their sender
      // yet (a packet from a sender not known yet has no participant, like the edge's).
      expect(steps.forged).toMatchObject({
        agent_reason: null,
        connected: true,
        ignored: ['agent_unavailable', 'max_duration'],
      });
      console.log(`forged notices without a participant: ${steps.forged.without_participant} of 2`);
      expect(steps.ended).toMatchObject({
        reason: 'agent_end_call',
        agent_reason: 'agent_end_call',
      });
    });

    it("the edge's errors reach the Python caller as their code, message and wait", async () => {
      const bad = await runPythonCall('token', system.edge.url, 'not-a-credential');
      expect(bad.token).toMatchObject({ status: 401, code: 'invalid_credential' });
      expect(bad.token.message).toBeTruthy();

      // The open-call cap: two tokens held (never used: they count until they expire), the third
      // is refused with how long to wait.
      const sub = user();
      for (let i = 0; i < OPEN_CALL_CAP; i++)
        expect(
          (await runPythonCall('token', system.edge.url, await idp.signUserJwt(sub))).token.status,
        ).toBe(201);
      const refused = await runPythonCall('token', system.edge.url, await idp.signUserJwt(sub));
      expect(refused.token).toMatchObject({ status: 429, code: 'too_many_open_calls' });
      expect(refused.token.retry_after_seconds).toBeGreaterThan(0);
      expect(refused.token.retry_after_seconds).toBeLessThanOrEqual(60);
    });
  },
);
