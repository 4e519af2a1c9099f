ALTER TABLE saml_service_providers DROP COLUMN idp_initiated_relay_states;
ALTER TABLE saml_service_providers DROP COLUMN idp_initiated;
