import { createScheduledController } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import worker from '../../edge/index.ts';
import { runBackstop } from '../../edge/call/backstop.ts';
import {
  fakeLiveKit,
  issueToken,
  callRow,
  seedCall,
  testEnv,
  twirpError,
} from '../support/edge/helpers.ts';

afterEach(() => vi.restoreAllMocks());

describe('max-duration backstop (cron)', () => {
  it('deletes an overdue room and records max_duration; a closed or in-time call is left alone', async () => {
    const overdue = await issueToken('late');
    const inTime = await issueToken('fine');
    const closed = await issueToken('done');
    await seedCall.live(overdue.room_name, Date.now() - 120_000);
    await seedCall.live(closed.room_name, Date.now() - 120_000);
    await seedCall.ended(closed.room_name, { reason: 'participant_left' });
    const lk = fakeLiveKit();
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: '* * * * *' }),
      testEnv,
    );
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room: overdue.room_name } }]);
    expect(await callRow(overdue.room_name)).toMatchObject({
      status: 'ended',
      end_reason: 'max_duration',
      end_source: 'cron',
    });
    expect((await callRow(inTime.room_name))!.status).toBe('open');
    expect((await callRow(closed.room_name))!.end_reason).toBe('participant_left');
  });

  it('closes an overdue call whose room LiveKit already dropped, and retries one LiveKit refused', async () => {
    const gone = await issueToken('gone');
    const refused = await issueToken('refused');
    await seedCall.live(gone.room_name, 60_000);
    await seedCall.live(refused.room_name, 60_000);
    fakeLiveKit({
      DeleteRoom: (b) =>
        b.room === gone.room_name
          ? twirpError(404, 'not_found', 'requested room does not exist')
          : twirpError(500, 'internal', 'x'),
    });
    const result = await runBackstop(testEnv);
    expect(result).toEqual({ ended: [gone.room_name], failed: [refused.room_name], notJoined: [] });
    expect((await callRow(refused.room_name))!.status).toBe('open');
  });
});

describe('tokens that are never used (cron)', () => {
  it('closes a call whose last token expired unused as not_joined, and never deletes a room for it', async () => {
    const unused = await issueToken('page-load');
    await seedCall.unused(unused.room_name, Date.now() - 120_000, { archiveOnly: true });
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    const result = await runBackstop(testEnv);
    expect(result.notJoined).toEqual([unused.room_name]);
    expect(lk.bodiesOf('ListRooms')[0]!.names).toContain(unused.room_name);
    expect(lk.bodiesOf('DeleteRoom').map((b) => b.room)).not.toContain(unused.room_name);
    expect(await callRow(unused.room_name)).toMatchObject({
      status: 'ended',
      end_reason: 'not_joined',
      ended_by: 'system',
      end_source: 'cron',
    });
  });

  it('leaves a call open while its token can still be used', async () => {
    const fresh = await issueToken('just-fetched');
    const lk = fakeLiveKit({ ListRooms: () => Response.json({ rooms: [] }) });
    const result = await runBackstop(testEnv);
    expect(result.notJoined).not.toContain(fresh.room_name);
    expect(lk.bodiesOf('ListRooms').flatMap((b) => b.names)).not.toContain(fresh.room_name);
    expect((await callRow(fresh.room_name))!.status).toBe('open');
  });

  it('marks the call started instead when LiveKit has the room (its start was never reported)', async () => {
    const unseen = await issueToken('no-webhooks');
    await seedCall.unused(unseen.room_name, Date.now() - 120_000, { archiveOnly: true });
    fakeLiveKit({
      ListRooms: () => Response.json({ rooms: [{ name: unseen.room_name, sid: 'RM_1' }] }),
    });
    const result = await runBackstop(testEnv);
    expect(result.notJoined).toEqual([]);
    const row = await callRow(unseen.room_name);
    expect(row!.status).toBe('open');
    expect(row!.started_at).not.toBeNull();
  });

  it('keeps the calls open for the next run when LiveKit cannot answer', async () => {
    const unsure = await issueToken('livekit-down');
    await seedCall.unused(unsure.room_name, Date.now() - 120_000, { archiveOnly: true });
    fakeLiveKit({ ListRooms: () => twirpError(503, 'unavailable', 'down') });
    const result = await runBackstop(testEnv);
    expect(result.failed).toContain(unsure.room_name);
    expect((await callRow(unsure.room_name))!.status).toBe('open');
  });
});
