// A stock minimal agents-js agent, for comparison in the benchmarks: an AgentSession with the same
// OpenAI plugin, shutdown callbacks via ctx.addShutdownCallback, nothing else. STOCK_HOOKS callbacks
// (the first hangs when STOCK_HANG=1); STOCK_GREET=1 greets (text); STOCK_VOICE=1 runs the voice pipeline;
// STOCK_SHUTDOWN_ON_LEAVE=1 adds the usual ctx.shutdown on
// hang-up (without it the job lingers until LiveKit closes the room).
import { cli, defineAgent, ServerOptions, voice, type JobContext } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { RoomEvent } from '@livekit/rtc-node';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default defineAgent({
  entry: async (ctx: JobContext) => {
    const dir = process.env.E2E_HOOKS_DIR!;
    mkdirSync(dir, { recursive: true });
    const room = ctx.job.room?.name ?? 'unknown';
    const mark = (hook: string) =>
      writeFileSync(
        join(dir, `${room}.${hook}.json`),
        JSON.stringify({ hook, pid: process.pid, at: Date.now() }),
      );
    const hooks = Number(process.env.STOCK_HOOKS ?? 0);
    for (let i = 0; i < hooks; i++) {
      ctx.addShutdownCallback(async () => {
        mark(`hook-${i}`);
        if (i === 0 && process.env.STOCK_HANG === '1') await new Promise(() => {});
      });
    }
    const auth = { baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY };
    // STOCK_VOICE=1: the same voice pipeline as ours (STT + LLM + TTS, audio in and out, a spoken
    // greeting), as agent-starter-node builds it; otherwise text in, no TTS.
    const voiced = process.env.STOCK_VOICE === '1';
    const session = new voice.AgentSession(
      voiced
        ? {
            stt: new openai.STT({ ...auth, useRealtime: false }),
            llm: new openai.LLM(auth),
            tts: new openai.TTS(auth),
          }
        : { llm: new openai.LLM(auth), vad: null },
    );
    await session.start({
      agent: new voice.Agent({ instructions: 'Be brief.' }),
      room: ctx.room,
      inputOptions: { audioEnabled: voiced },
      outputOptions: { audioEnabled: voiced || process.env.STOCK_GREET !== '1' },
    });
    // STOCK_GREET=1: greet like agent-starter-node does.
    if (voiced || process.env.STOCK_GREET === '1')
      session.generateReply({
        instructions: 'Greet the user in one short sentence and offer help.',
      });
    if (process.env.STOCK_SHUTDOWN_ON_LEAVE === '1')
      ctx.room.on(RoomEvent.ParticipantDisconnected, () => ctx.shutdown('participant left'));
    mark('ran');
  },
});

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  cli.runApp(
    new ServerOptions({
      agent: fileURLToPath(import.meta.url),
      agentName: process.env.AGENT_NAME ?? 'stock-agent',
      port: Number(process.env.AGENT_HEALTH_PORT ?? 8081),
    }),
  );
}
