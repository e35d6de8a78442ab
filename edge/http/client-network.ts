/** The key every address that cannot be read shares: nothing escapes the limits by being odd. */
const UNKNOWN = 'unknown';

/**
 * The network a client's address belongs to, as the per-address limits and the anonymous
 * open-call cap count it. IPv4: the address. IPv6: its /64, since one line or one host is handed
 * a whole /64 (2^64 addresses), and counting per address would give it a fresh limit per address.
 * An IPv4-mapped IPv6 address is its IPv4 address. Anything else (no address, a malformed one) is
 * one shared key: Cloudflare always sends a well-formed CF-Connecting-IP, so only a broken setup
 * gets there, and it must not be a way around the limits.
 */
export function clientNetwork(address: string | undefined): string {
  if (!address) return UNKNOWN;
  const v4 = ipv4(address);
  if (v4) return v4.join('.');
  const v6 = ipv6(address);
  if (!v6) return UNKNOWN;
  if (v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff)
    return [v6[6]! >> 8, v6[6]! & 0xff, v6[7]! >> 8, v6[7]! & 0xff].join('.');
  return `${v6
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** Dotted-quad IPv4, each part 0-255 without leading zeros (which some parsers read as octal). */
function ipv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255))
    return undefined;
  return parts.map(Number);
}

/** IPv6 as its eight 16-bit groups: full, `::`-compressed, or with an IPv4 tail; no zone. */
function ipv6(text: string): number[] | undefined {
  let hex = text;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.includes('.', lastColon)) {
    // An IPv4 tail (::ffff:192.0.2.1, 64:ff9b::192.0.2.1) is the last two groups.
    const v4 = ipv4(text.slice(lastColon + 1));
    if (!v4) return undefined;
    hex = `${text.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${(
      (v4[2]! << 8) |
      v4[3]!
    ).toString(16)}`;
  }
  const halves = hex.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string) => (half === '' ? [] : half.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (![...left, ...right].every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g, 16));
}
