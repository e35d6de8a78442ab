import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium driven by playwright-core (no browser download: this machine cannot fetch one).
 * Each page gets its own browser, because the fake microphone is a launch flag: it plays `micWav`
 * once (`%noloop`), then silence.
 */
export const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');
export const SCREENSHOTS = join(ARTIFACTS, 'call-page');

export function chromiumPath(): string | undefined {
  const candidates = [process.env.CHROMIUM_BIN, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p): p is string => !!p && existsSync(p));
}

export const HOW_TO_GET_CHROMIUM =
  "Debian's chromium (apt-get install chromium) or CHROMIUM_BIN pointing at a Chromium binary";

export type CallPage = {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** What Chromium refused under the page's Content-Security-Policy, as it logged it. */
  cspViolations: string[];
  close(): Promise<void>;
};

export async function openCallPage(
  url: string,
  {
    micWav,
    microphone = 'granted',
    init,
  }: { micWav: string; microphone?: 'granted' | 'refused'; init?: string },
): Promise<CallPage> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(`no Chromium: ${HOW_TO_GET_CHROMIUM}`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=user-gesture-required',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${micWav}%noloop`,
    ],
  });
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, // a phone-width screen
    permissions: microphone === 'granted' ? ['microphone'] : [],
  });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const cspViolations: string[] = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  await page.goto(url);
  return { browser, context, page, cspViolations, close: () => browser.close() };
}

/**
 * A page without a microphone (the calls console): a desktop-width screen unless told otherwise,
 * light or dark as the test asks, CSP refusals collected like the call page's.
 */
export async function openPage(
  url: string,
  {
    viewport = { width: 1200, height: 900 },
    colorScheme = 'light',
  }: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' } = {},
): Promise<CallPage> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(`no Chromium: ${HOW_TO_GET_CHROMIUM}`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  const cspViolations: string[] = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  await page.goto(url);
  return { browser, context, page, cspViolations, close: () => browser.close() };
}

/** A full-page PNG in test-artifacts/<folder>/<name>.png (call-page/ unless told). */
export async function screenshot(page: Page, name: string, folder = 'call-page'): Promise<string> {
  const dir = join(ARTIFACTS, folder);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export function browserTempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lkvc-browser-'));
}

/**
 * The page as it is (the call page's tests use a phone's width) and again at a desktop's:
 * `<name>.png` and `<name>-desktop.png`.
 */
export async function screenshots(page: Page, name: string, folder = 'call-page'): Promise<void> {
  const size = page.viewportSize();
  await screenshot(page, name, folder);
  await page.setViewportSize({ width: 1280, height: 900 });
  await screenshot(page, `${name}-desktop`, folder);
  if (size) await page.setViewportSize(size);
}
