// A real OpenID Provider for the end-to-end tests: the certified `oidc-provider` package,
// listening on 127.0.0.1 on an ephemeral port.
//
// Input:  env OP_CONFIG (JSON)
//   { "client_id": "...", "client_secret": "...", "redirect_uris": ["http://127.0.0.1:PORT/callback"],
//     "accounts": [{ "sub", "email", "email_verified", "given_name", "family_name", "name", "groups": [] }],
//     "conform_id_token_claims": false   // optional; see below }
// Output: exactly one line `READY <issuer>` on stdout once listening; request log on stderr.
// Exit:   when stdin closes, or on SIGTERM / SIGINT.
//
// Loopback dev notes:
// - The issuer is plain http://127.0.0.1:<port>. oidc-provider accepts that; it only marks its
//   cookies `Secure` when the request itself is secure, so no `proxy` setting is needed here.
// - devInteractions (the built-in login and consent pages) accept any login name. The login
//   name may be an account's `sub` or its `email`; it is mapped to the account's `sub` before
//   oidc-provider sees it (see canonicalLogin below), because oidc-provider uses the login name
//   as the session's accountId and insists that grants and accounts agree on it.
// - conformIdTokenClaims is off by default, so the ID token carries the email/profile/groups
//   claims the scopes ask for (as most company IdPs do); set "conform_id_token_claims": true
//   to get the strict behaviour (those claims only at the userinfo endpoint).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parse as parseQuery, stringify as stringifyQuery } from 'node:querystring';

// stdout carries exactly one line (READY); send every library notice to stderr.
console.log = console.error;
console.info = console.error;

const { default: Provider } = await import('oidc-provider');

function fail(message) {
  process.stderr.write(`op.mjs: ${message}\n`);
  process.exit(2);
}

let config;
try {
  config = JSON.parse(process.env.OP_CONFIG ?? '');
} catch (err) {
  fail(`OP_CONFIG must be JSON: ${err.message}`);
}
for (const key of ['client_id', 'client_secret']) {
  if (typeof config[key] !== 'string' || config[key] === '') fail(`OP_CONFIG.${key} is required`);
}
if (!Array.isArray(config.redirect_uris) || config.redirect_uris.length === 0) {
  fail('OP_CONFIG.redirect_uris must be a non-empty array');
}
const accounts = Array.isArray(config.accounts) ? config.accounts : [];
for (const a of accounts) {
  if (typeof a.sub !== 'string' || a.sub === '') fail('every account needs a non-empty "sub"');
}

function lookup(loginOrSub) {
  if (typeof loginOrSub !== 'string') return undefined;
  return accounts.find((a) => a.sub === loginOrSub)
    ?? accounts.find((a) => typeof a.email === 'string'
      && a.email.toLowerCase() === loginOrSub.toLowerCase());
}

function canonicalLogin(login) {
  return lookup(login)?.sub ?? login;
}

async function findAccount(_ctx, id) {
  const account = lookup(id);
  if (!account) return undefined;
  return {
    accountId: account.sub,
    async claims() {
      const claims = { sub: account.sub };
      for (const key of ['email', 'email_verified', 'name', 'given_name', 'family_name', 'groups']) {
        if (account[key] !== undefined) claims[key] = account[key];
      }
      return claims;
    },
  };
}

// A fresh signing key per run: no development keystore, nothing on disk.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

let provider;

// Pre-parse the dev login form so the login name can be mapped to the account's sub.
// oidc-provider accepts an already-parsed body (req.body) from upstream middleware.
async function rewriteDevLogin(req) {
  const isForm = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
  const path = (req.url ?? '').split('?')[0];
  if (req.method !== 'POST' || !isForm || !/^\/interaction\/[^/]+$/.test(path)) return;
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  const body = parseQuery(Buffer.concat(chunks).toString('utf8'));
  if (body.prompt === 'login' && typeof body.login === 'string') {
    body.login = canonicalLogin(body.login);
  }
  req.body = stringifyQuery(body);
}

const server = createServer(async (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    // Never log query strings: they carry codes, states and tokens.
    const path = (req.url ?? '').split('?')[0];
    process.stderr.write(`op: ${req.method} ${path} -> ${res.statusCode} (${Date.now() - started} ms)\n`);
  });
  try {
    await rewriteDevLogin(req);
  } catch (err) {
    res.statusCode = 400;
    res.end(`bad request: ${err.message}`);
    return;
  }
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  provider = new Provider(issuer, {
    clients: [{
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: config.redirect_uris,
      post_logout_redirect_uris: config.post_logout_redirect_uris ?? [],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    // oidc-provider 9 supports S256 only; require PKCE for every client.
    pkce: { required: () => true },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    conformIdTokenClaims: config.conform_id_token_claims === true,
    features: {
      devInteractions: { enabled: true },
    },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
    },
    jwks: { keys: [signingJwk] },
    // Explicit lifetimes (seconds) keep oidc-provider's "default ttl" notices out of the logs.
    ttl: {
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      AccessToken: 3600,
      IdToken: 3600,
    },
  });

  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`op: server_error: ${err?.stack ?? err}\n`);
  });

  // Print READY only once the Provider exists, so the first request is served.
  process.stdout.write(`READY ${issuer}\n`);
});

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`op: stopping (${reason})\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.stdin.on('end', () => shutdown('stdin closed'));
process.stdin.on('close', () => shutdown('stdin closed'));
process.stdin.on('error', () => shutdown('stdin error'));
process.stdin.resume();
