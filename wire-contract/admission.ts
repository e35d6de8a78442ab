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
    /**
     * Asked again by a job the edge admitted, as it is about to join the room late (past or near
     * its `join_within_ms`): is it still the call's agent? Sent only to an edge that gave a time
     * to join, so an edge that does not know the field never sees it.
     */
    joining: z.literal(true).optional(),
  })
  .strict();
export type AdmissionRequest = z.infer<typeof AdmissionRequest>;

export const AdmissionAnswer = z.object({
  admit: z.boolean(),
  /**
   * Why not: the call has ended (the edge closes the room), another job is its agent, or (only to
   * a `joining` ask, so only agents that know it get it) another job was admitted in this one's
   * place while it was on its way.
   */
  reason: z.enum(['call_ended', 'agent_present', 'superseded']).optional(),
  /**
   * With an admission for a call the edge watches: how long (ms, from this answer) the job has to
   * join its room before the edge may take it for lost and admit another in its place. A duration,
   * not a time, so the agent's clock need not agree with the edge's.
   */
  join_within_ms: z.number().int().nonnegative().optional(),
});
export type AdmissionAnswer = z.infer<typeof AdmissionAnswer>;
