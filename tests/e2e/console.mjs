// An IT admin, in Debian's chromium, starts from an empty gateway: enters the store's API
// account and storefront in the admin console and checks them, connects a new identity
// provider (oidc-provider) through the console alone (mapping its "buyers" group to
// customer group 2), tests it, and then a shopper signs in with it from the
// storefront: storefront -> "Sign in with company account" -> the gateway's chooser (email)
// -> oidc-provider login (+ consent) -> storefront account page. A second connection (the dev
// IdP) makes the gateway ask for the email first.
//
// Env: GATEWAY_URL, ADMIN_TOKEN, STOREFRONT_URL, ISSUER, CLIENT_ID, CLIENT_SECRET,
// EMAIL_DOMAIN, OP_LOGIN (login at oidc-provider), EXPECT_EMAIL, the store's API account
// (API_BASE_URL, API_CLIENT_ID, API_ACCESS_TOKEN, API_CLIENT_SECRET), the dev IdP client
// (DEV_ISSUER, DEV_CLIENT_ID, DEV_CLIENT_SECRET), ARTIFACTS_DIR,
// CHROMIUM_PATH, E2E_TIMEOUT_MS.

import {
  clickTo, consentIfAsked, expectCustomerEmail, opLogin, required, runInBrowser, safeUrl,
  startCompanySignIn,
} from './harness.mjs';

const gatewayUrl = required('GATEWAY_URL');
const adminToken = required('ADMIN_TOKEN');
const storefrontUrl = required('STOREFRONT_URL');
const issuer = required('ISSUER');
const clientId = required('CLIENT_ID');
const clientSecret = required('CLIENT_SECRET');
const emailDomain = required('EMAIL_DOMAIN');
const login = required('OP_LOGIN');
const expectEmail = required('EXPECT_EMAIL');
const apiBaseUrl = required('API_BASE_URL');
const apiClientId = required('API_CLIENT_ID');
const apiAccessToken = required('API_ACCESS_TOKEN');
const apiClientSecret = required('API_CLIENT_SECRET');
// A second IdP (the dev IdP, for example.com), so that shoppers are asked for their email.
const devIssuer = required('DEV_ISSUER');
const devClientId = required('DEV_CLIENT_ID');
const devClientSecret = required('DEV_CLIENT_SECRET');

await runInBrowser('console', async (page, log) => {
  log('step 1: admin signs in');
  await page.goto(new URL('/admin/login', gatewayUrl).toString(), { waitUntil: 'domcontentloaded' });
  await page.locator('input[name="token"]').fill(adminToken);
  await clickTo(page, (u) => u.pathname === '/admin', page.getByRole('button', { name: 'Sign in' }));

  log('step 2: the overview says the store is not set up; the admin enters its API account');
  const store = (await page.locator('#store-settings').textContent()) ?? '';
  if (!store.includes('not set up')) throw new Error(`store panel of an empty gateway: ${store}`);
  await page.getByRole('link', { name: 'Enter the store settings' }).click();
  await page.locator('#api_base_url').fill(apiBaseUrl);
  await page.locator('#client_id').fill(apiClientId);
  await page.locator('#access_token').fill(apiAccessToken);
  await page.locator('#client_secret').fill(apiClientSecret);
  await page.locator('#channels').fill(`1 ${storefrontUrl}`);
  await clickTo(page, (u) => u.pathname === '/admin/checks/store', page.getByRole('button', { name: 'Save and check' }));
  const storeCheck = (await page.locator('#overall').textContent())?.trim();
  if (storeCheck === 'failed') {
    const rows = await page.locator('tr.status-failed').allTextContents();
    throw new Error(`store check failed: ${rows.join(' | ')}`);
  }
  log(`        store check: ${storeCheck}`);

  log('step 2b: add a connection; the group mapping offers the store\'s customer groups');
  await page.locator('header nav').getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('link', { name: 'Add a connection' }).click();
  const groupsHelp = (await page.locator('.groups-help').textContent()) ?? '';
  if (!groupsHelp.includes('Wholesale')) throw new Error(`customer groups not offered: ${groupsHelp}`);
  await page.locator('#id').fill('acme');
  await page.locator('#display_name').fill('Acme Corp');
  await page.locator('#issuer').fill(issuer);
  await page.locator('#client_id').fill(clientId);
  await page.locator('#client_secret').fill(clientSecret);
  await page.locator('#allowed_email_domains').fill(emailDomain);
  // B2B: buyers of this company get the wholesale customer group (and its price list).
  await page.locator('#scopes').fill('openid email profile groups');
  await page.locator('#group_rules').fill('buyers = 2');
  await clickTo(page, (u) => u.pathname === '/admin/checks/connections/acme', page.getByRole('button', { name: 'Add connection' }));

  log('step 3: the connection test passes');
  const overall = (await page.locator('#overall').textContent())?.trim();
  if (overall !== 'ok') {
    const rows = await page.locator('tr.status-failed, tr.status-warning').allTextContents();
    throw new Error(`connection test says ${overall}: ${rows.join(' | ')}`);
  }

  log('step 3b: add a second connection (the dev IdP, example.com) and test it');
  await page.locator('header nav').getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('link', { name: 'Add a connection' }).click();
  await page.locator('#id').fill('example');
  await page.locator('#display_name').fill('Example Corp');
  await page.locator('#issuer').fill(devIssuer);
  await page.locator('#client_id').fill(devClientId);
  await page.locator('#client_secret').fill(devClientSecret);
  await page.locator('#allowed_email_domains').fill('example.com');
  await clickTo(page, (u) => u.pathname === '/admin/checks/connections/example', page.getByRole('button', { name: 'Add connection' }));
  const second = (await page.locator('#overall').textContent())?.trim();
  if (second !== 'ok') throw new Error(`second connection test says ${second}`);

  log('step 4: a shopper signs in from the storefront');
  const storefrontOrigin = await startCompanySignIn(page, log, storefrontUrl);

  log('step 5: with two connections the gateway asks for the email and routes by its domain');
  const chooser = page.locator('#email');
  await chooser.waitFor({ state: 'visible' });
  await chooser.fill(expectEmail);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  log(`        at the IdP ${safeUrl(page.url())}`);
  await opLogin(page, login);

  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  await consentIfAsked(page, onAccount);
  await expectCustomerEmail(page, expectEmail);
  log('step 6: back in the console, "Try sign-in" shows the claims and the linked customer');
  await page.goto(new URL('/admin/checks/connections/acme', gatewayUrl).toString(), { waitUntil: 'domcontentloaded' });
  await page.getByRole('button', { name: 'Try sign-in' }).click();
  // The IdP may ask again (login and/or consent) or, with its session, answer at once.
  const consent = page.locator('form:has(input[name="prompt"][value="consent"]) [type="submit"]');
  const onReport = (u) => u.pathname.startsWith('/admin/trials/');
  for (let i = 0; i < 3 && !onReport(new URL(page.url())); i++) {
    const step = await Promise.race([
      page.waitForURL(onReport, { waitUntil: 'domcontentloaded' }).then(() => 'report'),
      page.locator('input[name="login"]').waitFor({ state: 'visible' }).then(() => 'login'),
      consent.waitFor({ state: 'visible' }).then(() => 'consent'),
    ]);
    if (step === 'login') {
      await opLogin(page, login);
    } else if (step === 'consent') {
      await consent.click();
    }
  }
  await page.waitForURL(onReport, { waitUntil: 'domcontentloaded' });
  const decision = (await page.locator('#decision').textContent())?.trim();
  if (decision !== 'allowed') throw new Error(`trial decision: ${decision}`);
  const claims = (await page.locator('#claims').textContent()) ?? '';
  if (!claims.includes(expectEmail) || !claims.includes('buyers')) throw new Error(`trial claims: ${claims}`);
  const customer = (await page.locator('#customer').textContent()) ?? '';
  if (!customer.includes('linked')) throw new Error(`trial customer: ${customer}`);
  log('PASS: connection added in the console; shopper signed in through it; trial shows the link');
});
