import { defineAgent, log as agentsLog, voice, type JobContext } from '@livekit/agents';
import { DisconnectReason, dispose, RoomEvent, type RemoteParticipant } from '@livekit/rtc-node';
import {
  DispatchMetadata,
  endReasonForAgentDisconnect,
  type EndReason,
} from '../wire-contract/index.ts';
import { Assistant } from './assistant.ts';
import { CallLifecycle } from './call-lifecycle.ts';
import { CallTimers } from './call-timers.ts';
import { loadAgentConfig } from './config.ts';
import { readDrainDeadline, watchDrain } from './drain-signal.ts';
import { liveKitEndSteps, speakLine } from './end-steps.ts';
import { registerHooksFrom } from './hooks-module.ts';
import { sessionModels } from './models.ts';

export default defineAgent({
  entry: async (ctx: JobContext) => {
    const config = loadAgentConfig();
    const call = parseMetadata(ctx.job.metadata);
    const room = ctx.job.room?.name ?? ctx.room.name ?? '';
    const logger = agentsLog().child({ room, job_id: ctx.job.id });
    const lifecycle = new CallLifecycle({
      room,
      jobId: ctx.job.id,
      cleanupBudgetMs: config.CLEANUP_BUDGET_MS,
      reportReserveMs: Math.min(10_000, Math.floor(config.CLEANUP_BUDGET_MS / 2)),
      stepTimeoutMs: config.END_STEP_TIMEOUT_MS,
      defaultHookTimeoutMs: config.HOOK_TIMEOUT_MS,
      log: (level, msg, fields) => logger[level](fields ?? {}, msg),
    });
    // First, before anything can fail: whatever ends the job (a crash, a shutdown request we did
    // not see coming), the process does not exit before the lifecycle has run.
    ctx.addShutdownCallback(async () => {
      await lifecycle.end(readDrainDeadline() !== undefined ? 'drain' : 'error');
    });
    if (config.AGENT_HOOKS_MODULE)
      await registerHooksFrom(config.AGENT_HOOKS_MODULE, lifecycle, ctx);

    const errors: { at: Date; source: string; message: string }[] = [];
    const endMode = call.end_mode ?? config.END_MODE;
    const agentReason: EndReason = endMode === 'leave' ? 'agent_leave' : 'agent_end_call';
    const session = new voice.AgentSession(sessionModels(config, call));
    const assistant = new Assistant(
      call.instructions ?? config.AGENT_INSTRUCTIONS,
      (played) => void lifecycle.end(agentReason, { afterSpeech: played }),
    );
    let roomSid = '';
    const realtime = config.AGENT_MODEL_MODE === 'realtime';
    lifecycle.attach(
      liveKitEndSteps({
        ctx,
        session,
        config,
        endMode,
        agentName: config.AGENT_NAME,
        roomSid: () => roomSid,
        errors,
        realtime,
      }),
    );

    const timers = new CallTimers(
      {
        maxDurationSeconds: call.max_duration_seconds ?? config.MAX_CALL_DURATION_SECONDS,
        warningSeconds: config.MAX_DURATION_WARNING_SECONDS,
        promptSeconds: config.IDLE_PROMPT_SECONDS,
        endSeconds: config.IDLE_END_SECONDS,
      },
      {
        warnMaxDuration: () =>
          void speakLine(
            session,
            `Just so you know, we have about ${config.MAX_DURATION_WARNING_SECONDS} seconds left on this call.`,
            realtime,
          ),
        endMaxDuration: () => void lifecycle.end('max_duration'),
        promptIdle: () => void speakLine(session, 'Are you still there?', realtime),
        endIdle: () => void lifecycle.end('idle_timeout'),
      },
    );
    const stopDrainWatch = watchDrain(() => void lifecycle.end('drain'));
    lifecycle.onEnding(() => {
      timers.stop();
      stopDrainWatch();
    });

    let linked = call.caller_identity || undefined;
    ctx.room.on(
      RoomEvent.Disconnected,
      (reason: DisconnectReason) =>
        void lifecycle.end(endReasonForAgentDisconnect(DisconnectReason[reason]) ?? 'error'),
    );
    ctx.room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
      if (p.identity === linked) void lifecycle.end('participant_left');
    });
    session.on(voice.AgentSessionEventTypes.Close, (ev) => {
      if (ev.reason === 'participant_disconnected') void lifecycle.end('participant_left');
      else if (ev.error) void lifecycle.end('error');
    });
    session.on(voice.AgentSessionEventTypes.Error, (ev) => {
      const error = ev.error as { message?: string; error?: { message?: string } } | undefined;
      errors.push({
        at: new Date(),
        source: String(
          (ev.source as { constructor?: { name?: string } })?.constructor?.name ?? 'session',
        ),
        message: String(error?.error?.message ?? error?.message ?? 'unknown error'),
      });
    });
    session.on(
      voice.AgentSessionEventTypes.UserStateChanged,
      (ev) => ev.newState === 'speaking' && timers.userActive(),
    );
    session.on(
      voice.AgentSessionEventTypes.ConversationItemAdded,
      (ev) => ev.item.type === 'message' && ev.item.role === 'user' && timers.userActive(),
    );
    session.on(voice.AgentSessionEventTypes.AgentStateChanged, (ev) =>
      timers.agentSpeaking(ev.newState === 'speaking'),
    );

    try {
      await session.start({
        agent: assistant,
        room: ctx.room,
        inputOptions: { audioEnabled: config.AGENT_AUDIO_INPUT, participantIdentity: linked },
      });
      roomSid = await ctx.room.getSid();
      linked ??= (await ctx.waitForParticipant()).identity;
      if (!lifecycle.ending) {
        timers.start();
        session.generateReply({
          instructions: 'Greet the user in one short sentence and offer help.',
        });
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ error: message }, 'call setup failed');
      errors.push({ at: new Date(), source: 'setup', message });
      void lifecycle.end('error');
    }
    const summary = await lifecycle.finished;
    ctx.shutdown(summary.reason);
    // agents 1.9 can wedge for 60 s in AgentSession.close() when the user hung up while the agent
    // was speaking (bench:agent; upstream livekit/agents #5497). Hooks and report have run by now,
    // so a stock teardown that outlives the grace ends the process instead of holding a job slot.
    setTimeout(() => {
      logger.warn(
        { grace_ms: config.JOB_EXIT_GRACE_MS },
        'stock job teardown is stuck; exiting the job process',
      );
      void Promise.race([dispose(), new Promise((r) => setTimeout(r, 1000))]).finally(() =>
        process.exit(0),
      );
    }, config.JOB_EXIT_GRACE_MS).unref();
  },
});

/** The edge's dispatch metadata; a dispatch made elsewhere may carry none, then config decides. */
function parseMetadata(raw: string | undefined): Partial<DispatchMetadata> {
  if (!raw) return {};
  try {
    const parsed = DispatchMetadata.partial().safeParse(JSON.parse(raw));
    if (parsed.success) return parsed.data;
  } catch {
    /* not JSON */
  }
  agentsLog().warn('ignoring dispatch metadata that does not match the contract');
  return {};
}
