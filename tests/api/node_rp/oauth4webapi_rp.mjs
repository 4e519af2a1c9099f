// oauth4webapi (OpenID-certified, FAPI 2.0 included): the low-level API a native app or
// a FAPI client calls step by step, against a running Gatehouse.
//
//   node oauth4webapi_rp.mjs native ISSUER CLIENT_ID
//     A native app (public client, PKCE, token_endpoint_auth_method none; RFC 8252):
//     listens on a loopback port the OS picks, says {"authorize": URL} with
//     redirect_uri http://127.0.0.1:PORT/callback, and receives the browser's redirect
//     on that port itself; then code exchange, ID token, userinfo, refresh.
//   node oauth4webapi_rp.mjs fapi2 ISSUER REDIRECT_URI
//     private_key_jwt, a request object (JAR) pushed to /par with a DPoP proof, DPoP at
//     /token, userinfo as a DPoP-protected resource, refresh with DPoP; every DPoP
//     request retried once when the server asks for a nonce (use_dpop_nonce).
//     Talks like openid_client_rp.mjs: {"jwks"} / {"client_id"} / {"authorize"} /
//     {"callback"} / the result.

import * as oauth from 'oauth4webapi';

import { clientKey, hear, loopback, refused, run, say } from './rp_io.mjs';

const SCOPE = 'openid profile email offline_access';

async function discover(issuer) {
  const url = new URL(issuer);
  return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url));
}

/** A fresh authorization request: PKCE, nonce and state. */
async function request(redirect_uri) {
  const code_verifier = oauth.generateRandomCodeVerifier();
  const nonce = oauth.generateRandomNonce();
  const state = oauth.generateRandomState();
  const parameters = {
    redirect_uri,
    scope: SCOPE,
    response_type: 'code',
    code_challenge: await oauth.calculatePKCECodeChallenge(code_verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  };
  return { code_verifier, nonce, state, parameters };
}

async function native(issuer, client_id) {
  const as = await discover(issuer);
  const client = { client_id };
  const auth = oauth.None();
  const listener = await loopback('/callback');
  const { code_verifier, nonce, state, parameters } = await request(listener.url);
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', client_id);
  for (const [k, v] of Object.entries(parameters)) authorize.searchParams.set(k, v);
  say({ authorize: authorize.href });

  const redirect = await listener.redirect;
  if (!redirect) throw new Error('the browser never came back to the loopback listener');
  const params = oauth.validateAuthResponse(as, client, redirect, state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(
      as,
      client,
      auth,
      params,
      listener.url,
      code_verifier,
    ),
    { expectedNonce: nonce, requireIdToken: true },
  );
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  const userinfo = await oauth.processUserInfoResponse(
    as,
    client,
    claims.sub,
    await oauth.userInfoRequest(as, client, tokens.access_token),
  );
  const refresh = (token) =>
    oauth
      .refreshTokenGrantRequest(as, client, auth, token)
      .then((res) => oauth.processRefreshTokenResponse(as, client, res));
  const refreshed = await refresh(tokens.refresh_token);
  const old_refresh = await refused(() => refresh(tokens.refresh_token));
  say({
    redirect_uri: listener.url,
    claims,
    userinfo,
    token_type: tokens.token_type,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    old_refresh,
  });
}

/**
 * RFC 9449 §8 and §9: a server may answer a DPoP request with `use_dpop_nonce`; the
 * handle has kept the nonce it sent, and the same request is made once more.
 */
async function withNonce(attempt, counter) {
  try {
    return await attempt();
  } catch (e) {
    if (!oauth.isDPoPNonceError(e)) throw e;
    counter.retries += 1;
    return attempt();
  }
}

async function fapi2(issuer, redirect_uri) {
  const as = await discover(issuer);
  const own = await clientKey('o4w-fapi');
  say({ jwks: own.jwks });
  const { client_id } = await hear();
  const client = { client_id, id_token_signed_response_alg: 'ES256' };
  const auth = oauth.PrivateKeyJwt(own.signing);
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
  const nonces = { retries: 0 };

  const { code_verifier, nonce, state, parameters } = await request(redirect_uri);
  const requestObject = await oauth.issueRequestObject(as, client, parameters, own.signing);
  const par = await withNonce(
    async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(
          as,
          client,
          auth,
          { request: requestObject },
          { DPoP },
        ),
      ),
    nonces,
  );
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', client_id);
  authorize.searchParams.set('request_uri', par.request_uri);
  say({ authorize: authorize.href });
  const callback = new URL((await hear()).callback);

  const params = oauth.validateAuthResponse(as, client, callback, state);
  const tokens = await withNonce(
    async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          auth,
          params,
          redirect_uri,
          code_verifier,
          { DPoP },
        ),
        { expectedNonce: nonce, requireIdToken: true },
      ),
    nonces,
  );
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  const userinfoResponse = await withNonce(
    () =>
      oauth.protectedResourceRequest(
        tokens.access_token,
        'GET',
        new URL(as.userinfo_endpoint),
        undefined,
        undefined,
        { DPoP },
      ),
    nonces,
  );
  const userinfo = await oauth.processUserInfoResponse(as, client, claims.sub, userinfoResponse);
  // The same token without its proof: a Bearer token it is not.
  const as_bearer = await refused(async () => {
    const res = await oauth.protectedResourceRequest(
      tokens.access_token,
      'GET',
      new URL(as.userinfo_endpoint),
    );
    if (!res.ok) throw Object.assign(new Error(`status ${res.status}`), { status: res.status });
  });
  const refreshed = await withNonce(
    async () =>
      oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP }),
      ),
    nonces,
  );
  say({
    request_uri_expires_in: par.expires_in,
    claims,
    userinfo,
    token_type: tokens.token_type,
    refreshed_token_type: refreshed.token_type,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    as_bearer,
    dpop_nonce_retries: nonces.retries,
  });
}

run({ native, fapi2 });
