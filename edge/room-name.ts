import * as z from 'zod';
import { randomId } from './random-id.ts';

/** What a room name may be, in a URL or a token request. */
export const ROOM_NAME = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : - only');

/**
 * A fresh, unguessable room. The token's agent dispatch fires only when the join creates the room,
 * and room names are single-use in the ledger, so every call gets a new one.
 */
export function newRoomName(): string {
  return `call-${randomId(16)}`;
}
