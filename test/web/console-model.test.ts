import { describe, expect, it } from 'vitest';
import {
  callsPerHour,
  durationInWords,
  endedByInWords,
  endReasonCounts,
  endReasonInWords,
  mergeCalls,
  refusalInWords,
  timeline,
  type Call,
} from '../../edge/web/console/model.ts';
import { END_REASONS, END_REASON_VALUES } from '../../wire-contract/end-reasons.ts';

const call = (over: Partial<Call>): Call => ({
  room: 'call-a',
  status: 'ended',
  agent_name: 'voice-agent',
  end_mode: 'end_for_all',
  created_at: '2026-11-30T10:00:00.000Z',
  started_at: '2026-11-30T10:00:01.000Z',
  ended_at: '2026-11-30T10:01:00.000Z',
  duration_seconds: 59,
  end_reason: 'agent_end_call',
  ended_by: 'agent',
  end_source: 'agent',
  end_note: null,
  agent_removed_at: null,
  revival_attempts: 0,
  last_revival_at: null,
  ...over,
});

describe('the calls console, without the DOM', () => {
  it.each(END_REASON_VALUES)('says the end reason %s in the contract words', (reason) => {
    expect(endReasonInWords(reason)).toBe(END_REASONS[reason].clientMessage);
  });

  it('says an unknown reason as it is, and none as nothing', () => {
    expect(endReasonInWords('from_the_future')).toBe('from_the_future');
    expect(endReasonInWords(null)).toBe('');
  });

  it.each([
    [null, '—'],
    [4.4, '4 s'],
    [59, '59 s'],
    [61, '1:01'],
    [3725, '1 h 02 min'],
  ])('words a duration of %s seconds as %s', (s, words) => {
    expect(durationInWords(s)).toBe(words);
  });

  it('puts token, joins, leaves, the end and the revival in time order, the report last', () => {
    const events = timeline(
      call({
        participants: [
          {
            identity: 'anon-1',
            kind: 'STANDARD',
            issued_at: '2026-11-30T10:00:00.500Z',
            joined_at: '2026-11-30T10:00:02.000Z',
            left_at: '2026-11-30T10:01:00.000Z',
            disconnect_reason: 'ROOM_DELETED',
          },
          {
            identity: 'agent-AJ_1',
            kind: 'AGENT',
            issued_at: null,
            joined_at: '2026-11-30T10:00:03.000Z',
            left_at: null,
            disconnect_reason: null,
          },
        ],
        revival_attempts: 2,
        last_revival_at: '2026-11-30T10:02:00.000Z',
        report: {
          call_id: 'RM_1:AJ_1',
          transcript: [{ role: 'assistant', text: 'Hello!', at: '2026-11-30T10:00:04.000Z' }],
          usage: {},
          errors: [],
          hooks: [
            { name: 'crm', status: 'ok', duration_ms: 12 },
            { name: 'mail', status: 'timeout', duration_ms: 2000 },
          ],
          end_reason: 'agent_end_call',
        },
      }),
    );
    expect(events.map((e) => e.kind)).toEqual([
      'created',
      'token',
      'started',
      'joined',
      'joined',
      'left',
      'ended',
      'revival',
      'report',
    ]);
    expect(events[4]!.what).toBe('Assistant (agent-AJ_1) joined');
    expect(events[5]!.what).toBe('anon-1 left (ROOM_DELETED)');
    expect(events[6]!.what).toBe('Ended: The assistant ended the call. (agent_end_call, by agent)');
    expect(events[8]!.what).toBe(
      'Report received: 1 transcript line, 2 hooks (1 not ok), 0 errors',
    );
  });

  it.each([
    [
      { kind: 'participant', identity: 'anon-7f3a' },
      'Ended: The call was ended for everyone. (api_end_call, by participant anon-7f3a; note from participant anon-7f3a: rude agent)',
      'participant anon-7f3a, through the API',
    ],
    [
      { kind: 'user', identity: 'alice@example.com' },
      'Ended: The call was ended for everyone. (api_end_call, by user alice@example.com; note from user alice@example.com: rude agent)',
      'user alice@example.com, through the API',
    ],
    [
      { kind: 'app', identity: null },
      'Ended: The call was ended for everyone. (api_end_call, by the backend (app key); note from the backend (app key): rude agent)',
      'the backend (app key), through the API',
    ],
    [
      { kind: 'admin', identity: null },
      'Ended: The call was ended for everyone. (api_end_call, by an operator (admin key); note from an operator (admin key): rude agent)',
      'an operator (admin key), through the API',
    ],
  ])('says who ended a call through the API and wrote its note: %o', (caller, ended, by) => {
    const c = call({
      end_reason: 'api_end_call',
      ended_by: 'api',
      end_source: 'api',
      end_note: 'rude agent',
      end_caller: caller,
    });
    expect(timeline(c).find((e) => e.kind === 'ended')!.what).toBe(ended);
    expect(endedByInWords(c)).toBe(by);
  });

  it("says the edge's own note, and an end with no API caller, as before", () => {
    const c = call({
      end_reason: 'max_duration',
      ended_by: 'system',
      end_source: 'cron',
      end_note: 'edge backstop',
      end_caller: null,
    });
    expect(timeline(c).find((e) => e.kind === 'ended')!.what).toBe(
      'Ended: The call reached its time limit. (max_duration, by system; note: edge backstop)',
    );
    expect(endedByInWords(c)).toBe('system via cron');
  });

  it('counts calls per hour over the loaded window, empty hours kept, at most 48', () => {
    const at = (h: number) =>
      call({ created_at: new Date(Date.UTC(2026, 10, 30, h, 5)).toISOString() });
    const bins = callsPerHour([at(9), at(9), at(12)]);
    expect(bins.map((b) => b.count)).toEqual([2, 0, 0, 1]);
    expect(new Date(bins[0]!.hour).toISOString()).toBe('2026-11-30T09:00:00.000Z');
    expect(callsPerHour([])).toEqual([]);
    const long = callsPerHour([
      call({ created_at: '2026-11-01T00:00:00.000Z' }),
      call({ created_at: '2026-11-30T00:00:00.000Z' }),
    ]);
    expect(long).toHaveLength(48);
    expect(long.at(-1)!.count).toBe(1);
  });

  it('counts end reasons, open calls as open, most frequent first', () => {
    expect(
      endReasonCounts([
        call({}),
        call({ status: 'open', end_reason: null }),
        call({ end_reason: 'participant_left' }),
        call({}),
      ]),
    ).toEqual([
      { reason: 'agent_end_call', count: 2 },
      { reason: 'open', count: 1 },
      { reason: 'participant_left', count: 1 },
    ]);
  });

  it('merges a refreshed page over the loaded calls: newest first, each room once', () => {
    const old = [
      call({ room: 'b', created_at: '2026-11-30T10:00:00.000Z', status: 'open' }),
      call({ room: 'a', created_at: '2026-11-30T09:00:00.000Z' }),
    ];
    const fresh = [
      call({ room: 'c', created_at: '2026-11-30T11:00:00.000Z' }),
      call({ room: 'b', created_at: '2026-11-30T10:00:00.000Z', status: 'ended' }),
    ];
    const merged = mergeCalls(old, fresh);
    expect(merged.map((c) => [c.room, c.status])).toEqual([
      ['c', 'ended'],
      ['b', 'ended'],
      ['a', 'ended'],
    ]);
  });

  it('says a refused key clearly', () => {
    expect(refusalInWords(401, 'invalid_credential')).toBe(
      'That key was not accepted. Check the admin key and sign in again.',
    );
    expect(refusalInWords(403, 'forbidden')).toMatch(/needs the admin key/);
    expect(refusalInWords(0)).toMatch(/Could not reach the edge/);
    expect(refusalInWords(502, 'livekit_error', 'boom')).toBe(
      'The edge answered 502 livekit_error: boom.',
    );
  });
});
