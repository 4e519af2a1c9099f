DROP TABLE saml_service_providers;
DROP TABLE saml_keys;
