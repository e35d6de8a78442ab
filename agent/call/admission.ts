import type { JobContext } from '@livekit/agents';
import {
  AdmissionAnswer,
  signBody,
  type AdmissionRequest,
  errorMessage,
} from '../../wire-contract/index.ts';
import type { AgentConfig } from '../config.ts';
import type { LogFn } from '../log.ts';

export type AdmissionOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  timeoutMs: number;
  fetchImpl?: typeof fetch;
  /** The agent's clock, for the time to join (tests pin it). */
  now?: () => number;
};

export type Admission =
  | {
      admit: true;
      asked: boolean;
      problem?: string;
      /** By when (this host's clock, epoch ms) the job should have joined, if the edge said. */
      joinBy?: number;
    }
  | { admit: false; reason: string };

/**
 * How close to its time to join a job still on its way asks the edge again before joining: a
 * replacement is admitted no sooner than the edge's grace, plus a job's start, after the first
 * admission, and this covers the room connect that follows a check made just before the time.
 */
export const JOIN_MARGIN_MS = 5_000;

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
  const now = o.now ?? Date.now;
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
        const { admit, reason, join_within_ms: within } = answer.data;
        if (!admit) return { admit: false, reason: reason ?? 'refused' };
        // Counted from the answer's arrival on this host's clock: the edge's need not agree.
        return { admit: true, asked, ...(within !== undefined && { joinBy: now() + within }) };
      }
      problem = `edge answered ${res.status}`;
      // A refusal of the request itself (4xx but 429) will not change on a retry.
      if (res.status < 500 && res.status !== 429) break;
    } catch (err) {
      problem = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, deadline - Date.now()))));
  }
  return { admit: true, asked, problem };
}

/**
 * Just before the job joins its room: is it still the call's agent? A job whose setup took until
 * near or past its time to join (`joinBy`: a slow hooks module, a loaded host) may have been taken
 * for lost by the edge, which then admitted a replacement; so it asks again (`joining`), and the
 * edge either renews its place (a replacement coming later stays out) or answers `superseded`.
 * A job in good time asks nothing: the greeting's fast path has no second round trip. An edge
 * that cannot answer admits, as for the first ask.
 */
export async function askBeforeJoining(
  ask: AdmissionRequest,
  joinBy: number | undefined,
  o: AdmissionOptions,
): Promise<Admission> {
  if (joinBy === undefined || (o.now ?? Date.now)() < joinBy - JOIN_MARGIN_MS)
    return { admit: true, asked: false };
  return askAdmission({ ...ask, joining: true }, o);
}

/** This job's admission by the edge, and the check it makes before it joins the room. */
export type EdgeAdmission = {
  /**
   * False when another job took the call while this one was on its way: leave as a refused job
   * does (no model work, no hooks, no report). Asks once; later calls repeat the first answer.
   */
  stillOursBeforeJoining(): Promise<boolean>;
};

/**
 * Whether the edge admits this job's call (askAdmission): undefined when it refuses. With no edge
 * configured, it does, and there is nothing to ask before joining.
 */
export async function admittedByEdge(
  ctx: JobContext,
  config: AgentConfig,
  room: string,
  log: LogFn,
): Promise<EdgeAdmission | undefined> {
  if (!config.EDGE_URL) return { stillOursBeforeJoining: async () => true };
  const info = ctx.job.room;
  const createdAtMs = Number(info?.creationTimeMs ?? 0) || Number(info?.creationTime ?? 0) * 1000;
  const request: AdmissionRequest = {
    room,
    room_sid: info?.sid ?? '',
    job_id: ctx.job.id,
    ...(createdAtMs > 0 && { room_created_at: createdAtMs }),
  };
  const options: AdmissionOptions = {
    edgeUrl: config.EDGE_URL,
    apiKey: config.LIVEKIT_API_KEY,
    apiSecret: config.LIVEKIT_API_SECRET,
    timeoutMs: config.ADMISSION_TIMEOUT_MS,
  };
  const answer = await askAdmission(request, options);
  if (!answer.admit) {
    log('warn', 'call refused by the edge: leaving without a word', { reason: answer.reason });
    return undefined;
  }
  if (answer.problem)
    log('warn', 'edge admission check failed: taking the call', { problem: answer.problem });
  let before: Promise<boolean> | undefined;
  return {
    stillOursBeforeJoining: () =>
      (before ??= askBeforeJoining(request, answer.joinBy, options).then((again) => {
        if (!again.admit) {
          log(
            'warn',
            'another agent job took this call while this one was on its way: leaving without a word',
            { reason: again.reason },
          );
          return false;
        }
        if (again.problem)
          log('warn', 'edge check before joining failed: joining', { problem: again.problem });
        return true;
      })),
  };
}
