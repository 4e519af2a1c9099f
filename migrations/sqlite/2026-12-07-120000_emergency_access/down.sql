ALTER TABLE oidc_grants DROP COLUMN emergency_id;
DROP TABLE emergency_sessions;
DROP TABLE emergency_designations;
