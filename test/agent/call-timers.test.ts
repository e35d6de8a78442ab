import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallTimers } from '../../agent/call/timers.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function timers(settings: Partial<ConstructorParameters<typeof CallTimers>[0]> = {}) {
  const fired: string[] = [];
  const t = new CallTimers(
    { maxDurationSeconds: 60, warningSeconds: 10, promptSeconds: 20, endSeconds: 15, ...settings },
    {
      warnMaxDuration: () => fired.push(`warn@${Date.now() / 1000}`),
      endMaxDuration: () => fired.push(`max@${Date.now() / 1000}`),
      promptIdle: () => fired.push(`prompt@${Date.now() / 1000}`),
      endIdle: () => fired.push(`idle@${Date.now() / 1000}`),
    },
  );
  return { t, fired };
}

describe('CallTimers', () => {
  beforeEach(() => vi.setSystemTime(0));

  it('warns before the maximum duration, then ends', async () => {
    const { t, fired } = timers({ promptSeconds: 0 });
    t.start();
    await vi.advanceTimersByTimeAsync(61_000);
    expect(fired).toEqual(['warn@50', 'max@60']);
  });

  it('prompts a silent user, then ends the call if they stay silent', async () => {
    const { t, fired } = timers({ maxDurationSeconds: 600 });
    t.start();
    await vi.advanceTimersByTimeAsync(40_000);
    expect(fired).toEqual(['prompt@20', 'idle@35']);
  });

  it('starts the ladder over when the user speaks, and pauses it while the agent talks', async () => {
    const { t, fired } = timers({ maxDurationSeconds: 600 });
    t.start();
    await vi.advanceTimersByTimeAsync(19_000);
    t.userActive();
    await vi.advanceTimersByTimeAsync(19_000);
    expect(fired).toEqual([]);
    t.agentSpeaking(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fired).toEqual([]);
    t.agentSpeaking(false);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(fired).toEqual(['prompt@118']);
    // The prompt itself is speech: silence after it counts toward the last rung.
    t.agentSpeaking(true);
    await vi.advanceTimersByTimeAsync(2_000);
    t.agentSpeaking(false);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(fired).toEqual(['prompt@118', 'idle@135']);
  });

  it('stops every clock when the call ends', async () => {
    const { t, fired } = timers();
    t.start();
    t.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(fired).toEqual([]);
  });
});
