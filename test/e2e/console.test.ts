import { DisconnectReason } from '@livekit/rtc-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPage, screenshot, type CallPage } from '../support/browser.ts';
import { CallClient } from '../support/call-client.ts';
import { systemForThisFile } from '../support/e2e-system.ts';
import { renderSpeech } from '../support/speech.ts';

/**
 * The calls console at /console in headless Chromium, against the real system: calls are made by
 * rtc-node callers through the edge, LiveKit and the built agent; the console reads them through
 * the ledger API with the admin key and ends an open one. Screenshots go to test-artifacts/console/.
 */
const system = systemForThisFile('console tests', {
  needs: ['chromium', 'speech'],
  agentEnv: { AGENT_AUDIO_INPUT: 'true' },
});
let open: CallPage | undefined;
const clients: CallClient[] = [];
let endedRoom = '';
let openCall: CallClient;

const greeted = (c: CallClient) =>
  c.waitForEvent('transcription', (d) => /Hello!/.test(d.text), 30_000);

beforeAll(async () => {
  if (system.skipped) return;
  // One call that ended (the caller said goodbye out loud, the assistant ended it) with its
  // report, its turn timed …
  const done = new CallClient();
  clients.push(done);
  await done.join(system.edge.url, '');
  await done.publishMicrophone();
  await greeted(done);
  system.openai.utterances.push('Thanks, that is all. Goodbye!');
  await done.speak(renderSpeech(`${system.dir}/speech`, 'Thanks, that is all. Goodbye!'));
  await done.waitForDisconnect(30_000);
  endedRoom = done.roomName;
  await system.reportedCall(endedRoom);
  // … and one still open.
  openCall = new CallClient();
  clients.push(openCall);
  await openCall.join(system.edge.url, '');
  await greeted(openCall);
});
afterEach(async () => {
  const refused = open?.cspViolations ?? [];
  await open?.close();
  open = undefined;
  expect(refused).toEqual([]);
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.room.disconnect()));
});

const row = (p: CallPage, room: string) => p.page.locator(`#calls tr[data-room="${room}"]`);
const rooms = async (p: CallPage) =>
  p.page.locator('#calls tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.room));

async function signIn(p: CallPage, key: string): Promise<void> {
  await p.page.getByLabel('Admin key').fill(key);
  await p.page.getByRole('button', { name: 'Sign in' }).click();
}

describe.skipIf(system.skipped)('the calls console in Chromium, against the real system', () => {
  it('is served by the Worker with connect-src self only; /favicon.ico leads to the SVG icon', async () => {
    const page = await fetch(`${system.edge.url}/console`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(/ connect-src ([^;]*)/.exec(csp)?.[1]).toBe("'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(await page.text()).toContain('Calls console');
    const icon = await fetch(`${system.edge.url}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.url).toMatch(/\/favicon\.svg$/);
    expect(icon.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    await icon.body?.cancel();
  });

  it('refuses a wrong key in words, then lists, filters and opens a call with its transcript', async () => {
    const p = (open = await openPage(`${system.edge.url}/console`));
    await signIn(p, 'not-the-admin-key');
    await p.page
      .locator('#alert', { hasText: 'That key was not accepted.' })
      .waitFor({ timeout: 15_000 });
    expect(await p.page.locator('#console').getAttribute('data-view')).toBe('sign-in');
    await screenshot(p.page, 'wrong-key', 'console');
    // The app key is a real key, but not for the ledger.
    await signIn(p, system.edge.appKey);
    await p.page
      .locator('#alert', { hasText: 'the console needs the admin key' })
      .waitFor({ timeout: 15_000 });

    await signIn(p, system.edge.adminKey);
    await row(p, endedRoom).waitFor({ timeout: 15_000 });
    await row(p, openCall.roomName).waitFor();
    expect(await p.page.locator('#alert').isHidden()).toBe(true);
    // The key is in this tab's session storage, never in the URL.
    expect(p.page.url()).not.toContain(system.edge.adminKey);
    expect(await p.page.evaluate(() => Object.values(sessionStorage))).toContain(
      system.edge.adminKey,
    );
    await expect
      .poll(() => row(p, endedRoom).locator('td').nth(4).textContent())
      .toBe('The assistant ended the call.');
    expect(await row(p, openCall.roomName).getAttribute('data-status')).toBe('open');
    expect(await p.page.locator('#hourly-chart svg rect.bar').count()).toBeGreaterThan(0);
    expect(await p.page.locator('#reasons-chart svg').getAttribute('aria-label')).toMatch(
      /agent_end_call 1/,
    );
    await screenshot(p.page, 'list', 'console');
    // On a phone the table scrolls inside its box; the page itself is no wider than the screen.
    await p.page.setViewportSize({ width: 390, height: 844 });
    expect(
      await p.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    ).toBe(true);
    await screenshot(p.page, 'list-phone', 'console');
    await p.page.setViewportSize({ width: 1200, height: 900 });

    await p.page.getByLabel('Show').selectOption('open');
    await expect.poll(() => rooms(p)).toEqual([openCall.roomName]);
    await p.page.getByLabel('Show').selectOption('ended');
    await expect.poll(() => rooms(p)).toEqual([endedRoom]);

    await p.page.getByRole('link', { name: endedRoom }).click();
    await p.page.locator('#console[data-view=call]').waitFor();
    await p.page
      .locator('#transcript li[data-role=assistant]', { hasText: 'Hello!' })
      .first()
      .waitFor();
    await p.page.locator('#transcript li[data-role=user]', { hasText: 'Goodbye' }).waitFor();
    await p.page.locator('#timeline li[data-kind=ended]', { hasText: 'agent_end_call' }).waitFor();
    await p.page.locator('#timeline li[data-kind=report]').waitFor();
    expect(await p.page.locator('#hooks tbody tr').count()).toBeGreaterThan(0);
    // The spoken turn's latency, from the report (agents-js's own metrics).
    await p.page.locator('#latency-summary caption', { hasText: 'Over 1 turn' }).waitFor();
    expect(await p.page.locator('#latency-turns tbody tr').count()).toBe(1);
    expect(await p.page.locator('#call-actions').isHidden()).toBe(true);
    await screenshot(p.page, 'ended-call', 'console');

    // A room the ledger does not know: said in words, over the list.
    await p.page.goto(`${system.edge.url}/console#call=call-nosuchroom`);
    await p.page
      .locator('#alert', { hasText: 'There is no such call in the ledger.' })
      .waitFor({ timeout: 15_000 });
    expect(await p.page.locator('#console').getAttribute('data-view')).toBe('calls');
    await p.page.getByRole('link', { name: endedRoom }).click();
    await p.page.locator('#console[data-view=call]').waitFor();
    expect(await p.page.locator('#alert').isHidden()).toBe(true);

    // Signed in for the tab: a reload keeps the session, Sign out forgets the key.
    await p.page.reload();
    await p.page.locator('#console[data-view=call]').waitFor({ timeout: 15_000 });
    await p.page.getByRole('button', { name: 'Sign out' }).click();
    expect(await p.page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it('ends an open call for everyone, after a confirmation, and shows it end', async () => {
    const p = (open = await openPage(`${system.edge.url}/console`, { colorScheme: 'dark' }));
    await signIn(p, system.edge.adminKey);
    await p.page.getByRole('link', { name: openCall.roomName }).click();
    await p.page.locator('#call-view[data-status=open]').waitFor({ timeout: 15_000 });
    await p.page
      .locator('#transcript', { hasText: 'The transcript will come with the report.' })
      .waitFor();
    await screenshot(p.page, 'open-call-dark', 'console');

    await p.page.getByRole('button', { name: 'End for everyone' }).click();
    const dialog = p.page.locator('dialog#confirm[open]');
    await dialog.waitFor();
    await screenshot(p.page, 'confirm-end', 'console');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await p.page.locator('#call-view').getAttribute('data-status')).toBe('open');

    await p.page.getByRole('button', { name: 'End for everyone' }).click();
    await dialog.getByRole('button', { name: 'End for everyone' }).click();
    await p.page.locator('#call-view[data-status=ended]').waitFor({ timeout: 30_000 });
    await p.page
      .locator('#call-facts', { hasText: 'The call was ended for everyone. (api_end_call)' })
      .waitFor();
    expect(await openCall.waitForDisconnect(30_000)).toBe(DisconnectReason.ROOM_DELETED);
    // The report comes later; the open call's page keeps refreshing until it is there.
    await p.page
      .locator('#transcript li[data-role=assistant]', { hasText: 'Hello!' })
      .first()
      .waitFor({ timeout: 30_000 });
    await screenshot(p.page, 'ended-from-console-dark', 'console');
    expect((await system.call(openCall.roomName)).end_note).toBe('ended from the calls console');
  });

  it('pages with next_cursor, and removes the assistant from an open call: the caller stays, the ledger says api_remove_agent', async () => {
    const caller = new CallClient();
    clients.push(caller);
    await caller.join(system.edge.url, '');
    await greeted(caller);
    const p = (open = await openPage(`${system.edge.url}/console`));
    await p.page.evaluate(() => (document.getElementById('console')!.dataset.pageSize = '1'));
    await signIn(p, system.edge.adminKey);
    await row(p, caller.roomName).waitFor({ timeout: 15_000 });
    expect(await rooms(p)).toEqual([caller.roomName]);
    const more = p.page.getByRole('button', { name: 'Load more' });
    await more.click();
    await expect.poll(() => rooms(p)).toHaveLength(2);
    await more.click();
    await expect.poll(() => rooms(p)).toHaveLength(3);
    // The last page may still carry a cursor (to an empty page): following it ends the list.
    if (await more.isVisible()) await more.click();
    await more.waitFor({ state: 'hidden' });
    expect(await rooms(p)).toEqual([caller.roomName, openCall.roomName, endedRoom]);

    await p.page.getByRole('link', { name: caller.roomName }).click();
    await p.page.locator('#call-view[data-status=open]').waitFor({ timeout: 15_000 });
    await p.page.getByRole('button', { name: 'Remove the assistant' }).click();
    await p.page
      .locator('dialog#confirm[open]')
      .getByRole('button', { name: 'Remove the assistant' })
      .click();
    await p.page.locator('#timeline li[data-kind=removed]').waitFor({ timeout: 30_000 });
    // The ledger ends the call as api_remove_agent; the room and its caller stay.
    await p.page.locator('#call-view[data-status=ended]').waitFor({ timeout: 30_000 });
    await p.page
      .locator('#call-facts', { hasText: 'The assistant was removed from the call.' })
      .waitFor();
    await caller.waitForEvent('participant-left', (d) => d.identity.startsWith('agent-'), 30_000);
    expect(caller.disconnectReason).toBeUndefined();
    await screenshot(p.page, 'assistant-removed', 'console');
  });
});
