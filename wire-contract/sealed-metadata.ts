import * as z from 'zod';
import { DispatchMetadata } from './dispatch-metadata.ts';

/**
 * The agent dispatch rides in the participant token's room configuration, a JWT the end user
 * holds and can read. What the backend tells the agent (instructions, the caller) is therefore
 * sealed with AES-256-GCM under a key both sides derive from the LiveKit API secret they already
 * hold: nothing new to deploy, and the dispatch stays in the token, so the agent arrives as fast.
 * The room name is the additional authenticated data: a blob lifted from one token cannot steer
 * an agent in another room.
 */
const VERSION = 1;
// Names the key's purpose and version, so this key is never the same as any other use of the secret.
const KEY_INFO = 'livekit-voice-calls/dispatch-metadata/v1/aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const Envelope = z
  .object({ v: z.literal(VERSION), sealed: z.string().regex(/^[A-Za-z0-9_-]+$/) })
  .strict();

export type OpenedDispatchMetadata =
  | { ok: true; metadata: Partial<DispatchMetadata> }
  | {
      ok: false;
      /**
       * `not_sealed`: not an envelope of this version at all. `cannot_open`: an envelope whose
       * blob fails authentication (another room, another secret, tampered). `not_the_contract`:
       * it opened, but what it holds does not match the dispatch metadata schema.
       */
      problem: 'not_sealed' | 'cannot_open' | 'not_the_contract';
    };

// A derived key per secret, per process or isolate: HKDF once, not per call.
const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = (async () => {
      const material = await crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(secret),
        'HKDF',
        false,
        ['deriveKey'],
      );
      return crypto.subtle.deriveKey(
        {
          name: 'HKDF',
          hash: 'SHA-256',
          salt: new Uint8Array(0),
          info: new TextEncoder().encode(KEY_INFO),
        },
        material,
        { name: 'AES-GCM', length: 256 },
        false,
        ['encrypt', 'decrypt'],
      );
    })();
    if (keys.size > 8) keys.clear(); // a rotated secret should not pin old keys forever
    keys.set(secret, key);
  }
  return key;
}

/** The dispatch metadata as the token and LiveKit carry it: `{"v":1,"sealed":"<base64url iv‖ciphertext‖tag>"}`. */
export async function sealDispatchMetadata(
  metadata: DispatchMetadata,
  room: string,
  secret: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(room) },
      await keyFor(secret),
      new TextEncoder().encode(JSON.stringify(metadata)),
    ),
  );
  const blob = new Uint8Array(IV_BYTES + ciphertext.byteLength);
  blob.set(iv);
  blob.set(ciphertext, IV_BYTES);
  return JSON.stringify({ v: VERSION, sealed: toBase64Url(blob) });
}

/**
 * Opens what `sealDispatchMetadata` made for this room with one of these secrets (a key rotation
 * gives the agent two: docs/operations.md); anything else is refused.
 */
export async function openDispatchMetadata(
  raw: string,
  room: string,
  secrets: string | readonly string[],
): Promise<OpenedDispatchMetadata> {
  let envelope: z.infer<typeof Envelope>;
  try {
    envelope = Envelope.parse(JSON.parse(raw));
  } catch {
    return { ok: false, problem: 'not_sealed' };
  }
  const blob = fromBase64Url(envelope.sealed);
  if (!blob || blob.byteLength < IV_BYTES + TAG_BYTES) return { ok: false, problem: 'not_sealed' };
  let plaintext: string | undefined;
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    try {
      plaintext = new TextDecoder().decode(
        await crypto.subtle.decrypt(
          {
            name: 'AES-GCM',
            iv: blob.subarray(0, IV_BYTES),
            additionalData: new TextEncoder().encode(room),
          },
          await keyFor(secret),
          blob.subarray(IV_BYTES),
        ),
      );
      break;
    } catch {
      /* another secret, another room or tampered: the next secret may open it */
    }
  }
  if (plaintext === undefined) return { ok: false, problem: 'cannot_open' };
  try {
    const parsed = DispatchMetadata.partial().safeParse(JSON.parse(plaintext));
    if (parsed.success) return { ok: true, metadata: parsed.data };
  } catch {
    /* not JSON: falls through */
  }
  return { ok: false, problem: 'not_the_contract' };
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  try {
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}
