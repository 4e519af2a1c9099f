-- OpenID Provider (DESIGN §9).

-- Token signing keys. `state` moves next → active → retired: a key is published in the
-- JWKS while `next` (before it signs anything) and while `retired` (until what it signed
-- has expired). The private key is sealed with AES-256-GCM under the master key.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    state          TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    activated_at   TIMESTAMP,
    retired_at     TIMESTAMP
);

-- Relying parties. List-valued columns hold JSON arrays. The secret is stored only as a
-- SHA-256 hash: it is 256 random bits, so a fast hash is as good as a slow one.
CREATE TABLE oidc_clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,
    redirect_uris              TEXT NOT NULL,
    post_logout_redirect_uris  TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    jwks                       TEXT,
    backchannel_logout_uri     TEXT,
    id_token_alg               TEXT NOT NULL,
    created_at                 TIMESTAMP NOT NULL
);

-- One grant per authorization (code exchange) or client_credentials issue: the family
-- its access and refresh tokens belong to, revoked as one.
CREATE TABLE oidc_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_handle TEXT,
    scope          TEXT NOT NULL,
    auth_time      BIGINT,
    amr            TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP
);
CREATE INDEX oidc_grants_user ON oidc_grants (user_id);
CREATE INDEX oidc_grants_session ON oidc_grants (session_handle);

-- Refresh tokens, stored as SHA-256 only. Rotation marks the old one used; presenting a
-- used one again revokes its grant.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
