-- Issue 30 (SMART Backend Services): a client's public keys by URL. A `private_key_jwt`
-- client registers either its JWKS document (`jwks`) or where it publishes it
-- (`jwks_uri`, https, or http on loopback); the keys read from there are cached and read
-- again when an assertion names a key not among them, so a client rotates its keys
-- without telling the administrator.
ALTER TABLE oidc_clients ADD COLUMN jwks_uri TEXT;
