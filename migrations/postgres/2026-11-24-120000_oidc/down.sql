DROP TABLE refresh_tokens;
DROP TABLE oidc_grants;
DROP TABLE oidc_clients;
DROP TABLE signing_keys;
