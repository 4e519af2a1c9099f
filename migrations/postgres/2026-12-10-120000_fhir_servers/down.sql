DROP TABLE fhir_servers;
