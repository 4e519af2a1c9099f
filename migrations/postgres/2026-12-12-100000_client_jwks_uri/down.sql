ALTER TABLE oidc_clients DROP COLUMN jwks_uri;
