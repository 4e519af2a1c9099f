ALTER TABLE oidc_clients DROP COLUMN allowed_origins;
