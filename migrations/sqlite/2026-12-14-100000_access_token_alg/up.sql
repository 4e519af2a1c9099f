-- Issue 32 (fast signatures where the client can take them): the algorithm a client's
-- access tokens (RFC 9068 JWTs) are signed with, RS256, ES256 or EdDSA. Every client
-- registered before keeps RS256, which its resource servers already check.
ALTER TABLE oidc_clients ADD COLUMN access_token_alg TEXT NOT NULL DEFAULT 'RS256';
