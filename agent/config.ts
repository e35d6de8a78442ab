import * as z from 'zod';
import { END_MODES } from '../wire-contract/index.ts';
import { defaultCallCap } from './process/capacity.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Every variable the agent reads, with its default. docs/configuration.md mirrors this. */
const AgentConfigSchema = z.object({
  LIVEKIT_URL: z.url({ protocol: /^(wss?|https?)$/ }),
  LIVEKIT_API_KEY: z.string().min(1),
  LIVEKIT_API_SECRET: z.string().min(1),
  /**
   * The secret of the pair being rotated out: only to open call settings the edge sealed with it
   * while its rotation runs (docs/operations.md). Everything the agent signs uses the current pair.
   */
  LIVEKIT_PREVIOUS_API_SECRET: z.string().min(1).optional(),
  OPENAI_API_KEY: z.string().min(1),
  OPENAI_BASE_URL: z.url().optional(),
  AGENT_NAME: z.string().min(1).max(128).default('voice-agent'),
  /** `pipeline` = STT + LLM + TTS; `realtime` = one OpenAI realtime model. */
  AGENT_MODEL_MODE: z.enum(['pipeline', 'realtime']).default('pipeline'),
  LLM_MODEL: z.string().default('gpt-4.1-mini'),
  STT_MODEL: z.string().default('gpt-4o-mini-transcribe'),
  TTS_MODEL: z.string().default('gpt-4o-mini-tts'),
  TTS_VOICE: z.string().default('alloy'),
  REALTIME_MODEL: z.string().default('gpt-realtime'),
  REALTIME_VOICE: z.string().default('marin'),
  AGENT_INSTRUCTIONS: z
    .string()
    .min(1)
    .default('You are a friendly, concise voice assistant. Keep answers short and spoken-style.'),
  /** Listen to the user's microphone (false = text on lk.chat only, for tests and chat clients). */
  AGENT_AUDIO_INPUT: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  END_MODE: z.enum(END_MODES).default('end_for_all'),
  /** The edge's base URL; reports go to `${EDGE_URL}/calls/:room/report`. Unset: no report. */
  EDGE_URL: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * Where reports the edge could not take within a call's cleanup budget wait for the worker to
   * deliver them (agent/report/outbox-store.ts). Unset: `$XDG_STATE_HOME` (or `~/.local/state`)
   * `/livekit-voice-calls/outbox/<edge host>`; `off`: none (such reports are lost).
   */
  REPORT_OUTBOX_DIR: z.string().min(1).optional(),
  /** The worker's outbox pass period and a kept report's first retry delay (then doubling). */
  REPORT_OUTBOX_RETRY_SECONDS: int(1, 3600).default(15),
  /** Bounds of the outbox: past any of them the oldest reports are given up (a warn line each). */
  REPORT_OUTBOX_MAX_FILES: int(1, 1_000_000).default(5000),
  REPORT_OUTBOX_MAX_MB: int(1, 1_000_000).default(500),
  REPORT_OUTBOX_MAX_AGE_HOURS: int(1, 24 * 365).default(72),
  /** How long the agent asks the edge to admit a call (retrying) before it greets anyway. */
  ADMISSION_TIMEOUT_MS: int(100, 30_000).default(6_000),
  MAX_CALL_DURATION_SECONDS: int(10, 24 * 3600).default(1800),
  MAX_DURATION_WARNING_SECONDS: int(0, 3600).default(60),
  IDLE_PROMPT_SECONDS: int(0, 3600).default(20),
  IDLE_END_SECONDS: int(1, 3600).default(15),
  DRAIN_TIMEOUT_SECONDS: int(1, 3600).default(190),
  CLEANUP_BUDGET_MS: int(500, 120_000).default(20_000),
  HOOK_TIMEOUT_MS: int(50, 120_000).default(5_000),
  END_STEP_TIMEOUT_MS: int(100, 60_000).default(8_000),
  /** How long a caller who dropped (not a clean leave) has to come back before the call ends. */
  RECONNECT_GRACE_SECONDS: int(0, 300).default(10),
  /**
   * After the lifecycle, how long the stock job teardown may take before the process exits anyway;
   * the OTLP flush fits inside it (agent/process/job-process.ts, exitAfterCall).
   */
  JOB_EXIT_GRACE_MS: int(500, 120_000).default(2_000),
  AGENT_HEALTH_PORT: int(0, 65535).default(8081),
  /**
   * The LiveKit server's `agents.target_load` (0.7 unless its config says otherwise): it sends a
   * job only to a worker whose load is below it, so the calls-based load reaches it at the cap.
   */
  LIVEKIT_TARGET_LOAD: z.coerce.number().gt(0).lte(1).default(0.7),
  /** The worker's Prometheus `/metrics` (process/metrics.ts), on a port of its own; 0 = off. */
  AGENT_METRICS_PORT: int(0, 65535).default(9464),
  /**
   * The hard cap on calls this worker runs (load = calls / cap × LIVEKIT_TARGET_LOAD). `auto`: from the machine
   * (defaultCallCap). 0 = stock CPU-based load, only when asked for: CPU spikes refuse calls.
   */
  AGENT_MAX_CONCURRENT_CALLS: z
    .union([z.literal('auto'), int(0, 1000)])
    .default('auto')
    .transform((v) => (v === 'auto' ? defaultCallCap() : v)),
  /**
   * Job processes kept warm for the next calls (with the calls-based load). `auto`: two per core,
   * at most 4, within the cap (defaultIdleProcesses); each costs ~170 MiB and ~2 % of a core while
   * idle (bench:job-start).
   */
  AGENT_IDLE_PROCESSES: z.union([z.literal('auto'), int(1, 1000)]).default('auto'),
  /** Path of a module exporting `registerHooks(lifecycle, ctx)`: the deployer's end-of-call hooks. */
  AGENT_HOOKS_MODULE: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /**
   * With OTLP export on, put the conversation (what callers said, the replies, the instructions,
   * participant identities) in the exported spans. agents-js's own default is to; ours is not to.
   */
  LIVEKIT_TELEMETRY_ALLOW_PII: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
});

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export class ConfigError extends Error {}

/** Parses `process.env`; throws a ConfigError naming every missing or bad variable (never a value). */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const raw = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = AgentConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
  throw new ConfigError(`agent configuration is invalid:\n${[...new Set(lines)].join('\n')}`);
}

/**
 * How long each shutdown stage may take, derived in one place so they nest: a call gets the drain
 * window, then its end steps (announce, goodbye, finish) and its cleanup budget; the worker waits
 * for all of that before force-closing jobs, and Fly's kill_timeout must cover the total.
 */
export function shutdownBudget(config: AgentConfig) {
  const endStepsMs = 3 * config.END_STEP_TIMEOUT_MS;
  const perCallEndMs = endStepsMs + config.CLEANUP_BUDGET_MS + config.JOB_EXIT_GRACE_MS;
  const drainTimeoutMs = config.DRAIN_TIMEOUT_SECONDS * 1000 + perCallEndMs + 2_000;
  const shutdownProcessTimeoutMs = perCallEndMs + 2_000;
  return {
    perCallEndMs,
    drainTimeoutMs,
    shutdownProcessTimeoutMs,
    /** What the platform must allow between the signal and SIGKILL. */
    requiredKillTimeoutMs: drainTimeoutMs + shutdownProcessTimeoutMs + 5_000,
  };
}
