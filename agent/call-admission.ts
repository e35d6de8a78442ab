import { AdmissionAnswer, signBody, type AdmissionRequest } from '../wire-contract/index.ts';

export type AdmissionOptions = {
  edgeUrl: string;
  apiKey: string;
  apiSecret: string;
  timeoutMs: number;
  fetchImpl?: typeof fetch;
};

export type Admission =
  { admit: true; asked: boolean; problem?: string } | { admit: false; reason: string };

/**
 * Asks the edge whether this room still hosts an open call, before any model work. Only a clear
 * "no" from the edge refuses: an edge that is down, slow or answers something else admits the
 * call (with the problem, for the log), because a real caller must not lose their call to an
 * outage of the ledger. A revived room is then still closed by the edge's webhook handling.
 */
export async function askAdmission(ask: AdmissionRequest, o: AdmissionOptions): Promise<Admission> {
  const body = JSON.stringify(ask);
  const url = `${o.edgeUrl.replace(/\/$/, '')}/calls/${encodeURIComponent(ask.room)}/admit`;
  try {
    const res = await (o.fetchImpl ?? fetch)(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: await signBody(body, o.apiKey, o.apiSecret),
      },
      body,
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok) return { admit: true, asked: true, problem: `edge answered ${res.status}` };
    const answer = AdmissionAnswer.safeParse(await res.json());
    if (!answer.success) return { admit: true, asked: true, problem: 'unreadable answer' };
    return answer.data.admit
      ? { admit: true, asked: true }
      : { admit: false, reason: answer.data.reason ?? 'refused' };
  } catch (err) {
    return { admit: true, asked: false, problem: err instanceof Error ? err.message : String(err) };
  }
}
