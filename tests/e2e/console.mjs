// An IT admin, in Debian's chromium, connects a new identity provider (oidc-provider)
// through the admin console alone (mapping its "buyers" group to customer group 2), tests
// it, and then a shopper signs in with it from the
// storefront: storefront -> "Sign in with company account" -> the gateway's chooser (email)
// -> oidc-provider login (+ consent) -> storefront account page.
//
// Env: GATEWAY_URL, ADMIN_TOKEN, STOREFRONT_URL, ISSUER, CLIENT_ID, CLIENT_SECRET,
// EMAIL_DOMAIN, OP_LOGIN (login at oidc-provider), EXPECT_EMAIL, ARTIFACTS_DIR,
// CHROMIUM_PATH, E2E_TIMEOUT_MS.

import { required, runInBrowser, safeUrl } from './harness.mjs';

const gatewayUrl = required('GATEWAY_URL');
const adminToken = required('ADMIN_TOKEN');
const storefrontUrl = required('STOREFRONT_URL');
const issuer = required('ISSUER');
const clientId = required('CLIENT_ID');
const clientSecret = required('CLIENT_SECRET');
const emailDomain = required('EMAIL_DOMAIN');
const opLogin = required('OP_LOGIN');
const expectEmail = required('EXPECT_EMAIL');

await runInBrowser('console', async (page, log) => {
  log('step 1: admin signs in');
  await page.goto(new URL('/admin/login', gatewayUrl).toString(), { waitUntil: 'domcontentloaded' });
  await page.locator('input[name="token"]').fill(adminToken);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/admin', { waitUntil: 'domcontentloaded' }),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);

  log('step 2: add a connection');
  await page.getByRole('link', { name: 'Add a connection' }).click();
  await page.locator('#id').fill('acme');
  await page.locator('#display_name').fill('Acme Corp');
  await page.locator('#issuer').fill(issuer);
  await page.locator('#client_id').fill(clientId);
  await page.locator('#client_secret').fill(clientSecret);
  await page.locator('#allowed_email_domains').fill(emailDomain);
  // B2B: buyers of this company get the wholesale customer group (and its price list).
  await page.locator('#scopes').fill('openid email profile groups');
  await page.locator('#group_rules').fill('buyers = 2');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/admin/checks/connections/acme', { waitUntil: 'domcontentloaded' }),
    page.getByRole('button', { name: 'Add connection' }).click(),
  ]);

  log('step 3: the connection test passes');
  const overall = (await page.locator('#overall').textContent())?.trim();
  if (overall !== 'ok') {
    const rows = await page.locator('tr.status-failed, tr.status-warning').allTextContents();
    throw new Error(`connection test says ${overall}: ${rows.join(' | ')}`);
  }

  log(`step 4: a shopper signs in from the storefront ${safeUrl(storefrontUrl)}`);
  await page.goto(storefrontUrl, { waitUntil: 'domcontentloaded' });
  await page.getByRole('link', { name: 'Sign in', exact: true }).first().click();
  const sso = page.locator('a.bc-sso-button');
  await sso.waitFor({ state: 'visible' });
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/login', { waitUntil: 'domcontentloaded' }),
    sso.click(),
  ]);

  log('step 5: the chooser routes by email domain');
  await page.locator('#email').fill(expectEmail);
  await page.getByRole('button', { name: 'Continue' }).click();
  const login = page.locator('input[name="login"]');
  await login.waitFor({ state: 'visible' });
  log(`        at the IdP ${safeUrl(page.url())}`);
  await login.fill(opLogin);
  await page.locator('input[name="password"]').fill('any-password');
  await page.locator('form:has(input[name="login"]) [type="submit"]').click();

  const storefrontOrigin = new URL(storefrontUrl).origin;
  const onAccount = (u) => u.origin === storefrontOrigin && u.pathname.endsWith('/account.php');
  const consent = page.locator('form:has(input[name="prompt"][value="consent"]) [type="submit"]');
  const next = await Promise.race([
    page.waitForURL(onAccount, { waitUntil: 'domcontentloaded' }).then(() => 'account'),
    consent.waitFor({ state: 'visible' }).then(() => 'consent'),
  ]);
  if (next === 'consent') {
    await Promise.all([page.waitForURL(onAccount, { waitUntil: 'domcontentloaded' }), consent.click()]);
  }
  const text = (await page.locator('#customer-email').textContent()) ?? '';
  if (!text.includes(expectEmail)) throw new Error(`signed in as ${JSON.stringify(text.trim())}`);
  log('step 6: back in the console, "Try sign-in" shows the claims and the linked customer');
  await page.goto(new URL('/admin/checks/connections/acme', gatewayUrl).toString(), { waitUntil: 'domcontentloaded' });
  await page.getByRole('button', { name: 'Try sign-in' }).click();
  // The IdP may ask again (login and/or consent) or, with its session, answer at once.
  const onReport = (u) => u.pathname.startsWith('/admin/trials/');
  for (let i = 0; i < 3 && !onReport(new URL(page.url())); i++) {
    const step = await Promise.race([
      page.waitForURL(onReport, { waitUntil: 'domcontentloaded' }).then(() => 'report'),
      page.locator('input[name="login"]').waitFor({ state: 'visible' }).then(() => 'login'),
      consent.waitFor({ state: 'visible' }).then(() => 'consent'),
    ]);
    if (step === 'login') {
      await page.locator('input[name="login"]').fill(opLogin);
      await page.locator('input[name="password"]').fill('any-password');
      await page.locator('form:has(input[name="login"]) [type="submit"]').click();
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
