import { afterEach, describe, expect, it, vi } from 'vitest';
import { watchClock } from '../../edge/call/agent-arrival.ts';
import { ADMITTED_AGENT_GRACE_MS } from '../../edge/ledger/admissions.ts';
import { askAdmission, fakeLiveKit, issueToken, callRow, atCall } from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

const CALLER = { identity: 'caller', kind: 'STANDARD' };
const AGENT = { identity: 'agent-AJ_next', kind: 'AGENT' };

/** The edge admitted `jobId` as the call's agent `agoMs` ago (its grace long over). */
const admittedAgo = (room: string, jobId: string, agoMs: number) =>
  atCall(
    room,
    'UPDATE calls SET agent_job_id = ?2, agent_admitted_at = ?3 WHERE room = ?1',
    room,
    jobId,
    Date.now() - agoMs,
  );

/** A call whose admitted job `jobId` is past its grace and not in the room: only the caller is. */
async function agentOverdue(sub: string, jobId: string) {
  const { room_name: room } = await issueToken(sub);
  await admittedAgo(room, jobId, ADMITTED_AGENT_GRACE_MS + 5_000);
  const lk = fakeLiveKit({ ListParticipants: () => Response.json({ participants: [CALLER] }) });
  return { room, lk };
}

describe('an admitted job tells how long it has to join, and one that is late asks again', () => {
  it('the admission says how long the job has to join; a retried request does not extend it', async () => {
    const { room_name: room } = await issueToken('join-within');
    fakeLiveKit();
    const first = await askAdmission(room, { job_id: 'AJ_first' });
    expect(first.data).toEqual({ admit: true, join_within_ms: ADMITTED_AGENT_GRACE_MS });
    await atCall(
      room,
      'UPDATE calls SET agent_admitted_at = agent_admitted_at - 4000 WHERE room = ?',
      room,
    );
    const retried = await askAdmission(room, { job_id: 'AJ_first' });
    expect(retried.data.admit).toBe(true);
    expect(retried.data.join_within_ms).toBeLessThanOrEqual(ADMITTED_AGENT_GRACE_MS - 4000);
  });

  it('a late job asking before it joins, after another was admitted in its place, is told it was superseded; the call stays with the other', async () => {
    const { room, lk } = await agentOverdue('superseded', 'AJ_first');
    // The edge took the first for lost and dispatched again: the next job is admitted.
    expect((await askAdmission(room, { job_id: 'AJ_next' })).data.admit).toBe(true);
    const late = await askAdmission(room, { job_id: 'AJ_first', joining: true });
    expect(late.data).toEqual({ admit: false, reason: 'superseded' });
    expect((await callRow(room))!.agent_job_id).toBe('AJ_next');
    expect(lk.methods()).not.toContain('DeleteRoom');
  });

  it('a late job still the call’s agent holds its place as it joins: the replacement dispatched meanwhile stays out', async () => {
    const { room } = await agentOverdue('holds-place', 'AJ_first');
    const late = await askAdmission(room, { job_id: 'AJ_first', joining: true });
    expect(late.data).toEqual({ admit: true, join_within_ms: ADMITTED_AGENT_GRACE_MS });
    const replacement = await askAdmission(room, { job_id: 'AJ_next' });
    expect(replacement.data).toEqual({ admit: false, reason: 'agent_present' });
    expect((await callRow(room))!.agent_job_id).toBe('AJ_first');
  });

  it('a late job whose replacement never came either takes the call back', async () => {
    const { room } = await agentOverdue('takes-back', 'AJ_next');
    const late = await askAdmission(room, { job_id: 'AJ_first', joining: true });
    expect(late.data).toEqual({ admit: true, join_within_ms: ADMITTED_AGENT_GRACE_MS });
    expect((await callRow(room))!.agent_job_id).toBe('AJ_first');
  });
});

describe('POST /calls/:room/admit watches the job it admits', () => {
  it('a job admitted through the route that never joins is replaced: past its grace a new dispatch reaches LiveKit, and the next agent answers', async () => {
    const { room_name: room } = await issueToken('route-watch');
    // The watch's time passes only when it sleeps: its 15 s grace takes no real time.
    const admittedAround = Date.now();
    let t = admittedAround;
    vi.spyOn(watchClock, 'now').mockImplementation(() => t);
    vi.spyOn(watchClock, 'sleep').mockImplementation(async (ms) => void (t += ms));
    let dispatched = false;
    const lk = fakeLiveKit({
      ListParticipants: () =>
        Response.json({ participants: dispatched ? [CALLER, AGENT] : [CALLER] }),
      ListDispatch: () =>
        Response.json({
          agentDispatches: [
            {
              id: 'AD_1',
              agentName: 'voice-agent',
              room,
              metadata: 'sealed',
              // LiveKit lists the admitted job as running for as long as the room lives.
              state: {
                jobs: [
                  {
                    id: 'AJ_first',
                    state: {
                      status: 'JS_RUNNING',
                      startedAt: String(BigInt(admittedAround - 300) * 1_000_000n),
                    },
                  },
                ],
              },
            },
          ],
        }),
      CreateDispatch: (b) => {
        dispatched = true;
        return Response.json({ id: 'AD_2', agentName: b.agentName, room });
      },
    });
    // The route's waitUntil runs the watch; call() waits for it before it answers.
    const res = await askAdmission(
      room,
      { job_id: 'AJ_first' },
      { overrides: { AGENT_WAIT_SECONDS: '20' } },
    );
    expect(res.data.admit).toBe(true);
    expect(lk.bodiesOf('CreateDispatch')).toEqual([
      { room, agentName: 'voice-agent', metadata: 'sealed' },
    ]);
    expect((await callRow(room))!.status).toBe('open');
  });
});
