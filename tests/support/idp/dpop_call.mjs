// A DPoP (RFC 9449) client for tower-mandate's tests, on `jose` and Node's
// built-ins only: it makes a fresh ES256 key pair, gets a DPoP-bound access
// token for the client `dpop-client` from ISSUER's token endpoint (found at
// ISSUER/.well-known/openid-configuration; client_credentials,
// resource=urn:image-store, scope images:read), then signs one DPoP proof per
// URL for METHOD and that URL, each with a fresh `jti` and `ath` (the
// base64url SHA-256 of the access token). If the token endpoint answers 400
// {"error":"use_dpop_nonce"}, it retries once with the DPoP-Nonce header's
// value as the proof's `nonce`. The proofs for URLs carry no nonce; `htu` is
// the URL without its query and fragment.
//
// Prints one JSON line {"access_token": ..., "token_type": ..., "jkt": ...,
// "proofs": [...one per URL, in order...], "nonce_retried": bool}, where jkt
// is the public key's RFC 7638 thumbprint. On failure it prints the reason
// to stderr and exits 1.
//
// Usage: node dpop_call.mjs ISSUER METHOD URL [URL...]
import crypto from 'node:crypto';

import * as jose from 'jose';

const CLIENT_ID = 'dpop-client';
const CLIENT_SECRET = 'dpop-client-secret-0123456789abcdef0123456789';

function htu(url) {
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.href;
}

async function proof(privateKey, publicJwk, claims) {
  return new jose.SignJWT({ jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk })
    .setIssuedAt()
    .sign(privateKey);
}

async function main(argv) {
  const [issuer, method, ...urls] = argv;
  if (!issuer || !method || urls.length === 0) {
    throw new Error('usage: node dpop_call.mjs ISSUER METHOD URL [URL...]');
  }
  const discoveryUrl = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const discovery = await fetch(discoveryUrl);
  if (!discovery.ok) throw new Error(`discovery ${discoveryUrl}: HTTP ${discovery.status}`);
  const { token_endpoint: tokenEndpoint } = await discovery.json();
  if (!tokenEndpoint) throw new Error(`discovery ${discoveryUrl}: no token_endpoint`);

  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const publicJwk = await jose.exportJWK(publicKey);
  const jkt = await jose.calculateJwkThumbprint(publicJwk);

  const basic = Buffer.from(
    `${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`,
  ).toString('base64');
  const requestToken = async (nonce) => fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      dpop: await proof(privateKey, publicJwk, {
        htm: 'POST',
        htu: htu(tokenEndpoint),
        ...(nonce === undefined ? {} : { nonce }),
      }),
    },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      resource: 'urn:image-store',
      scope: 'images:read',
    }),
  });

  let nonceRetried = false;
  let response = await requestToken();
  let body = await response.json().catch(() => ({}));
  if (response.status === 400 && body.error === 'use_dpop_nonce') {
    const nonce = response.headers.get('dpop-nonce');
    if (!nonce) throw new Error('use_dpop_nonce without a DPoP-Nonce header');
    nonceRetried = true;
    response = await requestToken(nonce);
    body = await response.json().catch(() => ({}));
  }
  if (!response.ok || !body.access_token) {
    throw new Error(`token endpoint: HTTP ${response.status} ${JSON.stringify(body)}`);
  }

  const accessToken = body.access_token;
  const ath = crypto.createHash('sha256').update(accessToken).digest('base64url');
  const proofs = [];
  for (const url of urls) {
    proofs.push(await proof(privateKey, publicJwk, { htm: method, htu: htu(url), ath }));
  }

  process.stdout.write(`${JSON.stringify({
    access_token: accessToken,
    token_type: body.token_type,
    jkt,
    proofs,
    nonce_retried: nonceRetried,
  })}\n`);
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`dpop_call: ${err.message}\n`);
  process.exit(1);
});
