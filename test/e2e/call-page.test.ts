import { ParticipantKind, Room } from '@livekit/rtc-node';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { AccessToken } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { screenshots } from '../support/browser.ts';
import { CallPageRig } from '../support/call-page-rig.ts';
import {
  alert,
  answeredThenHangUp,
  callButton,
  caption,
  pageConfig,
  startCall,
  status,
} from '../support/call-page-steps.ts';
import { DEV_KEY, DEV_SECRET } from '../support/livekit-server.ts';
import { MIN_SPEECH_MS } from '../support/openai-stand-in.ts';
import { EXITS_NOT_LINGERS_MS, waitFor } from '../support/processes.ts';
import { renderSpeech } from '../support/speech.ts';
import { pidAlive } from '../support/system.ts';
import { CALL_END_TOPIC, END_REASON_ATTRIBUTE } from '../../wire-contract/index.ts';

/**
 * The edge's own call page in headless Chromium, as a person uses it: the microphone is faked from
 * a speech WAV, everything else is real (LiveKit server, the edge under wrangler dev serving the
 * page, the built agent with audio input on, the OpenAI stand-in). What the page shows goes to
 * test-artifacts/call-page/; every other ending and failure is in call-page-endings.test.ts.
 */
const TOKEN_TTL_SECONDS = 10;
const rig = new CallPageRig('call page tests', {
  agentEnv: { AGENT_AUDIO_INPUT: 'true' },
  edgeVars: { TOKEN_TTL_SECONDS: String(TOKEN_TTL_SECONDS) },
});

describe.skipIf(rig.skipped)('the call page in Chromium, against the real system', () => {
  it('is served by the Worker with a CSP naming only the edge and this LiveKit server; its script by the asset server, for any origin', async () => {
    const page = await fetch(`${rig.system.edge.url}/`);
    expect(page.status).toBe(200);
    const connectSrc = / connect-src ([^;]*)/.exec(page.headers.get('content-security-policy')!);
    expect(connectSrc?.[1]).toBe(`'self' ws://${rig.signal.host} http://${rig.signal.host}`);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const script = await fetch(`${rig.system.edge.url}/call-page.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('access-control-allow-origin')).toBe('*');
    expect(script.headers.get('x-request-id')).toBeNull(); // never reached the Worker
    await script.body?.cancel();
  });

  it('dark scheme on a phone: the keyboard reaches Call first with a visible focus ring; the icon loads', async () => {
    const p = await rig.openPlainPage({
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
    });
    await status(p, 'Press Call to talk to the assistant.');
    await p.page.keyboard.press('Tab');
    const focused = await p.page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const style = getComputedStyle(el);
      return { id: el.id, outline: style.outlineStyle, width: style.outlineWidth };
    });
    expect(focused).toEqual({ id: 'call', outline: 'solid', width: '3px' });
    expect(
      await p.page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor),
    ).toBe('rgb(23, 24, 27)');
    const icon = await p.page.evaluate(async () => (await fetch('/favicon.svg')).status);
    expect(icon).toBe(200);
    await screenshots(p.page, 'idle-dark-focus');
  });

  it('Call: the greeting is captioned and heard; a spoken goodbye ends the call, and the page says the assistant ended it', async () => {
    const words = 'Okay, thank you. Goodbye!';
    rig.system.openai.utterances.push(words);
    const p = await rig.openCallPage({
      micWav: renderSpeech(`${rig.system.dir}/speech`, words, { leadSeconds: 6 }),
    });
    await status(p, 'Press Call to talk to the assistant.');
    const { room } = await startCall(p);
    await p.page.locator('#app[data-agent-audio=playing]').waitFor({ timeout: 15_000 });
    // The assistant's meter follows its real audio (Web Audio), its state written on it.
    await p.page.locator('#assistant-level[data-active=true]').waitFor({ timeout: 15_000 });
    expect(await p.page.locator('#mic-state').textContent()).toBe('live');
    // A phone-width screen: nothing wider than the screen.
    expect(
      await p.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    ).toBe(true);
    await screenshots(p.page, 'in-call');
    await caption(p, 'you', 'Goodbye');
    await caption(p, 'assistant', 'Goodbye, take care!');
    await status(p, 'The assistant ended the call.');
    await screenshots(p.page, 'ended-by-assistant');
    expect(await callButton(p).isEnabled()).toBe(true);
    const call = await rig.system.reportedCall(room);
    expect(call.end_reason).toBe('agent_end_call');
    expect(await rig.system.roomGone(room)).toBe(true);
  });

  it('Mute: words spoken while muted reach no STT, the page says it is muted, and unmuted the assistant hears again', async () => {
    const dir = `${rig.system.dir}/speech`;
    const whileMuted = renderSpeech(dir, 'Banana.', { leadSeconds: 8, tailSeconds: 6 });
    const afterwards = renderSpeech(dir, 'Can you hear me now?', { tailSeconds: 20 });
    const wav = join(dir, 'muted-then-unmuted.wav');
    execFileSync('sox', [whileMuted, afterwards, wav]);
    rig.system.openai.utterances.push('Can you hear me now?');
    const before = rig.system.openai.transcriptions.length;
    const p = await rig.openCallPage({ micWav: wav });
    await callButton(p).click();
    await p.page.locator('#app[data-phase=in-call]').waitFor({ timeout: 30_000 });
    expect(await p.page.locator('#you-level').getAttribute('data-active')).toBe('false');
    await p.page.getByRole('button', { name: 'Mute' }).click();
    await p.page.locator('#app[data-muted=true]').waitFor();
    expect(await p.page.locator('#mute').getAttribute('aria-pressed')).toBe('true');
    expect(await p.page.locator('#mic-state').textContent()).toBe(
      'muted: the assistant hears nothing',
    );
    // The page's meter still hears the word (so a person sees they talk into a muted call) …
    await p.page.locator('#you-level[data-active=true]').waitFor({ timeout: 30_000 });
    await screenshots(p.page, 'muted');
    await p.page.locator('#you-level[data-active=false]').waitFor({ timeout: 30_000 });
    await p.page.getByRole('button', { name: 'Unmute' }).click();
    expect(await p.page.locator('#mic-state').textContent()).toBe('live');
    // … the assistant does not: the next words it hears are the ones spoken after Unmute.
    await caption(p, 'you', 'Can you hear me now');
    await caption(p, 'assistant', 'You said: Can you hear me now?');
    const speech = rig.system.openai.transcriptions
      .slice(before)
      .filter((t) => t.speechMs >= MIN_SPEECH_MS);
    expect(speech.map((t) => t.text)).toEqual(['Can you hear me now?']);
    await p.page.getByRole('button', { name: 'Hang up' }).click();
    await status(p, 'You left the call.');
  });

  it('microphone and speaker: the choice is remembered for the next visit; the chosen microphone unplugged mid-call falls back to the default with a message, and the call goes on', async () => {
    // Chromium's fake devices (three microphones, three speakers) are real to the page; unplugging
    // one is not something a headless browser can do, so the test ends its track, hides it from
    // enumerateDevices and fires devicechange, as the browser does when a headset goes.
    const p = await rig.openCallPage({
      init: `
        window.__opened = [];
        const md = navigator.mediaDevices;
        const gum = md.getUserMedia.bind(md);
        window.__streams = [];
        md.getUserMedia = (c) => {
          const id = c && c.audio && c.audio.deviceId;
          window.__opened.push(typeof id === 'object' ? (id.exact || id.ideal) : id || '');
          return gum(c).then((s) => (window.__streams.push(s), s));
        };
        const list = md.enumerateDevices.bind(md);
        window.__unplugged = new Set();
        md.enumerateDevices = async () =>
          (await list()).filter((d) => !window.__unplugged.has(d.label));
        // As a real unplug: the device's track ends, then the device list changes.
        window.__unplug = (label) => {
          window.__unplugged.add(label);
          for (const t of window.__streams.at(-1).getAudioTracks()) t.dispatchEvent(new Event('ended'));
          md.dispatchEvent(new Event('devicechange'));
        };
      `,
    });
    const chosen = (id: string) =>
      p.page.locator(`#${id}`).evaluate((s: HTMLSelectElement) => s.selectedOptions[0]?.text);
    /** The lists are filled once the page has read the devices. */
    const listed = () =>
      p.page
        .locator('#microphone option', { hasText: 'Fake Audio Input 2' })
        .waitFor({ state: 'attached' });
    const deviceIdOf = (label: string) =>
      p.page.evaluate(
        async (l) =>
          (await navigator.mediaDevices.enumerateDevices()).find((d) => d.label === l)!.deviceId,
        label,
      );
    await listed();
    await p.page.selectOption('#microphone', { label: 'Fake Audio Input 2' });
    await p.page.selectOption('#speaker', { label: 'Fake Audio Output 1' });
    await p.page.reload();
    await listed();
    expect(await chosen('microphone')).toBe('Fake Audio Input 2');
    expect(await chosen('speaker')).toBe('Fake Audio Output 1');

    // Connecting, held a moment by a slow token endpoint so it can be seen.
    await p.page.route('**/token', async (route) => {
      await new Promise((r) => setTimeout(r, 1500));
      await route.continue();
    });
    const started = startCall(p);
    await p.page.locator('#app[data-phase=connecting]').waitFor();
    await screenshots(p.page, 'connecting');
    await started;
    expect(await p.page.evaluate(() => (window as any).__opened.at(-1))).toBe(
      await deviceIdOf('Fake Audio Input 2'),
    );
    expect(await chosen('microphone')).toBe('Fake Audio Input 2');
    // The assistant's audio plays on the chosen speaker.
    const sinks = await p.page.evaluate(() =>
      Array.from(document.querySelectorAll('#agent-audio audio'), (a) => (a as any).sinkId),
    );
    expect(sinks).toEqual([await deviceIdOf('Fake Audio Output 1')]);

    await p.page.evaluate(() => (window as any).__unplug('Fake Audio Input 2'));
    await alert(
      p,
      'The microphone “Fake Audio Input 2” was disconnected: now using “Fake Default Audio Input”.',
    );
    // The microphone opened last, and live, is the default one.
    await p.page.waitForFunction(() => {
      const t = (window as any).__streams.at(-1).getAudioTracks()[0];
      return t.label === 'Fake Default Audio Input' && t.readyState === 'live';
    });
    expect(await chosen('microphone')).toBe('Fake Default Audio Input');
    await screenshots(p.page, 'microphone-unplugged');
    // The call goes on.
    expect(await p.page.locator('#app').getAttribute('data-phase')).toBe('in-call');
    await answeredThenHangUp(p, 'Still there?');
  });

  it('a dropped connection: the page says "Reconnecting… the call waits up to 10 s", and the call goes on once it is back', async () => {
    const p = await rig.openCallPage();
    await startCall(p);
    const before = rig.signal.connections;
    rig.signal.refusing = true;
    rig.signal.cut();
    await p.page
      .locator('#reconnecting', { hasText: 'Reconnecting… the call waits up to 10 s.' })
      .waitFor({ timeout: 30_000 });
    expect(await p.page.locator('#app').getAttribute('data-phase')).toBe('in-call');
    await screenshots(p.page, 'reconnecting');
    rig.signal.refusing = false;
    await p.page.locator('#reconnecting').waitFor({ state: 'hidden', timeout: 60_000 });
    expect(rig.signal.connections).toBeGreaterThan(before);
    expect(await p.page.locator('#app').getAttribute('data-phase')).toBe('in-call');
    // Still the same call: a typed line gets its answer.
    await answeredThenHangUp(p, 'Are you still there?');
  });

  it('End for everyone, after the participant token has expired: everyone leaves, the ledger says api_end_call', async () => {
    const p = await rig.openCallPage();
    const { room, token } = await startCall(p);
    // The edge judges expiry with 10 s of clock tolerance: wait until the token is past it.
    const exp = decodeJwt(token).exp!;
    expect(exp - decodeJwt(token).nbf!).toBe(TOKEN_TTL_SECONDS);
    await waitFor('participant token past its TTL', async () => Date.now() > exp * 1000 + 11_000, {
      timeoutMs: 40_000,
      intervalMs: 250,
    });
    await p.page.getByRole('button', { name: 'End for everyone' }).click();
    await status(p, 'The call was ended for everyone.');
    await screenshots(p.page, 'ended-for-everyone');
    const call = await rig.system.endedCallAs(room, 'api_end_call');
    expect(call).toMatchObject({ end_reason: 'api_end_call', end_source: 'api' });
    expect(await rig.system.roomGone(room)).toBe(true);
  });

  it('Hang up, signed in with the app’s JWT: the agent job exits promptly and the ledger says participant_left', async () => {
    const p = await rig.openCallPage({
      init: pageConfig({}, await rig.signUserJwt('web-user-1')),
    });
    const { room } = await startCall(p);
    const clicked = Date.now();
    await p.page.getByRole('button', { name: 'Hang up' }).click();
    await status(p, 'You left the call.');
    await screenshots(p.page, 'hung-up');
    const marker = await waitFor('hooks ran', async () => rig.system.hookMarker(room, 'ran'), {
      timeoutMs: 10_000,
    });
    await waitFor('job exit', async () => !pidAlive(marker.pid), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect(Date.now() - clicked).toBeLessThan(EXITS_NOT_LINGERS_MS);
    const call = await rig.system.reportedCall(room);
    expect(call.end_reason).toBe('participant_left');
    expect(call.participants.map((x: { identity: string }) => x.identity)).toContain('web-user-1');
  });

  it('another participant in the room cannot speak for the assistant: its captions and its call.end notice are ignored', async () => {
    const p = await rig.openCallPage();
    const { room, token } = await startCall(p);
    const caller = decodeJwt(token).sub!;
    const grant = new AccessToken(DEV_KEY, DEV_SECRET, { identity: 'intruder', ttl: '5m' });
    grant.addGrant({ room, roomJoin: true, canPublishData: true, canUpdateOwnMetadata: true });
    const intruder = new Room();
    await intruder.connect(rig.system.livekit.url, await grant.toJwt(), {
      autoSubscribe: false,
      dynacast: false,
    });
    try {
      const agent = [...intruder.remoteParticipants.values()].find(
        (x) => x.kind === ParticipantKind.AGENT,
      )!;
      expect(agent).toBeDefined();
      const me = intruder.localParticipant!;
      const caption = (segment: string) => ({
        topic: 'lk.transcription',
        attributes: { 'lk.segment_id': segment, 'lk.transcription_final': 'true' },
      });
      await me.sendText('FAKE one: I am your assistant.', caption('fake-1'));
      // Claiming to send in the agent's or the caller's name: LiveKit stamps a non-agent's
      // streams with its own identity, so these must not show either.
      for (const [segment, as] of [
        ['fake-2', agent.identity],
        ['fake-3', caller],
      ] as const) {
        const w = await me.streamText({ ...caption(segment), senderIdentity: as });
        await w.write(`FAKE ${segment}: read me your password.`);
        await w.close();
      }
      await me.publishData(new TextEncoder().encode(JSON.stringify({ reason: 'max_duration' })), {
        reliable: true,
        topic: CALL_END_TOPIC,
      });
      await me.setAttributes({ [END_REASON_ATTRIBUTE]: 'max_duration', 'lk.agent.state': 'fake' });
      // On loopback these land in milliseconds; the wait is the margin, the end below the proof.
      await new Promise((r) => setTimeout(r, 2_000));
      expect.soft(await p.page.locator('#captions li', { hasText: 'FAKE' }).count()).toBe(0);
      expect.soft(await p.page.locator('#agent-state').textContent()).not.toBe('fake');
      const ended = await rig.system.endAsAdmin(room, 'end_for_all');
      expect(ended.status).toBe(200);
      // The intruder's "max_duration" came first; had the page taken it, it would say the time ran out.
      await p.page.locator('#app[data-phase=ended]').waitFor({ timeout: 30_000 });
      expect(await p.page.locator('#status').textContent()).toBe(
        'The call was ended for everyone.',
      );
      expect.soft(await p.page.locator('#captions li', { hasText: 'FAKE' }).count()).toBe(0);
      await screenshots(p.page, 'intruder-ignored');
    } finally {
      await intruder.disconnect();
    }
  });
});
