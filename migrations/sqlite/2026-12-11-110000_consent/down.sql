DROP TABLE consents;
ALTER TABLE oidc_clients DROP COLUMN ask_consent;
