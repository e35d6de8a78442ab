import { log as agentsLog, type voice, type JobContext } from '@livekit/agents';
import { RoomServiceClient } from 'livekit-server-sdk';
import {
  CALL_END_TOPIC,
  END_REASON_ATTRIBUTE,
  END_REASONS,
  type EndMode,
} from '../wire-contract/index.ts';
import type { EndSteps } from './call-lifecycle.ts';
import { buildReport, deliverReport } from './call-report.ts';
import type { AgentConfig } from './config.ts';

const CAPTION_FLUSH_MS = 500;

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
export function speakLine(
  session: voice.AgentSession,
  text: string,
  realtime: boolean,
  allowInterruptions = true,
) {
  return realtime
    ? session.generateReply({
        instructions: `Say exactly this and nothing else: "${text}"`,
        allowInterruptions,
      })
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
        lp.publishData(new TextEncoder().encode(JSON.stringify({ reason })), {
          topic: CALL_END_TOPIC,
          reliable: true,
        }),
      ]);
    },
    async sayGoodbye(reason) {
      const text = END_REASONS[reason].goodbye;
      if (!text || !room.isConnected) return;
      await speakLine(c.session, text, c.realtime, false).waitForPlayout();
    },
    async finish(reason) {
      if (!room.isConnected) return;
      const { finish } = END_REASONS[reason];
      if (finish === 'delete_room' || (finish === 'by_end_mode' && c.endMode === 'end_for_all')) {
        // agents 1.9 closes the caption text stream in a background task after playout; deleting
        // the room at once cuts the goodbye's last words from clients' captions.
        await new Promise((r) => setTimeout(r, CAPTION_FLUSH_MS));
        const info = c.ctx.info;
        // Not ctx.deleteRoom(): it swallows errors, and a failed delete must show in the report.
        await new RoomServiceClient(
          info.url,
          info.apiKey ?? c.config.LIVEKIT_API_KEY,
          info.apiSecret ?? c.config.LIVEKIT_API_SECRET,
          { requestTimeout: 5 },
        ).deleteRoom(room.name!);
      } else {
        await room.disconnect();
      }
    },
    async report(summary, hooks, deadline) {
      if (!c.config.EDGE_URL) {
        agentsLog().warn('EDGE_URL is not set: the end-of-call report is not sent');
        return;
      }
      const report = buildReport({
        summary,
        roomSid: c.roomSid(),
        agentName: c.agentName,
        history: c.session.history.items,
        usage: c.session.usage?.modelUsage ?? [],
        errors: c.errors,
        hooks,
      });
      const result = await deliverReport(report, {
        edgeUrl: c.config.EDGE_URL,
        apiKey: c.config.LIVEKIT_API_KEY,
        apiSecret: c.config.LIVEKIT_API_SECRET,
        deadline,
        log: (level, msg, fields) =>
          agentsLog()[level]({ ...fields, room: summary.room, job_id: summary.jobId }, msg),
      });
      agentsLog().info(
        { room: summary.room, job_id: summary.jobId, call_id: report.call_id, ...result },
        'report delivered',
      );
    },
  };
}
