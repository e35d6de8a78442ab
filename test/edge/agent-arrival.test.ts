import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ADMISSION_WATCH_MS,
  MAX_AGENT_WAIT_MS,
  watchAdmittedAgent,
  watchAgentArrival,
  type Clock,
} from '../../edge/call/agent-arrival.ts';
import { ADMITTED_AGENT_GRACE_MS, admitAgentJob } from '../../edge/ledger/admissions.ts';
import { configFrom } from '../../edge/config.ts';
import {
  fakeLiveKit,
  issueToken,
  callRow,
  seedCall,
  sendWebhook,
  testEnv,
  twirpError,
  atCall,
  callLedger,
} from '../support/edge/helpers.ts';
import { meteredD1 } from '../support/edge/d1-meter.ts';

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
type ListedJob = { id?: string; state: { status: string; startedAt?: string } };
const dispatch = (jobs: ListedJob[] = []) =>
  Response.json({
    agentDispatches: [
      { id: 'AD_1', agentName: 'voice-agent', room: 'r', metadata: 'sealed', state: { jobs } },
    ],
  });

/** The edge admitted `jobId` as the call's agent at `at` (POST /calls/:room/admit). */
const admitAt = (room: string, jobId: string, at: number) =>
  atCall(
    room,
    'UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1',
    room,
    jobId,
    at,
  );
/** A job as LiveKit lists it for ever once assigned: running, since `startedAt` (epoch ms). */
const runningJob = (id: string, startedAt: number): ListedJob => ({
  id,
  state: { status: 'JS_RUNNING', startedAt: String(BigInt(startedAt) * 1_000_000n) },
});

/**
 * LiveKit, with the dispatch's job running: only the caller in the room until the 20 s deadline,
 * the first look at it failing, then `after` in the room.
 */
const flakyAtDeadline = (clock: Clock, after: object[]) => {
  const deadline = clock.now() + 20_000;
  let lateLooks = 0;
  return fakeLiveKit({
    ListParticipants: () =>
      clock.now() < deadline
        ? Response.json({ participants: [CALLER] })
        : ++lateLooks === 1
          ? twirpError(503, 'unavailable', 'boom')
          : Response.json({ participants: after }),
    ListDispatch: () => dispatch([{ state: { status: 'JS_RUNNING' } }]),
  });
};

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
    expect(await watchAgentArrival(callLedger(room), config, room, 'arrives', fakeClock())).toBe(
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
    expect(await watchAgentArrival(callLedger(room), config, room, 'dropped', clock)).toBe(
      'agent_joined',
    );
    // Looks at 1, 3, 7, 11 and 15 s: the first two are younger than the settle time, 7 s finds
    // the dispatch dropped, 11 s is 4 s after that new dispatch, 15 s finds the agent.
    expect(clock.slept).toEqual([1_000, 2_000, 4_000, 4_000, 4_000].slice(0, looks));
    expect(lk.methods()).not.toContain('DeleteDispatch'); // a slow job is never killed
    expect(lk.bodiesOf('CreateDispatch')).toEqual([
      { room, agentName: 'voice-agent', metadata: 'sealed' },
    ]);
    expect((await callRow(room))!.status).toBe('open');
  });

  it('hands the call over to a job the edge admitted (its own watch), without dispatching again', async () => {
    const room = await joinedCall('admitted');
    const clock = fakeClock();
    await admitAt(room, 'AJ_slow', clock.now());
    const lk = fakeLiveKit({ ListParticipants: () => Response.json({ participants: [CALLER] }) });
    expect(await watchAgentArrival(callLedger(room), config, room, 'admitted', clock)).toBe(
      'agent_coming',
    );
    expect(lk.methods()).toEqual(['ListParticipants']);
    expect((await callRow(room))!.status).toBe('open');
  });

  it('an agent admitted long ago that never joined is not on its way: the watch dispatches again (LiveKit still lists the dead job as running) and the next agent answers', async () => {
    const room = await joinedCall('admitted-dead');
    const clock = fakeClock();
    const long = clock.now() - 30_000;
    await admitAt(room, 'AJ_dead', long);
    let created = 0;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: created > 0 ? [CALLER, AGENT] : [CALLER] }),
      ListDispatch: () => dispatch([runningJob('AJ_dead', long - 500)]),
      CreateDispatch: () => {
        created++;
        return Response.json({ id: 'AD_2', agentName: 'voice-agent', room });
      },
    });
    expect(await watchAgentArrival(callLedger(room), config, room, 'admitted-dead', clock)).toBe(
      'agent_joined',
    );
    expect(lk.bodiesOf('CreateDispatch')).toEqual([
      { room, agentName: 'voice-agent', metadata: 'sealed' },
    ]);
  });

  it('leaves a dispatch alone while its job may still bring the agent', async () => {
    const room = await joinedCall('starting');
    let looks = 0;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: ++looks < 2 ? [CALLER] : [CALLER, AGENT] }),
      ListDispatch: () => dispatch([{ state: { status: 'JS_RUNNING' } }]),
    });
    await watchAgentArrival(callLedger(room), config, room, 'starting', fakeClock());
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
    expect(await watchAgentArrival(callLedger(room), config, room, 'nobody', clock)).toBe(
      'agent_unavailable',
    );
    expect(clock.now() - started).toBe(20_000);
    const [said] = lk.bodiesOf('SendData');
    expect(said).toMatchObject({ room, topic: 'call.end' });
    expect(JSON.parse(atob(said!.data))).toEqual({ reason: 'agent_unavailable' });
    expect(lk.methods().slice(-2)).toEqual(['SendData', 'DeleteRoom']);
    expect(await callRow(room)).toMatchObject({
      status: 'ended',
      end_reason: 'agent_unavailable',
      ended_by: 'system',
      end_strength: 1,
    });
  });

  it('at the deadline, a look LiveKit failed ends nothing: tried once more, then the call is left to the backstop', async () => {
    const room = await joinedCall('flaky');
    const lk = fakeLiveKit({
      ListParticipants: () => twirpError(500, 'internal', 'boom'),
      DeleteRoom: () => Response.json({}),
    });
    const clock = fakeClock();
    const started = clock.now();
    expect(await watchAgentArrival(callLedger(room), config, room, 'flaky', clock)).toBe(
      'left_to_backstop',
    );
    // Two looks at the deadline (the second a moment after the first), none after it.
    expect(clock.now() - started).toBeGreaterThan(20_000);
    expect(lk.methods().filter((m) => m === 'ListParticipants').length).toBeGreaterThan(2);
    expect(lk.methods()).not.toContain('DeleteRoom');
    expect(lk.methods()).not.toContain('SendData');
    expect((await callRow(room))!.status).toBe('open');
  });

  it('at the deadline, a failed look is tried once more: an agent found then keeps the call', async () => {
    const room = await joinedCall('flaky-then-here');
    const clock = fakeClock();
    const lk = flakyAtDeadline(clock, [CALLER, AGENT]);
    expect(await watchAgentArrival(callLedger(room), config, room, 'flaky-then-here', clock)).toBe(
      'agent_joined',
    );
    expect(lk.methods()).not.toContain('DeleteRoom');
    expect((await callRow(room))!.status).toBe('open');
  });

  it('at the deadline, a failed look then one that finds no agent and none admitted: the call ends', async () => {
    const room = await joinedCall('flaky-then-none');
    const clock = fakeClock();
    flakyAtDeadline(clock, [CALLER]);
    expect(await watchAgentArrival(callLedger(room), config, room, 'flaky-then-none', clock)).toBe(
      'agent_unavailable',
    );
    expect((await callRow(room))!.end_reason).toBe('agent_unavailable');
  });

  it('at the deadline, the ledger failing to say whether a job was admitted ends nothing', async () => {
    const room = await joinedCall('ledger-blip');
    const clock = fakeClock();
    const deadline = clock.now() + 20_000;
    const db = meteredD1(callLedger(room), (sql) =>
      clock.now() >= deadline && /SELECT agent_job_id/.test(sql)
        ? new Error('D1_ERROR: Network connection lost.')
        : undefined,
    ).db;
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER] }),
      ListDispatch: () => dispatch([{ state: { status: 'JS_RUNNING' } }]),
    });
    expect(await watchAgentArrival(db, config, room, 'ledger-blip', clock)).toBe(
      'left_to_backstop',
    );
    expect(lk.methods()).not.toContain('DeleteRoom');
    expect((await callRow(room))!.status).toBe('open');
  });

  it('stops when the call ended meanwhile', async () => {
    const room = await joinedCall('ended');
    await seedCall.ended(room);
    const lk = fakeLiveKit();
    expect(await watchAgentArrival(callLedger(room), config, room, 'ended', fakeClock())).toBe(
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
    expect(await watchAgentArrival(callLedger(room), config, room, 'second', fakeClock())).toBe(
      'not_the_first_caller',
    );
    expect(lk.calls).toHaveLength(0);
  });
});

describe('an admitted agent job that does not join', () => {
  /** A call whose first job the edge admitted now (as POST /calls/:room/admit does). */
  async function admittedCall(sub: string, clock: Clock) {
    const room = await joinedCall(sub);
    expect(await admitAgentJob(callLedger(room), room, 'AJ_first', clock.now())).toBe('admitted');
    return room;
  }

  it('joins within its grace: nothing is dispatched', async () => {
    const clock = fakeClock();
    const room = await admittedCall('joins', clock);
    let looks = 0;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: ++looks < 3 ? [CALLER] : [CALLER, AGENT] }),
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_joined',
    );
    expect(lk.methods()).not.toContain('CreateDispatch');
  });

  it('died on the way: past its grace the edge dispatches again at once, admits the next job in its place, and the call is answered', async () => {
    const clock = fakeClock();
    const admittedAt = clock.now();
    const room = await admittedCall('dies', clock);
    let createdAt: number | undefined;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({
          participants: createdAt && clock.now() > createdAt ? [CALLER, AGENT] : [CALLER],
        }),
      // LiveKit lists the dead job as running for as long as the room lives.
      ListDispatch: () => dispatch([runningJob('AJ_first', admittedAt - 300)]),
      CreateDispatch: () => {
        createdAt = clock.now();
        return Response.json({ id: 'AD_2', agentName: 'voice-agent', room });
      },
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_joined',
    );
    expect(createdAt! - admittedAt).toBe(ADMITTED_AGENT_GRACE_MS);
    expect(lk.bodiesOf('CreateDispatch')).toEqual([
      { room, agentName: 'voice-agent', metadata: 'sealed' },
    ]);
    // The next job asks to be admitted (after the new dispatch): it is, in the lost one's place.
    expect(await admitAgentJob(callLedger(room), room, 'AJ_next', createdAt! + 1_000)).toBe(
      'admitted',
    );
  });

  it('once the next job is admitted, leaves the call to that job’s own watch', async () => {
    const clock = fakeClock();
    const admittedAt = clock.now();
    const room = await admittedCall('replaced', clock);
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER] }),
      ListDispatch: () => dispatch([runningJob('AJ_first', admittedAt - 300)]),
      CreateDispatch: () => {
        void admitAgentJob(callLedger(room), room, 'AJ_next', clock.now() + 500);
        return Response.json({ id: 'AD_2', agentName: 'voice-agent', room });
      },
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_coming',
    );
    expect(lk.methods().filter((m) => m === 'CreateDispatch')).toHaveLength(1);
    expect((await callRow(room))!.status).toBe('open');
  });

  it('a late job that renews its place as it joins: this watch stops, dispatching nothing (the renewal has its own watch)', async () => {
    const clock = fakeClock();
    const admittedAt = clock.now();
    const room = await admittedCall('renews', clock);
    let looks = 0;
    const lk = fakeLiveKit({
      ListParticipants: async () => {
        // At the look 11 s in, the job asks again before joining (POST /admit, joining).
        if (++looks === 4)
          expect(
            await admitAgentJob(callLedger(room), room, 'AJ_first', clock.now(), { joining: true }),
          ).toBe('admitted');
        return Response.json({ participants: [CALLER] });
      },
      ListDispatch: () => dispatch([runningJob('AJ_first', admittedAt - 300)]),
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_coming',
    );
    expect(lk.methods()).not.toContain('CreateDispatch');
    expect((await callRow(room))!.agent_admitted_at).toBe(admittedAt + 11_000);
  });

  it('no other comes: the call ends as agent_unavailable once the replacement wait is over, the room told why', async () => {
    const clock = fakeClock();
    const admittedAt = clock.now();
    const room = await admittedCall('none-comes', clock);
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER] }),
      ListDispatch: () => dispatch([runningJob('AJ_first', admittedAt - 300)]),
      CreateDispatch: () => Response.json({ id: 'AD_n', agentName: 'voice-agent', room }),
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_unavailable',
    );
    expect(clock.now() - admittedAt).toBe(ADMISSION_WATCH_MS);
    expect(lk.methods().slice(-2)).toEqual(['SendData', 'DeleteRoom']);
    expect(await callRow(room)).toMatchObject({
      status: 'ended',
      end_reason: 'agent_unavailable',
      ended_by: 'system',
    });
  });

  it(`a caller who has waited ${MAX_AGENT_WAIT_MS / 1000} s already gets no further replacement: agent_unavailable (a crash loop ends)`, async () => {
    const clock = fakeClock();
    const admittedAt = clock.now();
    const room = await admittedCall('crash-loop', clock);
    await atCall(
      room,
      "UPDATE call_participants SET joined_at = ?2 WHERE room = ?1 AND kind != 'AGENT'",
      room,
      clock.now() - MAX_AGENT_WAIT_MS,
    );
    const lk = fakeLiveKit({
      ListParticipants: () => Response.json({ participants: [CALLER] }),
      ListDispatch: () => dispatch([runningJob('AJ_first', admittedAt - 300)]),
    });
    expect(await watchAdmittedAgent(callLedger(room), config, room, 'AJ_first', clock)).toBe(
      'agent_unavailable',
    );
    expect(lk.methods()).not.toContain('CreateDispatch');
    expect((await callRow(room))!.end_reason).toBe('agent_unavailable');
  });
});

describe('admitting agent jobs', () => {
  it('one per call: the same job again is still admitted, another within the grace is not, one after the grace replaces it', async () => {
    const room = await joinedCall('admissions');
    const t = 5_000_000;
    expect(await admitAgentJob(callLedger(room), room, 'AJ_a', t)).toBe('admitted');
    expect(await admitAgentJob(callLedger(room), room, 'AJ_a', t + 1_000)).toBe('again');
    // A retried request keeps the first admission's time: its grace is not extended.
    expect((await callRow(room))!.agent_admitted_at).toBe(t);
    expect(
      await admitAgentJob(callLedger(room), room, 'AJ_b', t + ADMITTED_AGENT_GRACE_MS - 1),
    ).toBe('refused');
    expect(
      await admitAgentJob(callLedger(room), room, 'AJ_b', t + ADMITTED_AGENT_GRACE_MS + 1),
    ).toBe('admitted');
    expect((await callRow(room))!.agent_job_id).toBe('AJ_b');
  });

  it('a job asking again as it joins late renews its place, unless another took it', async () => {
    const room = await joinedCall('renewals');
    const t = 6_000_000;
    const late = t + ADMITTED_AGENT_GRACE_MS + 5_000;
    expect(await admitAgentJob(callLedger(room), room, 'AJ_a', t)).toBe('admitted');
    expect(await admitAgentJob(callLedger(room), room, 'AJ_a', late, { joining: true })).toBe(
      'admitted',
    );
    expect((await callRow(room))!.agent_admitted_at).toBe(late);
    // A replacement asking within the renewed grace stays out.
    expect(await admitAgentJob(callLedger(room), room, 'AJ_b', late + 1_000)).toBe('refused');
    // Once another holds the place within its grace, the late job's ask is refused.
    const later = late + ADMITTED_AGENT_GRACE_MS + 1;
    expect(await admitAgentJob(callLedger(room), room, 'AJ_b', later)).toBe('admitted');
    expect(
      await admitAgentJob(callLedger(room), room, 'AJ_a', later + 1_000, { joining: true }),
    ).toBe('refused');
    expect((await callRow(room))!.agent_job_id).toBe('AJ_b');
  });

  it('the grace is shorter than the longest AGENT_WAIT_SECONDS, and a whole admission watch fits in a waitUntil', () => {
    expect(ADMITTED_AGENT_GRACE_MS).toBeLessThan(25_000);
    expect(ADMISSION_WATCH_MS).toBeLessThanOrEqual(25_000);
  });
});
