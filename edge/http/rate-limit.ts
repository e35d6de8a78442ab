import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { clientNetwork } from './client-network.ts';
import { ApiError } from '../errors.ts';

/**
 * The client's address as Cloudflare saw it, as the limits key it: an IPv6 address by its /64
 * (edge/http/client-network.ts); every request without a readable one shares one key.
 */
export function clientAddress(c: Context): string {
  return clientNetwork(c.req.header('cf-connecting-ip'));
}

/**
 * Per-identity and per-address (IPv6: per /64) limits for end users (trusted backends are not
 * limited here). The Workers binding only says yes or no; its window is the configured period, so
 * that is Retry-After.
 * It counts per Cloudflare location, not globally (docs/configuration.md): a bound on request
 * rates, while the ledger's open-call cap (recordIssuedToken) bounds what a caller holds.
 */
export const rateLimitEndUsers: MiddlewareHandler<AppEnv> = async (c, next) => {
  const caller = c.get('caller');
  if (caller.kind === 'user') {
    const ip = clientAddress(c);
    const [byIdentity, byIp] = await Promise.all([
      caller.anonymous
        ? { success: true }
        : c.env.RATE_LIMIT_IDENTITY.limit({ key: `id:${caller.identity}` }),
      c.env.RATE_LIMIT_IP.limit({ key: `ip:${ip}` }),
    ]);
    if (!byIdentity.success || !byIp.success) {
      throw new ApiError(
        429,
        'rate_limited',
        `too many token requests for this ${byIdentity.success ? 'address' : 'identity'}`,
        { 'Retry-After': '60' },
      );
    }
  }
  await next();
};
