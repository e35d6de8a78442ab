import { defineAgent, log as agentsLog, voice, type JobContext } from '@livekit/agents';
import {
  ConnectionState,
  DisconnectReason,
  RoomEvent,
  type RemoteParticipant,
} from '@livekit/rtc-node';
import {
  type DispatchMetadata,
  endReasonForAgentDisconnect,
  type EndMode,
  type EndReason,
  errorMessage,
} from '../wire-contract/index.ts';
import { loadAgentConfig, type AgentConfig } from './config.ts';
import { logTo, type LogFn } from './log.ts';
import { liveKitEndSteps, speakLine } from './end-steps.ts';
import { admittedByEdge } from './call/admission.ts';
import { CallerPresence, waitForCaller } from './call/caller-presence.ts';
import { registerHooksFrom } from './call/hooks-module.ts';
import { CallLifecycle } from './call/lifecycle.ts';
import { callSettings } from './call/settings.ts';
import { CallTimers } from './call/timers.ts';
import { Assistant } from './voice/assistant.ts';
import { settleAttributeWritesCutByDisconnect } from './voice/attribute-writes.ts';
import { skipEmptyFinalUserTurn } from './voice/final-user-turn.ts';
import { fixedGreeting, greet, greetingVoiceKey, prewarmGreeting } from './voice/greeting.ts';
import { sessionModels } from './voice/models.ts';
import type { CallError } from './report/call-report.ts';
import { watchLatency } from './report/latency.ts';
import { watchDrain } from './process/drain-signal.ts';
import { exitAfterCall, watchJobProcess } from './process/job-process.ts';
import { setupTelemetry } from './process/telemetry.ts';
import { markFirstSpeech, startMark } from './process/start-marks.ts';
import { noteGreeting, noteProcessReady } from './process/job-figures.ts';
import { markJobGreeted, markJobStarted } from './process/job-starts.ts';

// bench:job-start (AGENT_START_MARKS; a no-op otherwise): every import above has been evaluated.
startMark('modules-loaded');

/** How long a shutdown request waits for the room's own disconnect to name the end. */
const SHUTDOWN_REASON_WAIT_MS = 500;

export default defineAgent({
  // A fixed greeting (AGENT_GREETING) is synthesised before the first call, once per host.
  prewarm: () => {
    startMark('prewarm-start');
    try {
      const config = loadAgentConfig();
      prewarmGreeting(config, sessionModels(config, {}).tts as never);
    } catch {
      /* a config problem is reported by the call that needs it, not by the warm-up */
    }
    startMark('prewarm-end');
    noteProcessReady();
  },
  entry: async (ctx: JobContext) => {
    startMark('entry');
    const entryAt = performance.now();
    // First, before anything can end the call: the worker's call cap counts on it.
    markJobStarted(ctx.job.id);
    const config = loadAgentConfig();
    const room = ctx.job.room?.name ?? ctx.room.name ?? '';
    const call = await callSettings(ctx.job.metadata, room, [
      config.LIVEKIT_API_SECRET,
      ...(config.LIVEKIT_PREVIOUS_API_SECRET ? [config.LIVEKIT_PREVIOUS_API_SECRET] : []),
    ]);
    const log = logTo(agentsLog().child({ room, job_id: ctx.job.id }));
    // OTEL_EXPORTER_OTLP_ENDPOINT set: agents-js's traces of this call go out over OTLP/HTTP,
    // without the conversation unless LIVEKIT_TELEMETRY_ALLOW_PII says otherwise.
    const otel = setupTelemetry(
      { room, room_id: ctx.job.room?.sid ?? '', job_id: ctx.job.id },
      { allowContent: config.LIVEKIT_TELEMETRY_ALLOW_PII },
    );
    const flushTraces = otel && ((deadline: number) => otel.flush(deadline));
    // How the process leaves once the call is over; its traces leave in the stock teardown, after
    // the session's last spans have ended, and before the exit (process/job-process.ts).
    let leaving: { flush(): Promise<void> } | undefined;
    if (otel) ctx.addShutdownCallback(async () => await leaving?.flush());
    // Hands the process to the stock teardown with this reason, bounded; after a crash the crash
    // path owns the exit instead (process/job-process.ts).
    const leave = (reason: string) =>
      (leaving = exitAfterCall({
        graceMs: config.JOB_EXIT_GRACE_MS,
        flush: flushTraces,
        log,
        shutdown: () => ctx.shutdown(reason),
      }));
    // Before anything that costs: a room LiveKit recreated for a call that has ended (someone
    // rejoined with a still-valid token) is no call. No hooks, no greeting, no report.
    const admission = await admittedByEdge(ctx, config, room, log);
    if (!admission) {
      leave('call_already_ended');
      return;
    }
    const lifecycle = new CallLifecycle({
      room,
      jobId: ctx.job.id,
      cleanupBudgetMs: config.CLEANUP_BUDGET_MS,
      reportReserveMs: Math.min(10_000, Math.floor(config.CLEANUP_BUDGET_MS / 2)),
      stepTimeoutMs: config.END_STEP_TIMEOUT_MS,
      defaultHookTimeoutMs: config.HOOK_TIMEOUT_MS,
      log,
    });
    const errors: CallError[] = [];
    const endMode = call.end_mode ?? config.END_MODE;
    const realtime = config.AGENT_MODEL_MODE === 'realtime';
    let session: voice.AgentSession | undefined;
    let started = false;
    let roomSid = ctx.job.room?.sid ?? '';
    // First, before anything can fail: the end can announce, leave or delete, and report on every
    // path, including a failure during setup.
    lifecycle.attach(
      liveKitEndSteps({
        ctx,
        session: () => session,
        config,
        endMode,
        agentName: config.AGENT_NAME,
        roomSid: () => roomSid,
        errors,
        realtime,
        started: () => started,
      }),
    );
    // agents-js asks a job to shut down when its worker closes (after the drain timeout, in dev
    // on Ctrl-C or a reload) or LiveKit terminates the job; its own teardown would then cut speech
    // and leave the room before any cleanup: end the call now, while the room is still there.
    // The reason is the truth as far as the job can see it. LiveKit also terminates a job when its
    // room is deleted or closes after the caller left: the room's own disconnect, arriving right
    // after, names that better, so a shutdown request waits a moment for it.
    const caller = { identity: call.caller_identity || undefined, seen: false };
    // Gone only if they were here: a shutdown during setup is not a hang-up.
    const shutdownReason = (): EndReason =>
      caller.seen && caller.identity && !ctx.room.remoteParticipants.has(caller.identity)
        ? 'participant_left'
        : 'drain';
    const stopWatching = watchJobProcess({
      onShutdownRequest: () =>
        setTimeout(() => void lifecycle.end(shutdownReason()), SHUTDOWN_REASON_WAIT_MS).unref(),
      // A lost or stalled worker leaves the job to exit on its own soon after, hooks and report
      // or not; the traces are flushed once this settles.
      onWorkerLost: (deadline) => lifecycle.end(shutdownReason(), { deadline }),
      onCrash: (err, deadline) => {
        errors.push({ at: new Date(), source: 'crash', message: String(err).slice(0, 2000) });
        return lifecycle.end('error', { deadline });
      },
      flush: flushTraces,
      log,
    });
    // Whatever else ends the job, the process does not exit before the lifecycle has run; an end
    // that reaches this point unannounced was not foreseen, and says so.
    let superseded = false;
    ctx.addShutdownCallback(async () => {
      if (superseded) return; // never this call's agent after all: there is no call to end
      await (lifecycle.ending ? lifecycle.finished : lifecycle.end('error'));
    });
    // A job that reaches the room late (a slow hooks module, a loaded host) may have been taken for
    // lost, and another admitted in its place, which has the call: this one then leaves before it
    // joins, as a refused job does (no model work, no hooks, no report), and ends nothing.
    const leftAsSuperseded = async () => {
      if (lifecycle.ending) return false;
      const ours = await admission.stillOursBeforeJoining();
      // An end that began meanwhile (a shutdown request) runs as it would have.
      if (ours || lifecycle.ending) return false;
      superseded = true;
      stopWatching();
      leave('superseded');
      return true;
    };
    const fail = (source: string, err: unknown) => {
      const message = errorMessage(err);
      log('error', 'call failed', { error: message, source });
      errors.push({ at: new Date(), source, message });
      void lifecycle.end('error');
    };

    try {
      if (config.AGENT_HOOKS_MODULE)
        await withTimeout(
          registerHooksFrom(config.AGENT_HOOKS_MODULE, lifecycle, ctx),
          config.HOOK_TIMEOUT_MS,
          'the hooks module did not register its hooks in time',
        );
      if (await leftAsSuperseded()) return;
      if (!lifecycle.ending) {
        session = new voice.AgentSession(sessionModels(config, call));
        watchLatency(session, log);
        markFirstSpeech(session, 'first-speech');
        markFirstSpeech(session, 'greeting', () => {
          noteGreeting(entryAt);
          markJobGreeted(ctx.job.id);
        });
        await runCall({
          ctx,
          config,
          call,
          caller,
          session,
          lifecycle,
          errors,
          realtime,
          log,
          endMode,
          setRoomSid: (sid) => (roomSid = sid),
          setStarted: () => (started = true),
        });
      }
    } catch (err) {
      // Not this call's failure if another job has the call (a hooks module timing out late).
      if (await leftAsSuperseded()) return;
      fail('setup', err);
    }
    const summary = await lifecycle.finished;
    stopWatching();
    // agents 1.9 can wedge for 60 s in AgentSession.close() when the user hung up while the agent
    // was speaking (bench:agent; upstream livekit/agents #5497). Hooks and report have run by now,
    // so a stock teardown that outlives the grace ends the process instead of holding a job slot.
    leave(summary.reason);
  },
});

type CallParts = {
  ctx: JobContext;
  config: AgentConfig;
  call: Partial<DispatchMetadata>;
  /** The caller this call is linked to (from the dispatch, or the first to join), once seen. */
  caller: { identity: string | undefined; seen: boolean };
  session: voice.AgentSession;
  lifecycle: CallLifecycle;
  errors: CallError[];
  realtime: boolean;
  log: LogFn;
  endMode: EndMode;
  setRoomSid: (sid: string) => void;
  /** The session runs in the room: from now on an end follows the call's mode. */
  setStarted: () => void;
};

/** Wires the session, the timers and the room to the lifecycle, then starts the conversation. */
async function runCall(p: CallParts): Promise<void> {
  const { ctx, config, call, session, lifecycle, errors, realtime } = p;
  const agentReason: EndReason = p.endMode === 'leave' ? 'agent_leave' : 'agent_end_call';
  const assistant = new Assistant(
    call.instructions ?? config.AGENT_INSTRUCTIONS,
    (played) => void lifecycle.end(agentReason, { afterSpeech: played }),
    () => lifecycle.ending,
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
  const presence = new CallerPresence({
    graceMs: config.RECONNECT_GRACE_SECONDS * 1000,
    caller: () => p.caller.identity,
    present: (identity) => ctx.room.remoteParticipants.has(identity),
    onGone: (reason) => void lifecycle.end(reason),
    log: p.log,
  });
  const stopDrainWatch = watchDrain(() => void lifecycle.end('drain'));
  lifecycle.onEnding(() => {
    timers.stop();
    stopDrainWatch();
    presence.stop();
    // Ending is ending: no new user turn starts once the end has begun.
    try {
      session.input.setAudioEnabled(false);
    } catch {
      /* no audio input (text-only call, or the session is closed) */
    }
  });

  // Before RoomIO's first agent-state write: session.start connects the room (unless a hooks
  // module connected it already).
  const settleWrites = () => {
    if (ctx.room.isConnected && ctx.room.localParticipant)
      settleAttributeWritesCutByDisconnect(ctx.room.localParticipant, p.log);
  };
  settleWrites();
  ctx.room.on(
    RoomEvent.ConnectionStateChanged,
    (state: ConnectionState) => state === ConnectionState.CONN_CONNECTED && settleWrites(),
  );
  ctx.room.on(
    RoomEvent.Disconnected,
    (reason: DisconnectReason) =>
      void lifecycle.end(endReasonForAgentDisconnect(DisconnectReason[reason]) ?? 'error'),
  );
  ctx.room.on(RoomEvent.ParticipantDisconnected, (participant: RemoteParticipant) => {
    const reason = participant.disconnectReason;
    presence.left(
      participant.identity,
      reason === undefined ? undefined : DisconnectReason[reason],
    );
  });
  ctx.room.on(RoomEvent.ParticipantConnected, (participant: RemoteParticipant) =>
    presence.joined(participant.identity),
  );
  // A session that closes before the lifecycle began it: RoomIO closes it only when the caller
  // left for good; anything else is a failure.
  session.on(voice.AgentSessionEventTypes.Close, (ev) => {
    if (ev.error) errors.push({ at: new Date(), source: 'session', message: String(ev.error) });
    void lifecycle.end(ev.reason === 'participant_disconnected' ? 'participant_left' : 'error');
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

  // A fixed greeting (AGENT_GREETING) is synthesised once per host, while the call connects.
  const greeting = realtime
    ? undefined
    : fixedGreeting(session, greetingVoiceKey(config, call.voice));
  await session.start({
    agent: assistant,
    room: ctx.room,
    inputOptions: {
      audioEnabled: config.AGENT_AUDIO_INPUT,
      participantIdentity: p.caller.identity,
      // Typed words while the call is ending are dropped: they would interrupt the goodbye.
      textInputCallback: (sess, ev) => {
        if (lifecycle.ending) return;
        sess.interrupt();
        sess.generateReply({ userInput: ev.text });
      },
    },
  });
  startMark('session-started');
  // An end that began during setup stays a setup end (for all), even if the session got going.
  if (!lifecycle.ending) p.setStarted();
  // A session without an STT would log its empty closing user turn as skipped input on every call.
  skipEmptyFinalUserTurn(session);
  p.setRoomSid(await ctx.room.getSid());
  p.caller.identity = (await waitForCaller(ctx.room, p.caller.identity)).identity;
  p.caller.seen = true;
  if (lifecycle.ending) return;
  timers.start();
  // Not awaited: a greeting whose audio is late must not hold the job's entry.
  void greet(session, greeting, () => lifecycle.ending);
}

/** `work`, or a rejection naming what did not finish within `ms`: setup must not hang a call. */
function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} (${ms} ms)`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
