DROP TABLE fhir_users;
ALTER TABLE oidc_grants DROP COLUMN fhir_user;
ALTER TABLE oidc_grants DROP COLUMN launch_context;
ALTER TABLE oidc_grants DROP COLUMN audience;
