// Shared by the browser scripts: launching Debian's chromium through playwright-core (never a
// downloaded browser), URL scrubbing for logs, the run-with-timeout/screenshot-on-failure
// wrapper, and the steps several scripts take (the storefront's way to the company sign-in,
// oidc-provider's login and consent, the account page's email). Scripts never print a URL's
// query (codes, states, tokens) or cookies.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const OVERALL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 60_000);
const STEP_TIMEOUT_MS = 15_000;

export function logger(name) {
  return (line) => process.stdout.write(`${name}: ${line}\n`);
}

// Origin + path only: queries and fragments may carry authorization codes or tokens.
export function safeUrl(raw) {
  try {
    const u = new URL(raw);
    return `${u.origin}${u.pathname}`;
  } catch {
    return String(raw ?? '').split(/[?#]/)[0];
  }
}

// Error messages from playwright can quote URLs (e.g. "navigating to ..."): strip their queries.
export function scrub(text) {
  return String(text).replace(/(https?:\/\/[^\s"'<>]*?)[?#][^\s"'<>]*/g, '$1?[redacted]');
}

export function required(name) {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`env ${name} is required\n`);
    process.exit(2);
  }
  return v;
}

// Clicks `target` and waits until the page is one `url` (a URL predicate) accepts.
export async function clickTo(page, url, target) {
  await Promise.all([page.waitForURL(url, { waitUntil: 'domcontentloaded' }), target.click()]);
}

// A shopper's way to the company sign-in: the storefront's home, its "Sign in" link, then
// the "Sign in with company account" button (a.bc-sso-button), which leaves the storefront
// for the gateway or the IdP. Returns the storefront's origin.
export async function startCompanySignIn(page, log, storefrontUrl) {
  log(`open storefront ${safeUrl(storefrontUrl)}, click "Sign in"`);
  await page.goto(storefrontUrl, { waitUntil: 'domcontentloaded' });
  const signIn = page.getByRole('link', { name: 'Sign in', exact: true }).first();
  await clickTo(page, (u) => u.pathname.endsWith('/login.php'), signIn);
  log(`        now at ${safeUrl(page.url())}`);
  log('wait for and click "Sign in with company account" (a.bc-sso-button)');
  const sso = page.locator('a.bc-sso-button', { hasText: 'Sign in with company account' }).first();
  await sso.waitFor({ state: 'visible' });
  const storefrontOrigin = new URL(storefrontUrl).origin;
  await clickTo(page, (u) => u.origin !== storefrontOrigin, sso);
  log(`        now at ${safeUrl(page.url())}`);
  return storefrontOrigin;
}

// At oidc-provider's login page (shown): signs in as `login` (its dev pages take any password).
export async function opLogin(page, login) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any-password');
  await page.locator('form:has(input[name="login"]) [type="submit"]').click();
}

// oidc-provider's consent page, if it shows one before the page `url` accepts: "Continue".
// Whether it was shown.
export async function consentIfAsked(page, url) {
  const consent = page.locator('form:has(input[name="prompt"][value="consent"]) [type="submit"]');
  const next = await Promise.race([
    page.waitForURL(url, { waitUntil: 'domcontentloaded' }).then(() => 'there'),
    consent.waitFor({ state: 'visible' }).then(() => 'consent'),
  ]);
  if (next === 'consent') await clickTo(page, url, consent);
  return next === 'consent';
}

// The storefront's account page shows `email` as the signed-in customer's.
export async function expectCustomerEmail(page, email) {
  const shown = page.locator('#customer-email');
  await shown.waitFor({ state: 'attached' });
  const text = (await shown.textContent()) ?? '';
  if (!text.includes(email)) {
    throw new Error(`#customer-email is ${JSON.stringify(text.trim())}, expected it to contain ${JSON.stringify(email)}`);
  }
}

// Runs `steps(page, log)` in a fresh headless chromium; exits 0 on success, 1 with a
// screenshot in ARTIFACTS_DIR on failure.
export async function runInBrowser(name, steps) {
  const log = logger(name);
  const artifactsDir = resolve(process.env.ARTIFACTS_DIR || 'artifacts');
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  let browser;
  let page;
  const run = async () => {
    log(`launching ${executablePath}`);
    browser = await chromium.launch({
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
      ],
    });
    const context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page = await context.newPage();
    await steps(page, log);
  };
  let timer;
  const overall = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`overall timeout of ${OVERALL_TIMEOUT_MS} ms exceeded`)),
      OVERALL_TIMEOUT_MS,
    );
  });
  let code = 0;
  try {
    await Promise.race([run(), overall]);
  } catch (err) {
    code = 1;
    let where = '(no page)';
    try {
      if (page) {
        where = safeUrl(page.url());
        mkdirSync(artifactsDir, { recursive: true });
        const file = join(artifactsDir, `${name}-failure-${new Date().toISOString().replace(/[:.]/g, '-')}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
        process.stderr.write(`${name}: screenshot ${file}\n`);
      }
    } catch (shotErr) {
      process.stderr.write(`${name}: screenshot failed: ${scrub(shotErr.message)}\n`);
    }
    process.stderr.write(`${name}: FAIL at ${where}\n`);
    process.stderr.write(`${name}: ${scrub(err?.stack ?? err)}\n`);
  } finally {
    clearTimeout(timer);
    await browser?.close().catch(() => {});
  }
  process.exit(code);
}
