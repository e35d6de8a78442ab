import * as z from 'zod';

/**
 * Before it does any model work, the agent asks the edge (signed like a report) whether its room
 * still hosts an open call. A room LiveKit recreated for a token whose call has ended (a revival)
 * gets `admit: false`: the agent leaves without greeting, and the edge closes the room.
 */
export const AdmissionRequest = z
  .object({
    room: z.string().min(1).max(256),
    room_sid: z.string().max(256),
    job_id: z.string().max(256),
    /** When LiveKit created this room (epoch ms), to tell a late agent from a revival. */
    room_created_at: z.number().int().nonnegative().optional(),
  })
  .strict();
export type AdmissionRequest = z.infer<typeof AdmissionRequest>;

export const AdmissionAnswer = z.object({
  admit: z.boolean(),
  /** Why not: the call has ended (the edge closes the room), or another job is its agent. */
  reason: z.enum(['call_ended', 'agent_present']).optional(),
});
export type AdmissionAnswer = z.infer<typeof AdmissionAnswer>;
