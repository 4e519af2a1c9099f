// panva's oidc-provider as the peer of benches/oidc_load.rs: one Node process on plain
// HTTP (TLS at a proxy), issuing RS256 JWT access tokens to one client_credentials
// client, with a fresh RSA-2048 key as Gatehouse's. Reads the client's secret from
// argv[2], listens on a random loopback port and prints its issuer and pid as one JSON
// line. Discovery and JWKS are the provider's own.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

// stdout carries only the one line with the issuer: the provider's notices go to stderr.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const secret = process.argv[2];
const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const jwk = { ...key.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'bench' };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'bench-service',
        client_secret: secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'profile',
      },
    ],
    jwks: { keys: [jwk] },
    scopes: ['openid', 'profile'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://api.example.org',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'profile',
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    cookies: { keys: ['gatehouse-bench-cookie-key-0123456789'] },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, pid: process.pid })}\n`);
});
