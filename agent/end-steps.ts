import { log as agentsLog, type voice, type JobContext } from '@livekit/agents';
import { RoomServiceClient } from 'livekit-server-sdk';
import {
  CALL_END_TOPIC,
  END_REASON_ATTRIBUTE,
  END_REASONS,
  type EndMode,
  errorMessage,
  type HookOutcome,
} from '../wire-contract/index.ts';
import type { CallSummary, EndSteps } from './call/lifecycle.ts';
import { writeJobFigures, type JobFigures } from './process/job-figures.ts';
import { buildReport, type CallError } from './report/call-report.ts';
import { deliverReport, ReportNotDelivered, ReportRefused } from './report/delivery.ts';
import type { AgentConfig } from './config.ts';
import type { LogFn } from './log.ts';
import { outboxFor } from './report/outbox-store.ts';

/** How long the goodbye caption gets to go out before the agent leaves or deletes the room. */
export const CAPTION_FLUSH_MS = 500;

const ANNOUNCE_WAIT_MS = 1_000;
/**
 * How long past its report deadline a job's write-ahead outbox file stays the job's: delivery's
 * last post starts before the deadline and times out within 5 s, so after this the worker may
 * take it (at worst it posts a report the job also got through: the edge answers 200 duplicate).
 */
const JOB_REPORT_CLAIM_MS = 30_000;

export type CallContext = {
  ctx: JobContext;
  /** The session, once it exists: a call can end during setup, before it does. */
  session: () => voice.AgentSession | undefined;
  config: AgentConfig;
  endMode: EndMode;
  agentName: string;
  roomSid: () => string;
  errors: CallError[];
  realtime: boolean;
  /** Whether setup is over: the session runs in the room. Until then every end is for all. */
  started?: () => boolean;
};

/**
 * Speaks a fixed line: with a TTS, as is; a realtime model has none, so it is asked to say it.
 * A session that is closing throws synchronously from say/generateReply: then nothing is spoken
 * (undefined), and the caller's timer or step goes on instead of crashing the job.
 */
export function speakLine(
  session: voice.AgentSession,
  text: string,
  realtime: boolean,
  allowInterruptions = true,
): voice.SpeechHandle | undefined {
  try {
    return realtime
      ? session.generateReply({
          instructions: `Say exactly this and nothing else: "${text}"`,
          allowInterruptions,
        })
      : session.say(text, { allowInterruptions });
  } catch (err) {
    agentsLog().warn({ error: errorMessage(err) }, 'could not speak');
    return undefined;
  }
}

/** The lifecycle's steps for a real LiveKit room. */
export function liveKitEndSteps(c: CallContext): EndSteps {
  const room = c.ctx.room;
  return {
    async announce(reason) {
      // Nobody left to tell (the caller hung up): waiting on acks would only delay the end.
      if (!room.isConnected || !room.localParticipant || room.remoteParticipants.size === 0) return;
      const lp = room.localParticipant;
      const told = Promise.all([
        lp.setAttributes({ [END_REASON_ATTRIBUTE]: reason }),
        lp.publishData(new TextEncoder().encode(JSON.stringify({ reason })), {
          topic: CALL_END_TOPIC,
          reliable: true,
        }),
      ]);
      told.catch(() => {}); // a late failure, after the wait below, is not worth a crash
      // Best effort, and short: a slow acknowledgement must not hold up the goodbye and the end.
      await Promise.race([told, new Promise((r) => setTimeout(r, ANNOUNCE_WAIT_MS).unref())]);
    },
    async sayGoodbye(reason) {
      const text = END_REASONS[reason].goodbye;
      const session = c.session();
      if (!text || !session || !room.isConnected) return;
      // A goodbye queued behind a long answer would time out unheard: it cuts in instead.
      try {
        const interrupted = session.interrupt({ force: true }).await;
        interrupted.catch(() => {});
        await Promise.race([interrupted, new Promise((r) => setTimeout(r, 1_000).unref())]);
      } catch {
        /* nothing was speaking, or the session is closing */
      }
      await speakLine(session, text, c.realtime, false)?.waitForPlayout();
    },
    interruptSpeech() {
      try {
        c.session()
          ?.interrupt({ force: true })
          .await.catch(() => {});
      } catch {
        /* the session is already closed: nothing is speaking */
      }
    },
    async finish(reason) {
      const { finish } = END_REASONS[reason];
      // agents 1.9 writes the goodbye caption's last words and closes its stream in a background
      // task after playout ("unable to send packet" from the stream writer when the room goes
      // first), and livekit-client drops a departing participant's open streams at once: leaving
      // or deleting the room straight away cuts the words from the caller's captions, and could
      // let the room's end overtake the end notice. Nobody left to read them: no wait.
      if (room.isConnected && room.remoteParticipants.size > 0)
        await new Promise((r) => setTimeout(r, CAPTION_FLUSH_MS));
      // During setup (the session not yet running in the room: a hooks module or a model that
      // failed, a drain before the call began) mode `leave` would leave the caller alone in a
      // room its agent never joined, unable to tell them why (a SIP caller waits for ever), so an
      // end by mode then ends the call for everyone. Once the call started, the mode decides.
      const forAll = c.endMode === 'end_for_all' || c.started?.() === false;
      if (finish === 'delete_room' || (finish === 'by_end_mode' && forAll)) {
        // Even when this agent never connected (a call that failed during setup): the caller must
        // not wait alone in a room with no agent.
        const info = c.ctx.info;
        // Not ctx.deleteRoom(): it swallows errors, and a failed delete must show in the report.
        await new RoomServiceClient(
          info.url,
          info.apiKey ?? c.config.LIVEKIT_API_KEY,
          info.apiSecret ?? c.config.LIVEKIT_API_SECRET,
          { requestTimeout: 5 },
        )
          .deleteRoom(c.ctx.job.room?.name ?? room.name!)
          .catch((err: unknown) => {
            // Already gone (everyone left, or the edge deleted it): the end holds.
            if ((err as { status?: number }).status !== 404) throw err;
          });
      } else if (room.isConnected) {
        await room.disconnect();
      }
    },
    async report(summary, hooks, deadline, signal) {
      // The call's figures for the worker's /metrics (process/job-figures.ts), whatever happens.
      const figures: JobFigures = { end_reason: summary.reason, report: 'failed', turn_e2e_ms: [] };
      try {
        await sendReport(summary, hooks, deadline, signal, figures);
      } finally {
        writeJobFigures(summary.jobId, figures);
      }
    },
  };

  async function sendReport(
    summary: CallSummary,
    hooks: HookOutcome[],
    deadline: number,
    signal: AbortSignal | undefined,
    figures: JobFigures,
  ): Promise<void> {
    if (!c.config.EDGE_URL) {
      figures.report = 'not_sent';
      agentsLog().warn('EDGE_URL is not set: the end-of-call report is not sent');
      return;
    }
    const report = buildReport({
      summary,
      roomSid: c.roomSid(),
      agentName: c.agentName,
      history: c.session()?.history.items ?? [],
      usage: c.session()?.usage?.modelUsage ?? [],
      errors: c.errors,
      hooks,
    });
    figures.turn_e2e_ms = (report.turns ?? []).flatMap((t) =>
      t.e2e_ms === undefined ? [] : [t.e2e_ms],
    );
    const ids = { room: summary.room, job_id: summary.jobId, call_id: report.call_id };
    const log: LogFn = (level, msg, fields) => agentsLog()[level]({ ...fields, ...ids }, msg);
    // Written before the first attempt, due only after this job's deadline: a job killed while
    // delivering still leaves its report to the worker, which meanwhile leaves it to the job.
    const kept = await outboxFor(c.config, log)?.add(report, {
      notBefore: deadline + JOB_REPORT_CLAIM_MS,
    });
    try {
      const result = await deliverReport(report, {
        edgeUrl: c.config.EDGE_URL,
        apiKey: c.config.LIVEKIT_API_KEY,
        apiSecret: c.config.LIVEKIT_API_SECRET,
        deadline,
        signal,
        log,
      });
      await kept?.remove();
      figures.report = 'delivered';
      agentsLog().info({ ...ids, ...result }, 'report delivered');
    } catch (err) {
      if (err instanceof ReportRefused) {
        figures.report = 'refused';
        await kept?.remove();
      }
      if (!(err instanceof ReportNotDelivered) || !kept) throw err;
      // The call ends now for everyone; the worker delivers the report when the edge takes it.
      // Also when this process's deadline cut delivery short: handed over at once, not 30 s
      // past the deadline the write-ahead file was dated for. (Gone from the outbox meanwhile,
      // dropped by its bounds with a log line: not delivered.)
      await kept.retryAt(Date.now(), 1).catch(() => {
        throw err;
      });
      figures.report = 'kept';
      log('warn', 'report kept in the outbox: the worker delivers it when the edge takes it', {
        error: err.message,
        outbox: kept.dir,
      });
    }
  }
}
