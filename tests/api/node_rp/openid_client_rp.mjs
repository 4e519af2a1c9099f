// openid-client (v6, OpenID-certified, FAPI 2.0 included) as an independent relying
// party against a running Gatehouse.
//
//   node openid_client_rp.mjs code ISSUER REDIRECT_URI [ID_TOKEN_ALG]
//     A confidential server-side app with private_key_jwt (its own ES256 key):
//     authorization code + PKCE S256 + nonce + state; the ID token validated by
//     openid-client (its signature against /jwks included), signed with ID_TOKEN_ALG
//     (its id_token_signed_response_alg; RS256 when not given); userinfo; refresh with
//     rotation, the spent refresh token refused.
//   node openid_client_rp.mjs fapi2 ISSUER REDIRECT_URI
//     The FAPI 2.0 way: private_key_jwt, a signed request object (JAR) pushed to /par,
//     DPoP-bound tokens at /token and /userinfo and on refresh. Two sign-ins: the first
//     code is tried by a thief with another DPoP key, the second is the RP's.
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

/** The algorithm a JWS's header names (a header is no secret). */
function algOf(jws) {
  return JSON.parse(Buffer.from(jws.split('.')[0], 'base64url').toString()).alg;
}

async function code(issuer, redirect_uri, id_token_alg) {
  const metadata = id_token_alg ? { id_token_signed_response_alg: id_token_alg } : {};
  const { config, forged } = await registered(issuer, 'oc-1', metadata);
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
    id_token_alg: algOf(tokens.id_token),
    access_token_alg: algOf(tokens.access_token),
    refreshed_id_token_alg: algOf(refreshed.id_token),
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
  const thief = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  /** JAR inside PAR, with a DPoP proof that binds the code to the RP's key (RFC 9449
   * §10): the parameters travel signed, and only a request_uri reaches the browser. */
  const authorizeVia = async (par_config) => {
    const { checks, parameters } = await request(redirect_uri);
    const { searchParams: jar } = await client.buildAuthorizationUrlWithJAR(
      config,
      parameters,
      own.signing,
    );
    return { checks, url: await client.buildAuthorizationUrlWithPAR(par_config, jar, { DPoP }) };
  };
  const forged_par = await refused(() => authorizeVia(forged));

  // First round: the code is stolen on its way back, and tried with the thief's key.
  const stolen = await authorizeVia(config);
  say({ authorize: stolen.url.href });
  const stolen_callback = new URL((await hear()).callback);
  const other_dpop_key = await refused(() =>
    client.authorizationCodeGrant(config, stolen_callback, stolen.checks, undefined, {
      DPoP: thief,
    }),
  );

  // Second round: the RP's own.
  const { checks, url: authorize } = await authorizeVia(config);
  say({ authorize: authorize.href });
  const callback = new URL((await hear()).callback);
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
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
    DPoP,
  });
  const userinfo_after_refresh = await client.fetchUserInfo(
    config,
    refreshed.access_token,
    claims.sub,
    { DPoP },
  );
  // RFC 9449 §5: a confidential client's refresh token is held by its client
  // authentication, not a DPoP key, so the client may move to a new key; the new access
  // token is bound to that one, and the old key's proofs no longer do.
  const next = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const rekeyed = await client.refreshTokenGrant(config, refreshed.refresh_token, undefined, {
    DPoP: next,
  });
  const rekeyed_userinfo = await client.fetchUserInfo(config, rekeyed.access_token, claims.sub, {
    DPoP: next,
  });
  const old_key_after_rekey = await refused(() =>
    client.fetchUserInfo(config, rekeyed.access_token, claims.sub, { DPoP }),
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
    rekeyed_userinfo_sub: rekeyed_userinfo.sub,
    forged_par,
    other_dpop_key,
    as_bearer,
    userinfo_other_key,
    old_key_after_rekey,
  });
}

run({ code, fapi2 });
