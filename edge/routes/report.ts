import { Hono } from 'hono';
import { CallReport, verifySignedBody } from '../wire-contract/index.ts';
import type { AppEnv } from '../env.ts';
import { ApiError } from '../errors.ts';
import { closeCall, findCall, storeReport } from '../ledger/calls.ts';
import { log } from '../log.ts';
import { parseJsonText, readBody } from '../middleware/json-body.ts';

const MAX_REPORT_BYTES = 1024 * 1024;

/** The agent's signed end-of-call report; accepted once per call id, retries answered 200. */
export const reportRoutes = new Hono<AppEnv>().post('/calls/:room/report', async (c) => {
  const config = c.get('config');
  const room = c.req.param('room');
  const raw = await readBody(c, MAX_REPORT_BYTES);
  const verified = await verifySignedBody(raw, c.req.header('authorization'), config.LIVEKIT_API_KEY, config.LIVEKIT_API_SECRET);
  if (!verified.ok) throw new ApiError(401, 'invalid_signature', `report signature rejected: ${verified.problem}`);
  const report = parseJsonText(CallReport, raw);
  if (report.room !== room) throw new ApiError(400, 'invalid_field', 'room: does not match the URL');
  if (!(await findCall(c.env.LEDGER, room))) throw new ApiError(404, 'call_not_found', `no call for room ${room}`);
  const stored = await storeReport(c.env.LEDGER, report, raw, Date.now());
  if (!stored) return c.json({ accepted: false, duplicate: true, call_id: report.call_id });
  // An agent that only saw the room vanish cannot say who ended it: that end stays replaceable.
  await closeCall(c.env.LEDGER, room, {
    reason: report.end_reason,
    endedBy: report.ended_by,
    source: 'agent',
    at: Date.parse(report.ended_at),
    strong: report.end_reason !== 'room_deleted',
  });
  log(c, 'info', 'report accepted', { room, call_id: report.call_id, end_reason: report.end_reason });
  return c.json({ accepted: true, duplicate: false, call_id: report.call_id }, 201);
});
