import type { JobContext, log } from '@livekit/agents';
import { AdmissionAnswer, signBody, type AdmissionRequest } from '../wire-contract/index.ts';
import type { AgentConfig } from './config.ts';

export type AdmissionOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  timeoutMs: number;
  fetchImpl?: typeof fetch;
};

export type Admission =
  { admit: true; asked: boolean; problem?: string } | { admit: false; reason: string };

/** One try's bound, so a lost request is retried within the budget instead of waited out. */
const ATTEMPT_MS = 2_000;

/**
 * Asks the edge whether this room still hosts an open call, before any model work, retrying
 * within `timeoutMs`. Only a clear "no" from the edge refuses: an edge that stays down, slow or
 * answers something else for the whole budget admits the call (with the problem, for the log),
 * because a real caller must not lose their call to an outage of the ledger. A revived room is
 * then still closed by the edge's webhook handling, a moment later.
 */
export async function askAdmission(ask: AdmissionRequest, o: AdmissionOptions): Promise<Admission> {
  const body = JSON.stringify(ask);
  const url = `${o.edgeUrl.replace(/\/$/, '')}/calls/${encodeURIComponent(ask.room)}/admit`;
  const deadline = Date.now() + o.timeoutMs;
  let problem = 'no answer';
  let asked = false;
  while (Date.now() < deadline) {
    try {
      const res = await (o.fetchImpl ?? fetch)(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: await signBody(body, o.apiKey, o.apiSecret),
        },
        body,
        signal: AbortSignal.timeout(Math.max(100, Math.min(ATTEMPT_MS, deadline - Date.now()))),
      });
      asked = true;
      if (res.ok) {
        const answer = AdmissionAnswer.safeParse(await res.json());
        if (!answer.success) return { admit: true, asked, problem: 'unreadable answer' };
        return answer.data.admit
          ? { admit: true, asked }
          : { admit: false, reason: answer.data.reason ?? 'refused' };
      }
      problem = `edge answered ${res.status}`;
      // A refusal of the request itself (4xx but 429) will not change on a retry.
      if (res.status < 500 && res.status !== 429) break;
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, deadline - Date.now()))));
  }
  return { admit: true, asked, problem };
}

/** Whether the edge admits this job's call (askAdmission); with no edge configured, it is. */
export async function admittedByEdge(
  ctx: JobContext,
  config: AgentConfig,
  room: string,
  logger: ReturnType<typeof log>,
): Promise<boolean> {
  if (!config.EDGE_URL) return true;
  const info = ctx.job.room;
  const createdAtMs = Number(info?.creationTimeMs ?? 0) || Number(info?.creationTime ?? 0) * 1000;
  const answer = await askAdmission(
    {
      room,
      room_sid: info?.sid ?? '',
      job_id: ctx.job.id,
      ...(createdAtMs > 0 && { room_created_at: createdAtMs }),
    },
    {
      edgeUrl: config.EDGE_URL,
      apiKey: config.LIVEKIT_API_KEY,
      apiSecret: config.LIVEKIT_API_SECRET,
      timeoutMs: config.ADMISSION_TIMEOUT_MS,
    },
  );
  if (!answer.admit) {
    logger.warn({ reason: answer.reason }, 'call refused by the edge: leaving without a word');
    return false;
  }
  if (answer.problem)
    logger.warn({ problem: answer.problem }, 'edge admission check failed: taking the call');
  return true;
}
