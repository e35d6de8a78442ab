import { log as agentsLog, voice, type JobContext } from '@livekit/agents';
import { RoomServiceClient } from 'livekit-server-sdk';
import { CALL_END_TOPIC, END_REASON_ATTRIBUTE, type EndMode, type EndReason } from '../edge/wire-contract/index.ts';
import type { EndSteps } from './call-lifecycle.ts';
import { buildReport, deliverReport, type HistoryItem, type ModelUsage } from './call-report.ts';
import type { AgentConfig } from './config.ts';

const GOODBYES: Partial<Record<EndReason, string>> = {
  agent_leave: 'Goodbye!',
  agent_end_call: 'Goodbye!',
  max_duration: "We've reached the time limit for this call. Thanks for talking with me, goodbye!",
  idle_timeout: "I haven't heard from you, so I'll end the call now. Goodbye!",
  drain: 'I need to end our call now for maintenance. Sorry about that, and goodbye!',
};

const CAPTION_FLUSH_MS = 500;

/** Reasons the agent itself chose, where the call's end mode decides leave vs end-for-all. */
const AGENT_CHOSEN: EndReason[] = ['agent_end_call', 'max_duration', 'idle_timeout', 'drain'];

export type CallContext = {
  ctx: JobContext;
  session: voice.AgentSession;
  config: AgentConfig;
  endMode: EndMode;
  agentName: string;
  roomSid: () => string;
  errors: { at: Date; source: string; message: string }[];
  realtime: boolean;
};

/** Speaks a fixed line: with a TTS, as is; a realtime model has none, so it is asked to say it. */
export function speakLine(session: voice.AgentSession, text: string, realtime: boolean, allowInterruptions = true) {
  return realtime
    ? session.generateReply({ instructions: `Say exactly this and nothing else: "${text}"`, allowInterruptions })
    : session.say(text, { allowInterruptions });
}

/** The lifecycle's steps for a real LiveKit room. */
export function liveKitEndSteps(c: CallContext): EndSteps {
  const room = c.ctx.room;
  return {
    async announce(reason) {
      if (!room.isConnected || !room.localParticipant) return;
      const lp = room.localParticipant;
      await Promise.all([
        lp.setAttributes({ [END_REASON_ATTRIBUTE]: reason }),
        lp.publishData(new TextEncoder().encode(JSON.stringify({ reason })), { topic: CALL_END_TOPIC, reliable: true }),
      ]);
    },
    async sayGoodbye(reason) {
      const text = GOODBYES[reason];
      if (!text || !room.isConnected) return;
      await speakLine(c.session, text, c.realtime, false).waitForPlayout();
    },
    async finish(reason) {
      if (!room.isConnected) return;
      const forAll = reason === 'agent_end_call' || (AGENT_CHOSEN.includes(reason) && c.endMode === 'end_for_all');
      if (forAll) {
        // agents 1.9 closes the caption text stream in a background task after playout; deleting
        // the room at once cuts the goodbye's last words from clients' captions.
        await new Promise((r) => setTimeout(r, CAPTION_FLUSH_MS));
        const info = c.ctx.info;
        // Not ctx.deleteRoom(): it swallows errors, and a failed delete must show in the report.
        await new RoomServiceClient(info.url, info.apiKey ?? c.config.LIVEKIT_API_KEY, info.apiSecret ?? c.config.LIVEKIT_API_SECRET, { requestTimeout: 5 }).deleteRoom(room.name!);
      } else {
        await room.disconnect();
      }
    },
    async report(summary, hooks, deadline) {
      if (!c.config.EDGE_URL) {
        agentsLog().warn('EDGE_URL is not set: the end-of-call report is not sent');
        return;
      }
      const history = c.session.history.items as unknown as HistoryItem[];
      const usage = (c.session.usage?.modelUsage ?? []) as unknown as ModelUsage[];
      const report = buildReport({ summary, roomSid: c.roomSid(), agentName: c.agentName, history, usage, errors: c.errors, hooks });
      const result = await deliverReport(report, {
        edgeUrl: c.config.EDGE_URL,
        apiKey: c.config.LIVEKIT_API_KEY,
        apiSecret: c.config.LIVEKIT_API_SECRET,
        deadline,
        log: (level, msg, fields) => agentsLog()[level]({ ...fields, room: summary.room, job_id: summary.jobId }, msg),
      });
      agentsLog().info({ room: summary.room, job_id: summary.jobId, call_id: report.call_id, ...result }, 'report delivered');
    },
  };
}
