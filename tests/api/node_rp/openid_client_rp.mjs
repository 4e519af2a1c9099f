// openid-client (v6, OpenID-certified, FAPI 2.0 included) as an independent relying
// party against a running Gatehouse.
//
//   node openid_client_rp.mjs code ISSUER REDIRECT_URI
//     A confidential server-side app with private_key_jwt (its own ES256 key):
//     authorization code + PKCE S256 + nonce + state; the ID token validated by
//     openid-client (its signature against /jwks included); userinfo; refresh with
//     rotation, the spent refresh token refused.
//   node openid_client_rp.mjs fapi2 ISSUER REDIRECT_URI
//     The FAPI 2.0 way: private_key_jwt, a signed request object (JAR) pushed to /par,
//     DPoP-bound tokens at /token and /userinfo and on refresh.
//
// The conversation (one JSON line each way): the script says {"jwks"}; the test answers
// {"client_id"} once it has registered that key; the script says {"authorize": URL};
// the test signs in and answers {"callback": URL}; the script says what it got.

import * as client from 'openid-client';

import { clientKey, hear, refused, run, say } from './rp_io.mjs';

const SCOPE = 'openid profile email offline_access';

/** Registration: the test registers the JWKS this script made and names the client. */
async function registered(issuer, kid, metadata) {
  const own = await clientKey(kid);
  say({ jwks: own.jwks });
  const { client_id } = await hear();
  const config = await client.discovery(
    new URL(issuer),
    client_id,
    { token_endpoint_auth_method: 'private_key_jwt', ...metadata },
    client.PrivateKeyJwt(own.signing),
  );
  // The ID tokens' signatures too, against the server's /jwks: over TLS from /token
  // they may be trusted without, but this is the check a test of our signing wants.
  client.enableNonRepudiationChecks(config);
  // Someone who knows the client_id and the kid but holds another key.
  const impostor = await clientKey(kid);
  const forged = new client.Configuration(
    config.serverMetadata(),
    client_id,
    { token_endpoint_auth_method: 'private_key_jwt', ...metadata },
    client.PrivateKeyJwt(impostor.signing),
  );
  return { config, forged, own };
}

/** A fresh authorization request's secrets (PKCE verifier, nonce, state). */
async function request(redirect_uri) {
  const code_verifier = client.randomPKCECodeVerifier();
  const checks = {
    pkceCodeVerifier: code_verifier,
    expectedNonce: client.randomNonce(),
    expectedState: client.randomState(),
    idTokenExpected: true,
  };
  const parameters = {
    redirect_uri,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
    code_challenge_method: 'S256',
    nonce: checks.expectedNonce,
    state: checks.expectedState,
  };
  return { checks, parameters };
}

async function code(issuer, redirect_uri) {
  const { config, forged } = await registered(issuer, 'oc-1', {});
  const { checks, parameters } = await request(redirect_uri);
  say({ authorize: client.buildAuthorizationUrl(config, parameters).href });
  const callback = new URL((await hear()).callback);

  // The impostor goes first: refused, and the code is not spent by the attempt.
  const wrong_key = await refused(() => client.authorizationCodeGrant(forged, callback, checks));
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const old_refresh = await refused(() => client.refreshTokenGrant(config, tokens.refresh_token));
  // RFC 9700 §4.14.2: a replayed refresh token ends its family, the new one too.
  const after_replay = await refused(() =>
    client.refreshTokenGrant(config, refreshed.refresh_token),
  );
  say({
    claims,
    userinfo,
    token_type: tokens.token_type,
    scope: tokens.scope,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    refreshed_sub: refreshed.claims()?.sub ?? null,
    wrong_key,
    old_refresh,
    after_replay,
  });
}

async function fapi2(issuer, redirect_uri) {
  const { config, forged, own } = await registered(issuer, 'oc-fapi', {
    id_token_signed_response_alg: 'ES256',
  });
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const { checks, parameters } = await request(redirect_uri);
  // JAR inside PAR: the parameters travel signed, and only a request_uri reaches the
  // browser.
  const { searchParams: jar } = await client.buildAuthorizationUrlWithJAR(
    config,
    parameters,
    own.signing,
  );
  const forged_par = await refused(() =>
    client.buildAuthorizationUrlWithPAR(forged, jar, { DPoP }),
  );
  const authorize = await client.buildAuthorizationUrlWithPAR(config, jar, { DPoP });
  say({ authorize: authorize.href });
  const callback = new URL((await hear()).callback);

  // A thief with the code but another DPoP key.
  const thief = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const other_dpop_key = await refused(() =>
    client.authorizationCodeGrant(config, callback, checks, undefined, { DPoP: thief }),
  );
  const tokens = await client.authorizationCodeGrant(config, callback, checks, undefined, {
    DPoP,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  // The access token alone, as a Bearer token, or with another key's proof: refused.
  const as_bearer = await refused(() =>
    client.fetchUserInfo(config, tokens.access_token, claims.sub),
  );
  const userinfo_other_key = await refused(() =>
    client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: thief }),
  );
  const refresh_other_key = await refused(() =>
    client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: thief }),
  );
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
    DPoP,
  });
  const userinfo_after_refresh = await client.fetchUserInfo(
    config,
    refreshed.access_token,
    claims.sub,
    { DPoP },
  );
  say({
    par_endpoint: config.serverMetadata().pushed_authorization_request_endpoint ?? null,
    authorize_params: [...authorize.searchParams.keys()].sort(),
    claims,
    userinfo,
    token_type: tokens.token_type,
    refreshed_token_type: refreshed.token_type,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    userinfo_after_refresh_sub: userinfo_after_refresh.sub,
    forged_par,
    other_dpop_key,
    as_bearer,
    userinfo_other_key,
    refresh_other_key,
  });
}

run({ code, fapi2 });
