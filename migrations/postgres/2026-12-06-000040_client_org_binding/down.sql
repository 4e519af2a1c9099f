ALTER TABLE oidc_clients DROP COLUMN introspection;
ALTER TABLE oidc_clients DROP COLUMN allowed_orgs;
