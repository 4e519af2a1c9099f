DROP INDEX oidc_grants_revoked_at;
DROP INDEX refresh_tokens_expires_at;
DROP TABLE revoked_access_tokens;
