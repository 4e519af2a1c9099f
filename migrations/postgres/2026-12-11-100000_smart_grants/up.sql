-- Issue 30 (DESIGN §18): what a SMART grant carries besides its scopes, so that a
-- refresh gives tokens for the same FHIR server with the same launch context.
--
-- `audience`: the FHIR server's base URL the grant's access tokens are for (`aud` or
-- RFC 8707 `resource` at /authorize); NULL for an ordinary OIDC grant, whose tokens
-- are for the client. `launch_context`: the SMART launch context (patient, encounter,
-- fhirContext, intent, need_patient_banner, smart_style_url) as JSON, and `fhir_user`
-- the user's FHIR resource on that server, as the absolute URL the `fhirUser` claim is.
ALTER TABLE oidc_grants ADD COLUMN audience TEXT;
ALTER TABLE oidc_grants ADD COLUMN launch_context TEXT;
ALTER TABLE oidc_grants ADD COLUMN fhir_user TEXT;

-- A user's FHIR resource on each FHIR server (`Practitioner/…`, `Patient/…`,
-- `RelatedPerson/…`, `Person/…`), set by an administrator; removed with the user or
-- the server.
CREATE TABLE fhir_users (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fhir_server_id TEXT NOT NULL REFERENCES fhir_servers (id) ON DELETE CASCADE,
    reference TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, fhir_server_id)
);
