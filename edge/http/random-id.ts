/** Hex of `bytes` crypto-random bytes: room names and anonymous identities nobody can guess. */
export function randomId(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}
