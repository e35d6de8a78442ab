import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HooksModule } from '../../agent/call/hooks-module.ts';

/**
 * The e2e suite's user hooks, loaded by the real agent through AGENT_HOOKS_MODULE. Each writes a
 * marker file (with the reason and the job's pid) so tests can see that it ran and what it was told.
 * Rooms named `chaos-…` also get a hook that hangs and one that throws, registered first;
 * `late-hook-…` a hook that registers another while the call is ending, and a stock shutdown
 * callback on `ctx`; `setup-fails-…` a hooks module that throws after registering;
 * `dies-before-joining-…` a first job that is killed (SIGKILL) once admitted, before it joins;
 * `slow-to-join-…` a first job whose hooks take 30 s to register, well past the 15 s the edge gives
 * an admitted job to join (the worker running it needs a HOOK_TIMEOUT_MS above that).
 */
export const registerHooks: HooksModule['registerHooks'] = async (lifecycle, ctx) => {
  const dir = process.env.E2E_HOOKS_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const room = ctx.job.room?.name ?? 'unknown';
  const mark = (hook: string, extra: Record<string, unknown> = {}) =>
    writeFileSync(
      join(dir, `${room}.${hook}.json`),
      JSON.stringify({ hook, pid: process.pid, at: Date.now(), ...extra }),
    );
  if (room.startsWith('dies-before-joining-')) {
    // The hooks load after the edge admitted this job and before it joins: the first job of the
    // call dies here, as one killed for its memory would. The next job (the edge's) goes on.
    try {
      writeFileSync(
        join(dir, `${room}.died.json`),
        JSON.stringify({ pid: process.pid, job: ctx.job.id }),
        { flag: 'wx' },
      );
      process.kill(process.pid, 'SIGKILL');
    } catch {
      /* not the first job */
    }
  }
  if (room.startsWith('slow-to-join-')) {
    let first = true;
    try {
      writeFileSync(
        join(dir, `${room}.slow.json`),
        JSON.stringify({ pid: process.pid, job: ctx.job.id }),
        { flag: 'wx' },
      );
    } catch {
      first = false; // the replacement: it goes on at once
    }
    if (first) await new Promise((r) => setTimeout(r, 30_000));
  }
  mark('registered');
  if (room.startsWith('chaos-')) {
    lifecycle.onCallEnd('hangs-forever', () => new Promise(() => mark('hang-started')), {
      timeoutMs: 1500,
    });
    lifecycle.onCallEnd('throws', () => {
      mark('throw-started');
      throw new Error('hook failed on purpose');
    });
  }
  if (room.startsWith('late-hook-')) {
    lifecycle.onCallEnd('registers-another', () => {
      mark('late-registration', { accepted: lifecycle.onCallEnd('too-late', () => {}) });
    });
    ctx.addShutdownCallback(async (reason?: string) => mark('shutdown-callback', { reason }));
  }
  lifecycle.onCallEnd('save-transcript-elsewhere', (summary) =>
    mark('ran', { reason: summary.reason, startedAt: summary.startedAt, endedAt: summary.endedAt }),
  );
  if (room.startsWith('setup-fails-')) throw new Error('hooks module failed on purpose');
};
