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

import {
  clickTo, expectCustomerEmail, required, runInBrowser, safeUrl, startCompanySignIn,
} from './harness.mjs';

const storefrontUrl = required('STOREFRONT_URL');
const userEmail = required('USER_EMAIL');

await runInBrowser('topology', async (page, log) => {
  // The button is served by the gateway behind nginx.
  const storefrontOrigin = await startCompanySignIn(page, log, storefrontUrl);

  log(`dev IdP: pick ${userEmail}`);
  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  const user = page.locator('button', { hasText: userEmail }).first();
  await user.waitFor({ state: 'visible' });
  await clickTo(page, onAccount, user);
  log(`        now at ${safeUrl(page.url())}`);

  log(`#customer-email must contain ${JSON.stringify(userEmail)}`);
  await expectCustomerEmail(page, userEmail);
  log('PASS: signed in through nginx and two gateway replicas');
});
