import type { Context } from 'hono';
import type * as z from 'zod';
import { ApiError } from '../errors.ts';

export const MAX_JSON_BODY = 16 * 1024;

/** Reads the raw body up to `maxBytes`, refusing larger ones before buffering them whole. */
export async function readBody(c: Context, maxBytes: number): Promise<string> {
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const reader = c.req.raw.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(all);
  } catch {
    throw new ApiError(400, 'malformed_body', 'body is not valid UTF-8');
  }
}

function tooLarge(maxBytes: number) {
  return new ApiError(413, 'body_too_large', `body exceeds ${maxBytes} bytes`);
}

/** Content type, size, JSON syntax, then the schema: each failure names what is wrong. */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  maxBytes = MAX_JSON_BODY,
  { allowEmpty = false } = {},
): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? '';
  const text = await readBody(c, maxBytes);
  if (allowEmpty && text.trim() === '') return parseWith(schema, {});
  if (!/^application\/(.+\+)?json\s*(;|$)/i.test(type))
    throw new ApiError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  return parseJsonText(schema, text);
}

/** JSON syntax, then the schema, for a body already read (e.g. one whose signature was checked first). */
export function parseJsonText<S extends z.ZodType>(schema: S, text: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'malformed_json', 'body is not valid JSON');
  }
  return parseWith(schema, value);
}

export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what = 'body',
): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.length ? issue.path.join('.') : what;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path, issue.keys[0]].join('.');
    throw new ApiError(400, 'unsupported_field', `${field}: field is not accepted here`);
  }
  throw new ApiError(400, 'invalid_field', `${path}: ${issue.message}`);
}
