import * as z from 'zod';

/**
 * The edge's error body (edge/errors.ts): `{ "error": { "code", "message" } }`. The agent reads the
 * code of a refused report to tell "never" from "not now".
 */
export const EdgeErrorBody = z.object({
  error: z.object({ code: z.string().min(1).max(100), message: z.string().optional() }),
});

/**
 * The answers to `POST /calls/:room/report` that mean the report can never be accepted, so the
 * agent drops it (with an error line). Each is a judgement on the body or the room, which do not
 * change however long the report waits. Every other refusal waits in the outbox: a 401 or 403
 * (a signing key the edge does not know yet, a clock minutes off), a 404 without this code (a
 * wrong EDGE_URL, a proxy), anything without the edge's error body. The edge names a room it never
 * issued `404 call_not_found`. A change here is a change of contract: both sides read this list.
 */
export const FINAL_REPORT_REFUSALS = [
  { status: 400, code: 'malformed_body' },
  { status: 400, code: 'malformed_json' },
  { status: 400, code: 'invalid_field' },
  { status: 400, code: 'unsupported_field' },
  { status: 404, code: 'call_not_found' },
  // Only after the minimal report was refused too (the agent answers a first 413 with it).
  { status: 413, code: 'body_too_large' },
] as const satisfies readonly { status: number; code: string }[];

export function isFinalReportRefusal(status: number, code: string | undefined): boolean {
  return FINAL_REPORT_REFUSALS.some((r) => r.status === status && r.code === code);
}
