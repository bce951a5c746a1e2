// Debian's chromium driven by playwright-core, as the pages' users see them: headless, with the flags a
// closed network needs, one browser per test file and a fresh context (cookie jar) per test.
// playwright's launch() gives every browser a new temporary profile (--user-data-dir) of its own.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { listenBroker, type ListeningBroker } from './listen.js';

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(extraFlags: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraFlags],
  });
}

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

export interface BrowserSuite {
  live: ListeningBroker;
  browser: Browser;
  /** The test's own context (cookie jar) and page. */
  context: BrowserContext;
  page: Page;
}

/** One broker on a loopback port and one chromium for the test file; a fresh context and page per test. */
export function browserSuite(): BrowserSuite {
  const suite = {} as BrowserSuite;
  beforeAll(async () => {
    [suite.live, suite.browser] = await Promise.all([listenBroker(), launchChromium()]);
  });
  afterAll(async () => {
    await suite.browser?.close();
    await suite.live?.close();
  });
  beforeEach(async () => {
    suite.context = await suite.browser.newContext({ viewport: DESKTOP });
    suite.page = await suite.context.newPage();
    // Fail with playwright's own message (what it waited for) well before jest's test timeout.
    suite.page.setDefaultTimeout(10_000);
  });
  afterEach(async () => suite.context.close());
  return suite;
}

/** Where a suite's screenshots go (git ignores test-output/). */
export function outputDir(suite: string): string {
  const dir = join(process.cwd(), 'test-output', suite);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Full-page screenshots at desktop and phone widths, named `<name>-desktop.png` / `<name>-phone.png`. */
export async function screenshots(page: Page, dir: string, name: string): Promise<void> {
  for (const [label, size] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(dir, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

/** Signs in on the sign-in page the browser is showing. */
export async function fillSignIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
