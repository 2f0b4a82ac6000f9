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

import {
  clickTo, consentIfAsked, expectCustomerEmail, opLogin, required, runInBrowser, safeUrl,
  startCompanySignIn,
} from './harness.mjs';

const storefrontUrl = required('STOREFRONT_URL');
const login = required('OP_LOGIN');
const expectEmail = required('EXPECT_EMAIL');
const signOut = process.env.SIGN_OUT === '1';

await runInBrowser('browser', async (page, log) => {
  const storefrontOrigin = await startCompanySignIn(page, log, storefrontUrl);

  log('oidc-provider login page: fill login and password, submit');
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), opLogin(page, login)]);
  log(`        now at ${safeUrl(page.url())}`);

  // Either a consent page (same OP origin, a "Continue" button) or we are already back.
  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  const consented = await consentIfAsked(page, onAccount);
  log(`${consented ? 'consent page: clicked "Continue"' : 'no consent page'}, now at ${safeUrl(page.url())}`);

  log(`#customer-email must contain ${JSON.stringify(expectEmail)}`);
  await expectCustomerEmail(page, expectEmail);
  log('PASS: signed in to the storefront through the gateway');
  if (!signOut) return;

  log('click "Sign out" (the button script points it at the gateway)');
  const signOutLink = page.getByRole('link', { name: 'Sign out', exact: true }).first();
  const href = await signOutLink.getAttribute('href');
  if (!href || !href.includes('/logout?channel_id=')) {
    throw new Error(`the storefront's "Sign out" does not go through the gateway: ${safeUrl(href)}`);
  }
  await clickTo(page, (u) => u.origin !== storefrontOrigin, signOutLink);
  log(`        now at ${safeUrl(page.url())}`);

  log('oidc-provider asks to confirm: "Yes, sign me out"');
  const yes = page.locator('button[name="logout"][value="yes"]');
  await yes.waitFor({ state: 'visible' });
  await clickTo(page, (u) => u.origin === storefrontOrigin, yes);
  log(`        now at ${safeUrl(page.url())}`);

  log('the storefront shows "Sign in" again, no signed-in shopper');
  await page.getByRole('link', { name: 'Sign in', exact: true }).first().waitFor({ state: 'visible' });
  if (await page.locator('.signed-in').count()) throw new Error('still signed in to the storefront');

  log('the next company sign-in asks for the login again (the IdP session ended)');
  await startCompanySignIn(page, log, storefrontUrl);
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  log('PASS: signed out of the storefront and of the IdP');
});
