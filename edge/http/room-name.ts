import type { Context } from 'hono';
import * as z from 'zod';
import type { AppEnv } from '../env.ts';
import { randomId } from './random-id.ts';
import { parseWith } from './request-body.ts';

/** What a room name may be, in a URL or a token request. */
export const ROOM_NAME = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : - only')
  // A URL path cannot carry these: /calls/../end is /end by the time it arrives, so a call in
  // such a room could never be ended or read.
  .refine((name) => name !== '.' && name !== '..', 'must not be . or ..');

/**
 * A fresh, unguessable room. The token's agent dispatch fires only when the join creates the room,
 * and room names are single-use in the ledger, so every call gets a new one.
 */
export function newRoomName(): string {
  return `call-${randomId(16)}`;
}

/** The room a `/calls/:room/…` URL names, checked as ROOM_NAME. */
export function roomParam(c: Context<AppEnv>): string {
  return parseWith(ROOM_NAME, c.req.param('room'), 'room');
}
