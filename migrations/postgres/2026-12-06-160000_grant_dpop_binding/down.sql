ALTER TABLE oidc_grants DROP COLUMN dpop_jkt;
