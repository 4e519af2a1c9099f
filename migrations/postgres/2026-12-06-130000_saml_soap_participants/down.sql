DROP TABLE saml_soap_participants;
