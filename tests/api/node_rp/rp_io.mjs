// What the relying-party scripts share: one JSON line per message on stdout and stdin
// (the Rust test, tests/api/node_rp.rs, is the user and the browser), keys made with
// WebCrypto, a loopback listener for native apps, and refusals reduced to what the
// server said.
//
// Nothing secret is ever printed: no token, code, key or assertion; the test reads
// claims, userinfo and outcomes only.

import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells the test something (one JSON line on stdout). */
export function say(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Waits for the test's next line on stdin. */
export async function hear() {
  const { value, done } = await input.next();
  if (done) throw new Error('stdin closed before the test answered');
  return JSON.parse(value);
}

/**
 * An ES256 key pair for private_key_jwt (and request objects), and the public JWKS the
 * client registers. FAPI 2.0 §5.4 allows PS256, ES256 and EdDSA only; ES256 is the one
 * every library here makes.
 */
export async function clientKey(kid) {
  const { privateKey, publicKey } = await crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['sign', 'verify'],
  );
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', publicKey);
  return {
    signing: { key: privateKey, kid },
    jwks: { keys: [{ kty, crv, x, y, kid, alg: 'ES256', use: 'sig' }] },
  };
}

/**
 * What a library's error says the server answered: the OAuth error and its description
 * (a ResponseBodyError), or a WWW-Authenticate challenge (a resource server's refusal),
 * and the HTTP status. Anything else (a check inside the library) is the library's own
 * code and message.
 */
export function refusal(e) {
  if (e?.error) {
    return { status: e.status, error: e.error, error_description: e.error_description ?? null };
  }
  const challenge = e?.cause?.[0];
  if (challenge?.parameters) {
    return {
      status: e.response?.status ?? null,
      scheme: challenge.scheme,
      error: challenge.parameters.error ?? null,
      error_description: challenge.parameters.error_description ?? null,
    };
  }
  // fetch's own failures (TLS, connection) hide the reason in `cause`.
  const why = e?.cause instanceof Error ? `: ${e.cause.code ?? ''} ${e.cause.message}` : '';
  return { library: e?.code ?? e?.name ?? 'Error', message: `${e?.message ?? e}${why}` };
}

/** Runs `attempt`, which must fail; returns what the refusal said. */
export async function refused(attempt) {
  try {
    await attempt();
  } catch (e) {
    return refusal(e);
  }
  return { accepted: true };
}

/**
 * A native app's loopback listener (RFC 8252 §7.3) on a port the OS picks. `url` is the
 * redirect URI to send; `redirect` resolves with the first request's full URL.
 */
export async function loopback(path) {
  let arrived;
  const redirect = new Promise((resolve) => {
    arrived = resolve;
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${server.address().port}`);
    if (url.pathname !== path) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Signed in: you may close this window.');
    server.close();
    arrived(url);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const timer = setTimeout(() => {
    server.close();
    arrived(null);
  }, 60_000);
  timer.unref();
  return { url: `http://127.0.0.1:${server.address().port}${path}`, redirect };
}

/** Runs a script's flow; any failure goes to stderr (the test shows it) and exits 1. */
export function run(flows) {
  const [mode, ...args] = process.argv.slice(2);
  const flow = flows[mode];
  if (!flow) {
    process.stderr.write(`unknown mode ${mode}; one of ${Object.keys(flows).join(', ')}\n`);
    process.exit(2);
  }
  flow(...args).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${e?.stack ?? e}\n${e?.cause ? JSON.stringify(refusal(e)) : ''}\n`);
      process.exit(1);
    },
  );
}
