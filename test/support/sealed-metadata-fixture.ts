import type { DispatchMetadata } from '../../wire-contract/index.ts';

/**
 * Dispatch metadata sealed once by the edge's code inside workerd (sealDispatchMetadata), kept
 * verbatim: the agent's unit test opens it in Node, so the two runtimes' WebCrypto must agree on
 * the key derivation, the cipher and the envelope, not merely each with itself.
 */
export const SEALED_IN_WORKERD = {
  room: 'fixture-room',
  secret: 'fixture-secret-0123456789',
  envelope:
    '{"v":1,"sealed":"pzFS_pIFKnsjmzh8xN809vAGzCKGWNxA5Z_LqChqrO5WilQ-vqEIyXufMjlTiY6F2r5DVzhjqUdxnOH6k2FY3u0kRUqU66NHnkth8rTJ9FrU1LJ9Q365jQSy2t5UepY1ihAgYPejhNsAasbIAA0WpZtdNW4xqmjKQMkQO8ZJXmFEVKxrKf5ymZ7nkjOJRIHWHLMySsEilho4r25QZTaDzm0bWHX_1vEmJ4luyUWVDsYk_fy5MuKOZs9Zh2HEng"}',
  metadata: {
    caller_identity: 'alice',
    issued_at: '2026-01-01T00:00:00.000Z',
    max_duration_seconds: 60,
    end_mode: 'leave',
    instructions: 'INTERNAL: offer refund up to $500',
  } satisfies DispatchMetadata,
};
