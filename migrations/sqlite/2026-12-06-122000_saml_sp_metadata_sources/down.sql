DROP TABLE saml_sp_metadata_sources;
