// Drives Debian's chromium (via playwright-core, never a downloaded browser) through the whole
// storefront sign-in: storefront home -> "Sign in" -> "Sign in with company account" ->
// gateway -> oidc-provider dev login (+ consent) -> gateway callback -> storefront /account.php.
//
// Env:
//   STOREFRONT_URL  storefront home page URL (required)
//   OP_LOGIN        login name to type at oidc-provider's login page (required)
//   EXPECT_EMAIL    text that #customer-email on /account.php must contain (required)
//   SIGN_OUT        "1": then click the storefront's "Sign out" (pointed at the gateway by its
//                   script), confirm at oidc-provider, land signed out on the storefront, and
//                   find the IdP's login form again on the next sign-in
//   ARTIFACTS_DIR   where a failure screenshot goes (default: ./artifacts)
//   CHROMIUM_PATH   browser executable (default: /usr/bin/chromium)
//   E2E_TIMEOUT_MS  overall timeout (default: 60000)
//
// Exit 0 on success; on failure a screenshot ARTIFACTS_DIR/failure-<timestamp>.png, the current
// URL without its query string or fragment, the error, and exit 1.
// Never prints a URL with its query (codes, states, tokens) and never prints cookies.

import { required, runInBrowser, safeUrl } from './harness.mjs';

const storefrontUrl = required('STOREFRONT_URL');
const opLogin = required('OP_LOGIN');
const expectEmail = required('EXPECT_EMAIL');
const signOut = process.env.SIGN_OUT === '1';

await runInBrowser('browser', async (page, log) => {
  log(`step 1: open storefront ${safeUrl(storefrontUrl)}`);
  await page.goto(storefrontUrl, { waitUntil: 'domcontentloaded' });

  log('step 2: click "Sign in"');
  await Promise.all([
    page.waitForURL((u) => u.pathname.endsWith('/login.php'), { waitUntil: 'domcontentloaded' }),
    page.getByRole('link', { name: 'Sign in', exact: true }).first().click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  log('step 3: wait for and click "Sign in with company account" (a.bc-sso-button)');
  const sso = page.locator('a.bc-sso-button', { hasText: 'Sign in with company account' }).first();
  await sso.waitFor({ state: 'visible' });
  const storefrontOrigin = new URL(storefrontUrl).origin;
  await Promise.all([
    page.waitForURL((u) => u.origin !== storefrontOrigin, { waitUntil: 'domcontentloaded' }),
    sso.click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  log('step 4: oidc-provider login page: fill login and password, submit');
  const login = page.locator('input[name="login"]');
  await login.waitFor({ state: 'visible' });
  await login.fill(opLogin);
  await page.locator('input[name="password"]').fill('any-password');
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'domcontentloaded' }),
    page.locator('form:has(input[name="login"]) [type="submit"]').click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  // Either a consent page (same OP origin, a "Continue" button) or we are already back.
  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  const consent = page.locator('form:has(input[name="prompt"][value="consent"]) [type="submit"]');
  const next = await Promise.race([
    page.waitForURL(onAccount, { waitUntil: 'domcontentloaded' }).then(() => 'account'),
    consent.waitFor({ state: 'visible' }).then(() => 'consent'),
  ]);
  if (next === 'consent') {
    log('step 5: consent page: click "Continue"');
    await Promise.all([
      page.waitForURL(onAccount, { waitUntil: 'domcontentloaded' }),
      consent.click(),
    ]);
  } else {
    log('step 5: no consent page');
  }
  log(`        now at ${safeUrl(page.url())}`);

  log(`step 6: #customer-email must contain ${JSON.stringify(expectEmail)}`);
  const email = page.locator('#customer-email');
  await email.waitFor({ state: 'attached' });
  const text = (await email.textContent()) ?? '';
  if (!text.includes(expectEmail)) {
    throw new Error(`#customer-email is ${JSON.stringify(text.trim())}, expected it to contain ${JSON.stringify(expectEmail)}`);
  }
  log('PASS: signed in to the storefront through the gateway');
  if (!signOut) return;

  log('step 7: click "Sign out" (the button script points it at the gateway)');
  const signOutLink = page.getByRole('link', { name: 'Sign out', exact: true }).first();
  const href = await signOutLink.getAttribute('href');
  if (!href || !href.includes('/logout?channel_id=')) {
    throw new Error(`the storefront's "Sign out" does not go through the gateway: ${safeUrl(href)}`);
  }
  await Promise.all([
    page.waitForURL((u) => u.origin !== storefrontOrigin, { waitUntil: 'domcontentloaded' }),
    signOutLink.click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  log('step 8: oidc-provider asks to confirm: "Yes, sign me out"');
  const yes = page.locator('button[name="logout"][value="yes"]');
  await yes.waitFor({ state: 'visible' });
  await Promise.all([
    page.waitForURL((u) => u.origin === storefrontOrigin, { waitUntil: 'domcontentloaded' }),
    yes.click(),
  ]);
  log(`        now at ${safeUrl(page.url())}`);

  log('step 9: the storefront shows "Sign in" again, no signed-in shopper');
  await page.getByRole('link', { name: 'Sign in', exact: true }).first().waitFor({ state: 'visible' });
  if (await page.locator('.signed-in').count()) throw new Error('still signed in to the storefront');

  log('step 10: the next company sign-in asks for the login again (the IdP session ended)');
  await Promise.all([
    page.waitForURL((u) => u.pathname.endsWith('/login.php'), { waitUntil: 'domcontentloaded' }),
    page.getByRole('link', { name: 'Sign in', exact: true }).first().click(),
  ]);
  const again = page.locator('a.bc-sso-button').first();
  await again.waitFor({ state: 'visible' });
  await Promise.all([
    page.waitForURL((u) => u.origin !== storefrontOrigin, { waitUntil: 'domcontentloaded' }),
    again.click(),
  ]);
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  log('PASS: signed out of the storefront and of the IdP');
});
