import { describe, expect, it } from 'vitest';
import { EdgeErrorBody, isFinalReportRefusal } from '../../wire-contract/index.ts';
import { callReportFor } from '../support/call-report-fixture.ts';
import { call, issueToken, signAsLiveKit } from '../support/edge/helpers.ts';

/**
 * The agent drops a refused report only on the (status, code) pairs of FINAL_REPORT_REFUSALS and
 * keeps it in its outbox on any other. These are the real edge's answers, read the way the agent
 * reads them: a refusal the edge means for good must be on the list, one that can pass (a key
 * the edge does not know yet, a clock off) must not.
 */
async function answer(room: string, body: string, auth?: string) {
  const res = await call(`/calls/${room}/report`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth ?? (await sign(body)) },
    body,
  });
  const code = EdgeErrorBody.safeParse(res.data).data?.error.code;
  return { status: res.status, code, final: isFinalReportRefusal(res.status, code) };
}
const sign = (body: string) => signAsLiveKit(body);

describe('what the agent makes of the edge refusing a report', () => {
  it('final: a room the edge never issued, a body that is not JSON, a report for another room, one over 1 MiB', async () => {
    const never = JSON.stringify(callReportFor('call-never-issued'));
    expect(await answer('call-never-issued', never)).toEqual({
      status: 404,
      code: 'call_not_found',
      final: true,
    });
    const { room_name } = await issueToken('refusals-1');
    expect(await answer(room_name, '{not json')).toMatchObject({ status: 400, final: true });
    const other = JSON.stringify(callReportFor('call-elsewhere'));
    expect(await answer(room_name, other)).toMatchObject({ status: 400, final: true });
    const huge = JSON.stringify({ ...callReportFor(room_name), pad: 'x'.repeat(1024 * 1024) });
    expect(await answer(room_name, huge)).toMatchObject({ status: 413, final: true });
  });

  it('kept: a signature by another key (a rotation), an expired one (a clock off), none', async () => {
    const { room_name } = await issueToken('refusals-2');
    const body = JSON.stringify(callReportFor(room_name));
    const otherKey = await signAsLiveKit(body, { key: 'APInext', secret: 'n'.repeat(40) });
    const expired = await signAsLiveKit(body, { ttl: -600 });
    for (const auth of [otherKey, expired, 'Bearer '])
      expect(await answer(room_name, body, auth)).toMatchObject({ status: 401, final: false });
  });
});
