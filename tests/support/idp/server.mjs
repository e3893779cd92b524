// A real OpenID provider for tower-mandate's tests: panva's oidc-provider on
// 127.0.0.1, with the client_credentials grant issuing JWT access tokens
// (RFC 9068) for the resource `urn:image-store` (audience `image-store`).
//
// Prints one JSON line {"issuer": ...} when ready. POST /__rotate puts a new
// signing key first and keeps the old one published.
//
// Usage: node server.mjs   (PORT=0 picks a free port)
import http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
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
    client_id: 'archiver',
    client_secret: 'archiver-secret-0123456789abcdef0123456789ab',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'images:read images:read:any',
  },
];

function makeProvider() {
  const p = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys },
    scopes: ['images:read', 'images:write', 'images:delete', 'images:read:any'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
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
  return p;
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__rotate') {
    newKey().then((key) => {
      keys = [key, ...keys];
      provider = makeProvider();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    });
    return;
  }
  provider.callback()(req, res);
});

keys = [await newKey()];
server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = makeProvider();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The test harness closes stdin (or dies): stop with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
