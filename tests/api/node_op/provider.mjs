// panva's oidc-provider (an OpenID Certified provider) as an organisation's identity
// provider for tests/api/upstream_node_op.rs. Reads its client from argv[2] (JSON),
// listens on a random loopback port and prints its issuer as one JSON line.
// The development sign-in pages accept any login; the login becomes the subject.
import http from 'node:http';
import Provider from 'oidc-provider';

// stdout carries only the one line with the issuer: the provider's notices go to stderr.
console.log = console.error;
console.info = console.error;

const setup = JSON.parse(process.argv[2]);
const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [setup.client],
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: `${id}@node-op.example`,
            email_verified: true,
            preferred_username: id,
            name: `${id} from oidc-provider`,
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    cookies: { keys: ['gatehouse-test-cookie-key-0123456789'] },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
