ALTER TABLE oidc_clients DROP COLUMN fapi2;
ALTER TABLE oidc_clients DROP COLUMN require_dpop;
ALTER TABLE oidc_clients DROP COLUMN require_par;
