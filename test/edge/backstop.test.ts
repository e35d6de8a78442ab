import { createScheduledController } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import worker from '../../edge/index.ts';
import { runBackstop } from '../../edge/backstop.ts';
import { fakeLiveKit, issueToken, ledgerRow, seedCall, testEnv, twirpError } from './helpers.ts';

afterEach(() => vi.restoreAllMocks());

describe('max-duration backstop (cron)', () => {
  it('deletes an overdue room and records max_duration; a closed or in-time call is left alone', async () => {
    const overdue = await issueToken('late');
    const inTime = await issueToken('fine');
    const closed = await issueToken('done');
    await seedCall.overdue(overdue.room_name, Date.now() - 120_000);
    await seedCall.overdue(closed.room_name, Date.now() - 120_000);
    await seedCall.ended(closed.room_name, { reason: 'participant_left' });
    const lk = fakeLiveKit();
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: '* * * * *' }),
      testEnv,
    );
    expect(lk.calls).toEqual([{ method: 'DeleteRoom', body: { room: overdue.room_name } }]);
    expect(await ledgerRow(overdue.room_name)).toMatchObject({
      status: 'ended',
      end_reason: 'max_duration',
      end_source: 'cron',
    });
    expect((await ledgerRow(inTime.room_name))!.status).toBe('open');
    expect((await ledgerRow(closed.room_name))!.end_reason).toBe('participant_left');
  });

  it('closes an overdue call whose room LiveKit already dropped, and retries one LiveKit refused', async () => {
    const gone = await issueToken('gone');
    const refused = await issueToken('refused');
    await seedCall.overdue(gone.room_name, 0);
    await seedCall.overdue(refused.room_name, 0);
    fakeLiveKit({
      DeleteRoom: (b) =>
        b.room === gone.room_name
          ? twirpError(404, 'not_found', 'requested room does not exist')
          : twirpError(500, 'internal', 'x'),
    });
    const result = await runBackstop(testEnv);
    expect(result).toEqual({ ended: [gone.room_name], failed: [refused.room_name] });
    expect((await ledgerRow(refused.room_name))!.status).toBe('open');
  });
});
