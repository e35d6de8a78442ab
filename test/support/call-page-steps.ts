import { expect } from 'vitest';
import type { CallPage } from './browser.ts';

/**
 * What a person does and sees on the call page, as Playwright steps shared by the page's tests.
 * The waits are for what the page shows, with the generous bound a busy machine needs.
 */
const SHOWN_WITHIN_MS = 30_000;

export const callButton = (p: CallPage) => p.page.getByRole('button', { name: /^Call( again)?$/ });

/** The line under the buttons (what the call is doing, or how it ended). */
export const status = (p: CallPage, text: string | RegExp) =>
  p.page.locator('#status', { hasText: text }).waitFor({ timeout: SHOWN_WITHIN_MS });

/** The message box for what went wrong and how to fix it. */
export const alert = (p: CallPage, text: string | RegExp) =>
  p.page.locator('#alert', { hasText: text }).waitFor({ timeout: SHOWN_WITHIN_MS });

export const caption = (p: CallPage, who: 'you' | 'assistant', text: string | RegExp) =>
  p.page
    .locator(`#captions li[data-who=${who}]`, { hasText: text })
    .first()
    .waitFor({ timeout: SHOWN_WITHIN_MS });

/** A script that sets `window.voiceCallConfig`, with a bearer JWT for /token if given. */
export const pageConfig = (c: Record<string, unknown>, jwt?: string) =>
  `window.voiceCallConfig = Object.assign(${JSON.stringify(c)}, ${
    jwt ? `{ getAuthorization: () => ${JSON.stringify(`Bearer ${jwt}`)} }` : '{}'
  });`;

/** Types a line to the assistant and waits for the stand-in model's echo of it. */
export async function typeToAssistant(p: CallPage, line: string): Promise<void> {
  await p.page.getByLabel('Type to the assistant').fill(line);
  await p.page.getByRole('button', { name: 'Send' }).click();
}

/** The call still works: a typed line gets its answer. Then the person hangs up. */
export async function answeredThenHangUp(p: CallPage, line: string): Promise<void> {
  await typeToAssistant(p, line);
  await caption(p, 'assistant', `You said: ${line}`);
  await p.page.getByRole('button', { name: 'Hang up' }).click();
  await status(p, 'You left the call.');
}

/**
 * Clicks Call and waits until the page is in the call (the assistant may not have joined yet);
 * returns the room and the participant token the edge issued.
 */
export async function dial(p: CallPage): Promise<{ room: string; token: string }> {
  const tokenResponse = p.page.waitForResponse(
    (r) => r.url().endsWith('/token') && r.request().method() === 'POST',
  );
  await callButton(p).click();
  const issued = await tokenResponse;
  expect(issued.status()).toBe(201);
  const token = ((await issued.json()) as { participant_token: string }).participant_token;
  await p.page.locator('#app[data-phase=in-call]').waitFor({ timeout: SHOWN_WITHIN_MS });
  const room = (await p.page.locator('#room-name').textContent())!;
  expect(room).toMatch(/^call-/);
  return { room, token };
}

/** Clicks Call, waits for the assistant's greeting, and returns the room and the participant token. */
export async function startCall(p: CallPage): Promise<{ room: string; token: string }> {
  const call = await dial(p);
  await caption(p, 'assistant', 'Hello!');
  return call;
}

/** The call is over, and the status line says how it ended. */
export const ended = (p: CallPage, text: string | RegExp, timeout = SHOWN_WITHIN_MS) =>
  p.page.locator('#app[data-phase=ended] #status', { hasText: text }).waitFor({ timeout });

/** What the page shows a person now: its phase, the status line and any message (for failures). */
export const whatThePageSays = (p: CallPage) =>
  p.page.evaluate(() => ({
    phase: document.getElementById('app')?.dataset.phase,
    status: document.getElementById('status')?.textContent,
    alert: document.getElementById('alert')?.textContent,
    captions: Array.from(document.querySelectorAll('#captions li'), (li) => li.textContent),
  }));
