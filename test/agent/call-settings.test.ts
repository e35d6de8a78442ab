import { describe, expect, it } from 'vitest';
import { callSettings } from '../../agent/call/settings.ts';
import type { LogFn } from '../../agent/log.ts';
import { sealDispatchMetadata } from '../../wire-contract/index.ts';
import { SEALED_IN_WORKERD as fixture } from '../support/sealed-metadata-fixture.ts';

type Warning = { fields: Record<string, unknown>; msg: string };
function collect() {
  const warnings: Warning[] = [];
  const warn: LogFn = (level, msg, fields = {}) => {
    if (level === 'warn') warnings.push({ fields, msg });
  };
  return { warnings, warn };
}

describe("the agent's call settings from sealed dispatch metadata", () => {
  it('opens in Node what the edge sealed in workerd', async () => {
    const { warnings, warn } = collect();
    const settings = await callSettings(fixture.envelope, fixture.room, fixture.secret, warn);
    expect(settings).toEqual(fixture.metadata);
    expect(warnings).toEqual([]);
  });

  it.each([
    ['in another room', fixture.envelope, 'another-room', fixture.secret, 'cannot_open'],
    [
      'with another secret',
      fixture.envelope,
      fixture.room,
      'another-secret-0123456789',
      'cannot_open',
    ],
    [
      'tampered with',
      fixture.envelope.replace(
        /"sealed":"(.{30})(.)/,
        (_m, head: string, c: string) => `"sealed":"${head}${c === 'A' ? 'B' : 'A'}`,
      ),
      fixture.room,
      fixture.secret,
      'cannot_open',
    ],
    [
      'as plain JSON (unsealed)',
      JSON.stringify(fixture.metadata),
      fixture.room,
      fixture.secret,
      'not_sealed',
    ],
    ['as garbage', 'not json', fixture.room, fixture.secret, 'not_sealed'],
  ])(
    'ignores metadata %s with a warning: config defaults apply',
    async (_name, raw, room, secret, problem) => {
      const { warnings, warn } = collect();
      expect(await callSettings(raw, room, secret, warn)).toEqual({});
      expect(warnings).toEqual([
        { fields: { problem }, msg: expect.stringContaining('ignoring dispatch metadata') },
      ]);
    },
  );

  it('ignores sealed metadata that does not match the contract', async () => {
    const { warnings, warn } = collect();
    const odd = await sealDispatchMetadata(
      { end_mode: 'explode' } as never,
      fixture.room,
      fixture.secret,
    );
    expect(await callSettings(odd, fixture.room, fixture.secret, warn)).toEqual({});
    expect(warnings[0]?.fields).toEqual({ problem: 'not_the_contract' });
  });

  it('takes no metadata quietly (a dispatch made without any)', async () => {
    const { warnings, warn } = collect();
    expect(await callSettings(undefined, fixture.room, fixture.secret, warn)).toEqual({});
    expect(await callSettings('', fixture.room, fixture.secret, warn)).toEqual({});
    expect(warnings).toEqual([]);
  });
});

describe('call settings during a LiveKit key rotation (docs/operations.md)', () => {
  const previous = fixture.secret;
  const current = 'the-new-secret-after-the-rotation-0123';

  it('an agent already on the new pair opens what the edge sealed with the previous secret', async () => {
    const { warnings, warn } = collect();
    const settings = await callSettings(fixture.envelope, fixture.room, [current, previous], warn);
    expect(settings).toEqual(fixture.metadata);
    expect(warnings).toEqual([]);
  });

  it('opens what the edge sealed with the new secret once the rotation is over', async () => {
    const sealed = await sealDispatchMetadata(fixture.metadata, fixture.room, current);
    expect(await callSettings(sealed, fixture.room, [current, previous])).toEqual(fixture.metadata);
  });

  it('without the previous secret it cannot open the rotation-time seal, and says so', async () => {
    const { warnings, warn } = collect();
    expect(await callSettings(fixture.envelope, fixture.room, [current], warn)).toEqual({});
    expect(warnings[0]?.fields).toEqual({ problem: 'cannot_open' });
  });
});
