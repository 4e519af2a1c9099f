-- client_credentials access tokens have no grant row: such a token stands for its
-- client, lives while the client exists, and is revoked one by one (RFC 7009) by its
-- `jti`. A row is needed only until the token would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

-- The token janitor (grants::purge) deletes by these every ten minutes.
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX oidc_grants_revoked_at ON oidc_grants (revoked_at);
