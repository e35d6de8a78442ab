import { describe, expect, it } from 'vitest';
import { DeviceChoice } from '../../edge/web/devices.ts';

/** localStorage as far as the choice uses it. */
function storage(initial: Record<string, string> = {}) {
  const items = new Map(Object.entries(initial));
  return {
    items,
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
  };
}
const mics = [
  { deviceId: 'default', label: 'Default - Built-in' },
  { deviceId: 'usb-1', label: 'USB headset' },
];

describe("the person's device choice", () => {
  it('is remembered, and found again by id', () => {
    const s = storage();
    new DeviceChoice(s).remember('audioinput', mics[1]!);
    expect(new DeviceChoice(s).find('audioinput', mics)).toEqual(mics[1]);
    expect(new DeviceChoice(s).find('audiooutput', mics)).toBeUndefined();
  });

  it('is found by its name when the browser gave the device another id', () => {
    const s = storage();
    new DeviceChoice(s).remember('audioinput', { deviceId: 'old-id', label: 'USB headset' });
    expect(new DeviceChoice(s).find('audioinput', mics)).toEqual(mics[1]);
  });

  it('is not found when the device is not connected (the caller is told, the default is used)', () => {
    const s = storage();
    new DeviceChoice(s).remember('audioinput', { deviceId: 'gone', label: 'Bluetooth buds' });
    const choice = new DeviceChoice(s);
    expect(choice.find('audioinput', mics)).toBeUndefined();
    expect(choice.remembered('audioinput')).toEqual({ deviceId: 'gone', label: 'Bluetooth buds' });
  });

  it('"Default" is no choice to look for; garbage in storage is none either', () => {
    const s = storage({ 'voice-call.speaker': '{not json' });
    const choice = new DeviceChoice(s);
    choice.remember('audioinput', { deviceId: '', label: '' });
    expect(choice.remembered('audioinput')).toBeUndefined();
    expect(choice.remembered('audiooutput')).toBeUndefined();
  });

  it('lasts for the visit when storage refuses it', () => {
    const refusing = {
      getItem: () => null,
      setItem: () => {
        throw new DOMException('quota', 'QuotaExceededError');
      },
    };
    const choice = new DeviceChoice(refusing);
    expect(() => choice.remember('audioinput', mics[1]!)).not.toThrow();
    expect(choice.find('audioinput', mics)).toEqual(mics[1]);
  });
});
