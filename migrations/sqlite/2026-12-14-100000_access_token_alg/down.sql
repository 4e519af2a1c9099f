ALTER TABLE oidc_clients DROP COLUMN access_token_alg;
