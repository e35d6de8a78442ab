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
  constructor(instructions: string, requestEnd: EndCallRequest) {
    super({
      instructions,
      tools: {
        end_call: llm.tool({
          description: END_CALL_DESCRIPTION,
          parameters: z.object({}),
          execute: async (_args, { ctx }) => {
            // The tool's reply (the goodbye) is spoken on this same speech handle: the end waits
            // for it to finish playing, bounded by the lifecycle's step timeout.
            const played = new Promise<void>((resolve) =>
              ctx.speechHandle.addDoneCallback(() => resolve()),
            );
            requestEnd(played);
            return END_CALL_TOOL_REPLY;
          },
        }),
      },
    });
  }
}
