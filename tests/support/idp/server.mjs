// A real OpenID provider for tower-mandate's tests: panva's oidc-provider on
// 127.0.0.1, with the client_credentials grant issuing JWT access tokens
// (RFC 9068) for the resource `urn:image-store` (audience `image-store`).
//
// Prints one JSON line {"issuer": ...} when ready. POST /__rotate puts a new
// signing key first and keeps the old one published.
//
// oidc-provider has no token exchange (RFC 8693) built in; this adds the
// grant: the subject token must be an access token of this provider; the
// result records the actor (the actor token's `sub`, else the client) in a
// nested `act` claim. GET /__user_token?sub=alice&aud=...&scope=... stands in
// for a user's login: it returns an access token for that user (with
// &acr=...&auth_age=<seconds> it carries `acr` and an `auth_time` that long ago).
//
// DPoP (RFC 9449) is on: a client_credentials request with a `DPoP` proof
// header gets token_type "DPoP" and a JWT whose `cnf.jkt` is the proof key's
// RFC 7638 thumbprint. The client `dpop-client` has dpop_bound_access_tokens,
// so it gets no token without a proof. With IDP_DPOP_NONCE=1 the provider
// requires server nonces: a proof without one is answered 400
// {"error":"use_dpop_nonce"} with the nonce in the DPoP-Nonce header.
// Without it, no nonces are issued or accepted.
//
// Jobs (tower-mandate's Delegation): the client `tagger` may ask the token
// exchange for a refresh token (requested_token_type
// urn:ietf:params:oauth:token-type:refresh_token): the answer is one of
// oidc-provider's own refresh tokens, on a grant for the user, which the
// provider's refresh_token grant then redeems; access tokens of that grant
// carry act = {sub: <client>}. The JWT-bearer grant (RFC 7523) takes an
// assertion signed by a key of IDP_ASSERTION_JWKS (a JWKS document) with
// iss = the client, sub = the user, aud = the issuer or its token endpoint,
// at most 5 minutes long, each jti once; the token names the client as
// actor. /__user_token takes &ttl=<seconds> (default 600). GET /__stats
// counts token endpoint requests by grant_type.
//
// Usage: node server.mjs   (PORT=0 picks a free port; IDP_DPOP_NONCE=1 for
// DPoP nonces; IDP_DEBUG=1 logs server errors)
import crypto from 'node:crypto';
import http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const dpopNonces = process.env.IDP_DPOP_NONCE === '1';
// One secret for the process, so nonces survive /__rotate's new provider.
const dpopNonceSecret = crypto.randomBytes(32);
let counter = 0;
let keys = [];
let provider;
let issuer;

async function newKey() {
  counter += 1;
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `idp-key-${counter}`, alg: 'RS256', use: 'sig' };
}

export const CLIENTS = [
  {
    client_id: 'relay',
    client_secret: 'relay-secret-0123456789abcdef0123456789abcdef',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'images:read images:write',
  },
  {
    client_id: 'relay-exchange',
    client_secret: 'relay-exchange-secret-0123456789abcdef01234567',
    grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'images:read images:write',
  },
  {
    client_id: 'archiver',
    client_secret: 'archiver-secret-0123456789abcdef0123456789ab',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'images:read images:read:any',
  },
  {
    // A job runner: exchanges users' tokens for refresh tokens, or asserts
    // users with its own key (RFC 7523).
    client_id: 'tagger',
    client_secret: 'tagger-secret-0123456789abcdef0123456789abcdef',
    grant_types: [
      'client_credentials', 'refresh_token',
      'urn:ietf:params:oauth:grant-type:token-exchange',
      'urn:ietf:params:oauth:grant-type:jwt-bearer',
    ],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'images:read images:write',
  },
  {
    // Issues access tokens shaped as Keycloak's (see extraTokenClaims).
    client_id: 'kc-shaped',
    client_secret: 'kc-shaped-secret-0123456789abcdef0123456789ab',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'images:read images:write',
  },
  {
    // Gets DPoP-bound access tokens only: a token request without a proof fails.
    client_id: 'dpop-client',
    client_secret: 'dpop-client-secret-0123456789abcdef0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'images:read images:write',
    dpop_bound_access_tokens: true,
  },
];

// Keycloak's access-token claims, as its documentation shows them: `typ`
// "Bearer" in the payload, `azp`, realm and client roles.
function keycloakClaims(clientId) {
  return {
    typ: 'Bearer',
    azp: clientId,
    realm_access: { roles: ['offline_access', 'image-admin'] },
    resource_access: { 'image-store': { roles: ['uploader'] }, account: { roles: ['manage-account'] } },
  };
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const REFRESH_TOKEN = 'urn:ietf:params:oauth:token-type:refresh_token';
// The grant type recorded on job grants: their access tokens name the actor.
const JOB_GTY = 'token_exchange';
const assertionKeys = process.env.IDP_ASSERTION_JWKS
  ? jose.createLocalJWKSet(JSON.parse(process.env.IDP_ASSERTION_JWKS))
  : null;
const seenAssertions = new Set();
// IDP_JOB_REFRESH_TTL=<seconds>: the lifetime of jobs' refresh tokens
// (default 14 days); IDP_ROTATE_REFRESH=1: every refresh rotates the
// refresh token (and a reused one revokes its grant, as oidc-provider does).
const jobRefreshTtl = Number(process.env.IDP_JOB_REFRESH_TTL || 14 * 24 * 3600);
const rotateRefresh = process.env.IDP_ROTATE_REFRESH === '1';
const stats = {};

function publicKeys() {
  return keys.map(({ kty, n, e, kid, alg, use }) => ({ kty, n, e, kid, alg, use }));
}

async function signAccessToken(claims, ttl = 600) {
  const [key] = keys;
  const privateKey = await jose.importJWK(key, 'RS256');
  return new jose.SignJWT({ jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: key.kid })
    .setIssuer(issuer)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(privateKey);
}

async function verifyAccessToken(token) {
  const jwks = jose.createLocalJWKSet({ keys: publicKeys() });
  const { payload } = await jose.jwtVerify(token, jwks, { issuer, typ: 'at+jwt' });
  return payload;
}

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  const fail = (error) => {
    ctx.status = 400;
    ctx.body = { error };
  };
  if (params.subject_token_type !== ACCESS_TOKEN) return fail('invalid_request');
  let subject;
  try {
    subject = await verifyAccessToken(params.subject_token);
  } catch {
    return fail('invalid_grant');
  }
  if (params.requested_token_type === REFRESH_TOKEN) return jobRefreshToken(ctx, subject);
  let actor = client.clientId;
  if (params.actor_token) {
    try {
      actor = (await verifyAccessToken(params.actor_token)).sub;
    } catch {
      return fail('invalid_grant');
    }
  }
  const act = subject.act ? { sub: actor, act: subject.act } : { sub: actor };
  const token = await signAccessToken({
    sub: subject.sub,
    aud: params.audience || 'image-store',
    scope: params.scope || subject.scope,
    client_id: client.clientId,
    act,
  });
  ctx.body = {
    access_token: token,
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: 600,
  };
}

// A refresh token for a job: a grant for the user, narrowed to the scopes
// asked (within the subject token's and the client's), redeemed later by
// oidc-provider's own refresh_token grant.
async function jobRefreshToken(ctx, subject) {
  const { params, client } = ctx.oidc;
  const fail = (error) => {
    ctx.status = 400;
    ctx.body = { error };
  };
  if (!client.grantTypeAllowed('refresh_token')) return fail('unauthorized_client');
  const held = new Set(String(subject.scope || '').split(' ').filter(Boolean));
  const asked = String(params.scope || subject.scope || '').split(' ').filter(Boolean);
  if (asked.length === 0 || asked.some((s) => !held.has(s))) return fail('invalid_scope');
  // The job names its audience: nothing is assumed.
  const { resource } = params;
  if (!resource) return fail('invalid_target');
  const { Grant, RefreshToken } = ctx.oidc.provider;
  const grant = new Grant({ accountId: subject.sub, clientId: client.clientId });
  grant.addResourceScope(resource, asked.join(' '));
  const grantId = await grant.save();
  const refresh = new RefreshToken({
    accountId: subject.sub,
    client,
    grantId,
    gty: JOB_GTY,
    scope: asked.join(' '),
    resource,
    expiresWithSession: false,
  });
  const value = await refresh.save();
  ctx.body = {
    access_token: value,
    issued_token_type: REFRESH_TOKEN,
    token_type: 'N_A',
    expires_in: refresh.expiration,
  };
}

// RFC 7523 §2.1: the client asserts a user with its own key.
async function jwtBearer(ctx) {
  const { params, client } = ctx.oidc;
  const fail = (error) => {
    ctx.status = 400;
    ctx.body = { error };
  };
  if (!assertionKeys) return fail('unauthorized_client');
  let claims;
  try {
    ({ payload: claims } = await jose.jwtVerify(params.assertion, assertionKeys, {
      issuer: client.clientId,
      audience: [issuer, `${issuer}/token`],
      requiredClaims: ['sub', 'exp', 'jti'],
      maxTokenAge: '5m',
    }));
  } catch {
    return fail('invalid_grant');
  }
  if (claims.exp - Math.floor(Date.now() / 1000) > 300) return fail('invalid_grant');
  if (seenAssertions.has(claims.jti)) return fail('invalid_grant');
  seenAssertions.add(claims.jti);
  const allowed = new Set(client.scope.split(' '));
  const asked = String(params.scope || '').split(' ').filter(Boolean);
  if (asked.some((s) => !allowed.has(s))) return fail('invalid_scope');
  const aud = params.audience || (params.resource === 'urn:image-store' ? 'image-store' : params.resource);
  if (!aud) return fail('invalid_target');
  const token = await signAccessToken({
    sub: claims.sub,
    aud,
    scope: asked.join(' '),
    client_id: client.clientId,
    act: { sub: client.clientId },
  });
  ctx.body = { access_token: token, token_type: 'Bearer', expires_in: 600 };
}

function makeProvider() {
  const p = new Provider(issuer, {
    clients: CLIENTS,
    extraTokenClaims: async (_ctx, token) => {
      if (token.clientId === 'kc-shaped') return keycloakClaims(token.clientId);
      // Access tokens of a job's grant: the client acts for the user.
      if (String(token.gty || '').split(' ').includes(JOB_GTY)) return { act: { sub: token.clientId } };
      return undefined;
    },
    // Set, so that oidc-provider prints no advice about them on first use.
    ttl: {
      AccessToken: 600,
      ClientCredentials: 600,
      Grant: 14 * 24 * 3600,
      RefreshToken: (_ctx, token) => (String(token.gty || '').split(' ').includes(JOB_GTY) ? jobRefreshTtl : 14 * 24 * 3600),
    },
    ...(rotateRefresh ? { rotateRefreshToken: () => true } : {}),
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    jwks: { keys },
    // offline_access turns on the refresh_token grant (for jobs' refresh tokens).
    scopes: ['images:read', 'images:write', 'images:delete', 'images:read:any', 'offline_access'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: {
        enabled: true,
        ...(dpopNonces ? { nonceSecret: dpopNonceSecret, requireNonce: () => true } : {}),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:image-store',
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: 'images:read images:write images:delete images:read:any',
          audience: resource === 'urn:image-store' ? 'image-store' : resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  if (process.env.IDP_DEBUG) p.on('server_error', (_ctx, err) => console.error(err));
  p.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'audience', 'resource', 'scope', 'requested_token_type',
  ]);
  // Count token endpoint requests by grant type, once the provider read them.
  p.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token') {
      const grant = ctx.oidc?.params?.grant_type || '';
      stats[grant] = (stats[grant] || 0) + 1;
    }
  });
  p.registerGrantType(JWT_BEARER, jwtBearer, ['assertion', 'audience', 'resource', 'scope']);
  return p;
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/__stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === 'POST' && req.url === '/__rotate') {
    newKey().then((key) => {
      keys = [key, ...keys];
      provider = makeProvider();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    });
    return;
  }
  if (req.method === 'GET' && req.url.startsWith('/__user_token')) {
    const q = new URL(req.url, issuer).searchParams;
    signAccessToken({
      sub: q.get('sub'),
      aud: q.get('aud') || 'image-store',
      scope: q.get('scope') || 'images:read',
      client_id: 'web',
      // How the user logged in (RFC 9470 step-up tests): &acr=…&auth_age=<seconds ago>.
      ...(q.get('acr') ? { acr: q.get('acr') } : {}),
      ...(q.get('auth_age') ? { auth_time: Math.floor(Date.now() / 1000) - Number(q.get('auth_age')) } : {}),
    }, Number(q.get('ttl') || 600)).then((token) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: token }));
    });
    return;
  }
  provider.callback()(req, res);
});

// The test harness reads the ready line only: anything printed later must
// not crash the provider when the pipe is gone.
process.stdout.on('error', () => {});

keys = [await newKey()];
server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = makeProvider();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The test harness closes stdin (or dies): stop with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
