import * as z from 'zod';

/** How a call ends when the agent decides to end it: everyone (room deleted) or only the agent. */
export const END_MODES = ['end_for_all', 'leave'] as const;
export type EndMode = (typeof END_MODES)[number];

/**
 * Per-call settings a trusted backend may choose; the edge validates them and puts them in the
 * agent dispatch metadata. End users cannot set any of these.
 */
export const DispatchOverrides = z
  .object({
    end_mode: z.enum(END_MODES).optional(),
    instructions: z.string().min(1).max(8000).optional(),
    voice: z.string().min(1).max(64).optional(),
    model: z.string().min(1).max(128).optional(),
    max_duration_seconds: z
      .number()
      .int()
      .min(5)
      .max(24 * 3600)
      .optional(),
  })
  .strict();
export type DispatchOverrides = z.infer<typeof DispatchOverrides>;

/** What the edge puts in the agent dispatch; the agent parses it with the same schema. */
export const DispatchMetadata = DispatchOverrides.extend({
  caller_identity: z.string(),
  issued_at: z.iso.datetime(),
  max_duration_seconds: z.number().int().positive(),
  end_mode: z.enum(END_MODES),
});
export type DispatchMetadata = z.infer<typeof DispatchMetadata>;
