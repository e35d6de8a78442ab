import { llm, voice } from '@livekit/agents';
import * as z from 'zod';

/**
 * When the model should end the call. Spelled out because "thanks" and "hello" are not goodbyes,
 * and a model that hangs up on them is worse than one that waits.
 */
export const END_CALL_DESCRIPTION = [
  'End the call. Call this only when the user clearly says goodbye or says they are done,',
  'or when the task is complete and the user has confirmed they need nothing else.',
  'Do NOT call it on a greeting, on a plain "thanks" or "thank you" in the middle of a conversation,',
  'when the user asks to wait or hold, or when you are unsure: ask instead.',
  'After calling it, say one short goodbye sentence and nothing else.',
].join(' ');

export const END_CALL_TOOL_REPLY =
  'The call is ending. Say one short, warm goodbye sentence to the user and nothing else.';

/** What the assistant needs from the call: a way to end it once the goodbye has been spoken. */
export type EndCallRequest = (goodbyePlayedOut: Promise<void>) => void;

/** The voice assistant: its instructions and its one tool. */
export class Assistant extends voice.Agent {
  readonly #ending: () => boolean;

  constructor(
    instructions: string,
    requestEnd: EndCallRequest,
    ending: () => boolean = () => false,
  ) {
    super({
      instructions,
      tools: {
        end_call: llm.tool({
          description: END_CALL_DESCRIPTION,
          parameters: z.object({}),
          execute: async (_args, { ctx }) => {
            // The goodbye plays whole: the caller still talking (or a noise as the microphone
            // closes) must not pause or cut it.
            if (!ctx.speechHandle.interrupted && goodbyeCanBeUninterruptible(ctx.session.llm))
              ctx.speechHandle.allowInterruptions = false;
            requestEnd(goodbyePlayed(ctx.session, ctx.speechHandle));
            return END_CALL_TOOL_REPLY;
          },
        }),
      },
    });
    this.#ending = ending;
  }

  /** Once the call is ending, a turn the caller finishes gets no reply: the end is under way. */
  override async onUserTurnCompleted(): Promise<void> {
    if (this.#ending()) throw new voice.StopResponse();
  }
}

/**
 * Whether the end_call goodbye can be made uninterruptible. A realtime model that detects turns
 * itself cancels its own reply when the caller speaks whatever the agent says, and agents-js
 * refuses uninterruptible speech with one (its interrupt() would throw on the caller's next
 * word): there the goodbye stays interruptible, as agents-js makes every other line.
 */
export function goodbyeCanBeUninterruptible(model: voice.AgentSession['llm']): boolean {
  return !(model instanceof llm.RealtimeModel && model.capabilities.turnDetection);
}

/**
 * Resolves when the goodbye that answers the end_call tool has played. A pipeline model speaks it
 * on the tool's own speech handle; a realtime model's reply plays on a new handle whose parent is
 * the tool's, created before the tool's handle is done: then that one is awaited.
 */
function goodbyePlayed(session: voice.AgentSession, toolHandle: voice.SpeechHandle): Promise<void> {
  const replies: voice.SpeechHandle[] = [];
  const onSpeech = (ev: voice.SpeechCreatedEvent) => {
    if (ev.speechHandle.parent === toolHandle) replies.push(ev.speechHandle);
  };
  session.on(voice.AgentSessionEventTypes.SpeechCreated, onSpeech);
  return new Promise((resolve) =>
    toolHandle.addDoneCallback(() => {
      session.off(voice.AgentSessionEventTypes.SpeechCreated, onSpeech);
      const reply = replies.at(-1);
      if (reply) reply.addDoneCallback(() => resolve());
      else resolve();
    }),
  );
}
