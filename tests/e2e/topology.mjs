// The production topology in a real browser: storefront (BigCommerce sandbox) -> "Sign in"
// -> "Sign in with company account" -> the gateway behind nginx -> the sandbox's dev IdP:
// pick a user -> back through nginx (another replica) -> storefront /account.php signed in.
//
// Env:
//   STOREFRONT_URL  storefront home page URL (required)
//   USER_EMAIL      the dev IdP user to pick, by email; #customer-email must show it (required)
//   ARTIFACTS_DIR, CHROMIUM_PATH, E2E_TIMEOUT_MS as in harness.mjs
//
// Never prints a URL with its query (codes, states, tokens) and never prints cookies.

import { required, runInBrowser, safeUrl } from './harness.mjs';

const storefrontUrl = required('STOREFRONT_URL');
const userEmail = required('USER_EMAIL');

await runInBrowser('topology', async (page, log) => {
  log(`step 1: open storefront ${safeUrl(storefrontUrl)}`);
  await page.goto(storefrontUrl, { waitUntil: 'domcontentloaded' });

  log('step 2: click "Sign in"');
  await Promise.all([
    page.waitForURL((u) => u.pathname.endsWith('/login.php'), { waitUntil: 'domcontentloaded' }),
    page.getByRole('link', { name: 'Sign in', exact: true }).first().click(),
  ]);

  log('step 3: click "Sign in with company account" (served by the gateway behind nginx)');
  const sso = page.locator('a.bc-sso-button', { hasText: 'Sign in with company account' }).first();
  await sso.waitFor({ state: 'visible' });
  const storefrontOrigin = new URL(storefrontUrl).origin;
  await Promise.all([
    page.waitForURL((u) => u.origin !== storefrontOrigin, { waitUntil: 'domcontentloaded' }),
    sso.click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  log(`step 4: dev IdP: pick ${userEmail}`);
  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  const user = page.locator('button', { hasText: userEmail }).first();
  await user.waitFor({ state: 'visible' });
  await Promise.all([page.waitForURL(onAccount, { waitUntil: 'domcontentloaded' }), user.click()]);
  log(`        now at ${safeUrl(page.url())}`);

  log(`step 5: #customer-email must contain ${JSON.stringify(userEmail)}`);
  const email = page.locator('#customer-email');
  await email.waitFor({ state: 'attached' });
  const text = (await email.textContent()) ?? '';
  if (!text.includes(userEmail)) {
    throw new Error(`#customer-email is ${JSON.stringify(text.trim())}, expected ${JSON.stringify(userEmail)}`);
  }
  log('PASS: signed in through nginx and two gateway replicas');
});
