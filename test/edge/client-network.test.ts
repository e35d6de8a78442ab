import { describe, expect, it } from 'vitest';
import { clientNetwork } from '../../edge/http/client-network.ts';
import {
  call,
  expectError,
  type ApiResponse,
  type TokenResponse,
} from '../support/edge/helpers.ts';

describe('clientNetwork: the key the per-address limits count by', () => {
  it.each([
    ['IPv4, as it is', '203.0.113.7', '203.0.113.7'],
    ['IPv6 in full, by its /64', '2001:0db8:0001:0002:0003:0004:0005:0006', '2001:db8:1:2::/64'],
    ['IPv6 compressed, by its /64', '2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['IPv6 upper case, as lower case', '2001:DB8:A:B:C::1', '2001:db8:a:b::/64'],
    ['IPv6 compressed inside the /64', '2001:db8::1', '2001:db8:0:0::/64'],
    ['IPv6 all compressed', '::', '0:0:0:0::/64'],
    ['the IPv6 loopback', '::1', '0:0:0:0::/64'],
    ['IPv6 with an IPv4 tail (NAT64), by its /64', '64:ff9b::198.51.100.1', '64:ff9b:0:0::/64'],
    ['IPv4-mapped IPv6, as its IPv4 address', '::ffff:198.51.100.20', '198.51.100.20'],
    ['IPv4-mapped IPv6 in hex, as its IPv4 address', '::ffff:c633:6414', '198.51.100.20'],
    ['IPv4-mapped IPv6 in full', '0:0:0:0:0:ffff:c633:6414', '198.51.100.20'],
  ])('keys %s', (_name, address, key) => {
    expect(clientNetwork(address)).toBe(key);
  });

  it('puts two addresses of one /64 under one key, and another /64 under another', () => {
    expect(clientNetwork('2001:db8:1:2::1')).toBe(
      clientNetwork('2001:db8:1:2:ffff:ffff:ffff:ffff'),
    );
    expect(clientNetwork('2001:db8:1:2::1')).not.toBe(clientNetwork('2001:db8:1:3::1'));
  });

  it.each([
    ['no address', undefined],
    ['an empty one', ''],
    ['a word', 'localhost'],
    ['IPv4 with an octet over 255', '256.1.1.1'],
    ['IPv4 with three octets', '10.1.1'],
    ['IPv4 with a leading zero', '010.1.1.1'],
    ['IPv6 with two ::', '2001::db8::1'],
    ['IPv6 with nine groups', '1:2:3:4:5:6:7:8:9'],
    ['IPv6 with a 5-digit group', '2001:db8:12345::1'],
    ['IPv6 with a zone', 'fe80::1%eth0'],
    ['IPv6 in brackets', '[2001:db8::1]'],
    ['an address with a port', '203.0.113.7:443'],
  ])('keys %s as the one shared unknown key', (_name, address) => {
    expect(clientNetwork(address)).toBe('unknown');
  });
});

// Anonymous callers are allowed only against a loopback LiveKit (or with the loud opt-in).
const ANONYMOUS = { AUTH_ALLOW_ANONYMOUS: 'true', LIVEKIT_URL: 'ws://127.0.0.1:7880' };
const hex = () => Math.floor(Math.random() * 0xffff).toString(16);
/** A fresh /64, as one subscriber's line gets: each test counts from zero. */
const fresh64 = () => `2001:db8:${hex()}:${hex()}`;
const anonymousToken = (address: string, overrides: Record<string, unknown> = {}) =>
  call<TokenResponse>(
    '/token',
    { headers: { 'cf-connecting-ip': address }, json: {} },
    { ...ANONYMOUS, ...overrides },
  );

describe('anonymous callers are counted by IPv6 /64', () => {
  it('gives one /64 one open-call cap, whichever of its addresses asks; another /64 has its own', async () => {
    const net = fresh64();
    const cap = { MAX_OPEN_CALLS_PER_CALLER: '3' };
    for (const host of ['::1', ':0:0:0:2', ':dead:beef:0:3'])
      expect((await anonymousToken(`${net}${host}`, cap)).status).toBe(201);
    const capped = await anonymousToken(`${net}:abcd:1234:5678:9abc`, cap);
    expectError(capped, 429, 'too_many_open_calls');
    expect((await anonymousToken(`${fresh64()}::1`, cap)).status).toBe(201);
  });

  it('gives one /64 one rate limit across its addresses; another /64 has its own', async () => {
    const noCap = { MAX_OPEN_CALLS_PER_CALLER: '0' };
    // Workers' limiter counts in fixed 60 s windows aligned to the clock: a burst that straddles a
    // rollover runs once more, with a fresh /64, inside the new window.
    let statuses: number[] = [];
    let last!: ApiResponse<unknown>;
    for (let tries = 0; tries < 2; tries++) {
      const window = Math.floor(Date.now() / 60_000);
      const net = fresh64();
      statuses = [];
      for (let i = 0; i < 61; i++) {
        last = await anonymousToken(`${net}::${(i + 1).toString(16)}`, noCap);
        statuses.push(last.status);
      }
      if (Math.floor(Date.now() / 60_000) === window) break;
    }
    expect(statuses).toEqual([...Array(60).fill(201), 429]);
    expect(expectError(last, 429, 'rate_limited').message).toContain('address');
    expect((await anonymousToken(`${fresh64()}::1`, noCap)).status).toBe(201);
  });
});
