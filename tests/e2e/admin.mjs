// Drives Debian's chromium through the admin console as an IT admin would: sign in with the
// admin token, copy the redirect URI, find a shopper's identity link by email, remove it, and
// find that change in the audit log.
//
// Env: GATEWAY_URL, ADMIN_TOKEN, LINK_EMAIL (an email with a link), ARTIFACTS_DIR,
// CHROMIUM_PATH, E2E_TIMEOUT_MS. Exit 0 on success; screenshot and exit 1 on failure.

import { clickTo, required, runInBrowser, safeUrl } from './harness.mjs';

const gatewayUrl = required('GATEWAY_URL');
const adminToken = required('ADMIN_TOKEN');
const linkEmail = required('LINK_EMAIL');

await runInBrowser('admin', async (page, log) => {
  const admin = new URL('/admin', gatewayUrl).toString();
  log(`step 1: open ${safeUrl(admin)}: expect the sign-in form`);
  await page.goto(admin, { waitUntil: 'domcontentloaded' });
  if (!page.url().endsWith('/admin/login')) throw new Error(`not sent to sign-in: ${safeUrl(page.url())}`);

  log('step 2: sign in with the admin token');
  await page.locator('input[name="token"]').fill(adminToken);
  await clickTo(page, (u) => u.pathname === '/admin', page.getByRole('button', { name: 'Sign in' }));
  const redirectUri = await page.locator('#redirect-uri').inputValue();
  if (!redirectUri.endsWith('/oidc/callback/CONNECTION-ID')) throw new Error(`redirect URI shown: ${redirectUri}`);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByRole('button', { name: 'Copied' }).waitFor();
  log('        overview shows the redirect URI; copy button works');

  log(`step 3: identity links: search ${JSON.stringify(linkEmail)}`);
  await page.getByRole('link', { name: 'Identity links' }).click();
  await page.locator('input[name="email"]').fill(linkEmail);
  await clickTo(page, (u) => u.pathname === '/admin/links' && u.search.includes('email='), page.getByRole('button', { name: 'Search' }));
  const row = page.locator('tr', { hasText: linkEmail });
  await row.waitFor();

  log('step 4: remove the link');
  await clickTo(page, (u) => u.search.includes('removed=1'), row.getByRole('button', { name: 'Remove link' }));
  await page.getByText('Link removed.').waitFor();
  if (await page.locator('tr', { hasText: linkEmail }).count() !== 0) throw new Error('link still listed');

  log('step 5: audit log, filtered to link removals');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.locator('select[name="kind"]').selectOption('link_removed');
  await clickTo(page, (u) => u.search.includes('kind=link_removed'), page.getByRole('button', { name: 'Filter' }));
  await page.locator('tr', { hasText: 'bootstrap-token' }).filter({ hasText: linkEmail }).waitFor();

  log('step 6: sign out');
  await clickTo(page, (u) => u.pathname === '/admin/login', page.getByRole('button', { name: 'Sign out' }));
  log('PASS: admin console signs in, removes a link, shows it in the audit log, signs out');
});
