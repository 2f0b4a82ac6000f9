// Shared by the browser scripts: launching Debian's chromium through playwright-core (never a
// downloaded browser), URL scrubbing for logs, and the run-with-timeout/screenshot-on-failure
// wrapper. Scripts never print a URL's query (codes, states, tokens) or cookies.

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
