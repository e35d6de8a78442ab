import { afterEach, describe, expect, it, vi } from 'vitest';
import { watchAgentArrival, type Clock } from '../../edge/agent-arrival.ts';
import { configFrom } from '../../edge/config.ts';
import {
  fakeLiveKit,
  issueToken,
  ledgerRow,
  seedCall,
  sendWebhook,
  testEnv,
  twirpError,
} from './helpers.ts';

afterEach(() => vi.restoreAllMocks());

/** Time that passes only when the watcher sleeps: the test decides what LiveKit says at each look. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
}

const config = configFrom({ ...testEnv, AGENT_WAIT_SECONDS: '20' });
const AGENT = { identity: 'agent-1', kind: 'AGENT' };
const CALLER = { identity: 'caller', kind: 'STANDARD' };
const dispatch = (jobs: { state: { status: string } }[] = []) =>
  Response.json({
    agentDispatches: [
      { id: 'AD_1', agentName: 'voice-agent', room: 'r', metadata: 'sealed', state: { jobs } },
    ],
  });

/** A call whose caller has joined (the webhook the watcher starts from). */
async function joinedCall(sub: string) {
  const { room_name } = await issueToken(sub);
  await sendWebhook({
    event: 'participant_joined',
    room: { name: room_name, sid: `RM_${sub}` },
    participant: { identity: sub, kind: 'STANDARD' },
    id: `EV_join_${sub}`,
  });
  return room_name;
}

describe('waiting for the agent after the caller joined', () => {
  it('stops as soon as the agent is in the room, without touching the dispatch', async () => {
    const room = await joinedCall('arrives');
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER, AGENT] }),
    });
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'arrives', fakeClock())).toBe(
      'agent_joined',
    );
    expect(lk.methods()).toEqual(['ListParticipants']);
  });

  it('dispatches again when the dispatch brought no job within the settle time, with the same sealed metadata, until the agent comes', async () => {
    const room = await joinedCall('dropped');
    let looks = 0;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: ++looks < 5 ? [CALLER] : [CALLER, AGENT] }),
      ListDispatch: () => dispatch([]),
      CreateDispatch: () => Response.json({ id: 'AD_2', agentName: 'voice-agent', room }),
    });
    const clock = fakeClock();
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'dropped', clock)).toBe(
      'agent_joined',
    );
    // Looks at 1, 3, 7, 11 and 15 s: the first two are younger than the settle time, 7 s finds
    // the dispatch dropped, 11 s is 4 s after that new dispatch, 15 s finds the agent.
    expect(clock.slept).toEqual([1_000, 2_000, 4_000, 4_000, 4_000].slice(0, looks));
    expect(lk.methods()).not.toContain('DeleteDispatch'); // a slow job is never killed
    expect(lk.bodiesOf('CreateDispatch')).toEqual([
      { room, agentName: 'voice-agent', metadata: 'sealed' },
    ]);
    expect((await ledgerRow(room))!.status).toBe('open');
  });

  it('waits without dispatching again while the job the edge admitted is on its way, and stops at the deadline', async () => {
    const room = await joinedCall('admitted');
    await testEnv.LEDGER.prepare(
      'UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1',
    )
      .bind(room, 'AJ_slow', Date.now())
      .run();
    const lk = fakeLiveKit({ ListParticipants: () => Response.json({ participants: [CALLER] }) });
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'admitted', fakeClock())).toBe(
      'agent_coming',
    );
    expect(new Set(lk.methods())).toEqual(new Set(['ListParticipants']));
    expect((await ledgerRow(room))!.status).toBe('open');
  });

  it('leaves a dispatch alone while its job may still bring the agent', async () => {
    const room = await joinedCall('starting');
    let looks = 0;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: ++looks < 2 ? [CALLER] : [CALLER, AGENT] }),
      ListDispatch: () => dispatch([{ state: { status: 'JS_RUNNING' } }]),
    });
    await watchAgentArrival(testEnv.LEDGER, config, room, 'starting', fakeClock());
    expect(lk.methods()).not.toContain('CreateDispatch');
  });

  it('past the deadline, tells the room why and ends the call as agent_unavailable', async () => {
    const room = await joinedCall('nobody');
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER] }),
      ListDispatch: () => dispatch([]),
    });
    const clock = fakeClock();
    const started = clock.now();
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'nobody', clock)).toBe(
      'agent_unavailable',
    );
    expect(clock.now() - started).toBe(20_000);
    const [said] = lk.bodiesOf('SendData');
    expect(said).toMatchObject({ room, topic: 'call.end' });
    expect(JSON.parse(atob(said!.data))).toEqual({ reason: 'agent_unavailable' });
    expect(lk.methods().slice(-2)).toEqual(['SendData', 'DeleteRoom']);
    expect(await ledgerRow(room)).toMatchObject({
      status: 'ended',
      end_reason: 'agent_unavailable',
      ended_by: 'system',
      end_strength: 1,
    });
  });

  it('keeps to the deadline when LiveKit fails along the way', async () => {
    const room = await joinedCall('flaky');
    fakeLiveKit({
      ListParticipants: () => twirpError(500, 'internal', 'boom'),
      DeleteRoom: () => Response.json({}),
    });
    const clock = fakeClock();
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'flaky', clock)).toBe(
      'agent_unavailable',
    );
    expect((await ledgerRow(room))!.end_reason).toBe('agent_unavailable');
  });

  it('stops when the call ended meanwhile', async () => {
    const room = await joinedCall('ended');
    await seedCall.ended(room);
    const lk = fakeLiveKit();
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'ended', fakeClock())).toBe(
      'call_over',
    );
    expect(lk.calls).toHaveLength(0);
  });

  it('watches once per call: a second person joining does not start another watch', async () => {
    const room = await joinedCall('first');
    await sendWebhook({
      event: 'participant_joined',
      room: { name: room },
      participant: { identity: 'second', kind: 'STANDARD' },
      id: 'EV_join_second',
      createdAt: String(Math.floor(Date.now() / 1000) + 5),
    });
    const lk = fakeLiveKit();
    expect(await watchAgentArrival(testEnv.LEDGER, config, room, 'second', fakeClock())).toBe(
      'not_the_first_caller',
    );
    expect(lk.calls).toHaveLength(0);
  });
});
