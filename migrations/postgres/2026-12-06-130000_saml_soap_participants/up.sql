-- Issue 24 item 5: the SPs with a SOAP SingleLogoutService that an SSO session has an
-- assertion at, kept in the database so that a session which runs out with no browser
-- (idle or absolute limit) is still told to them by the janitor's sweep. The list the
-- front channel uses lives in the ephemeral store and is not swept. `subject_sealed`
-- holds the NameID, its format and the user, sealed under the master key. A row goes
-- when the session's SOAP logouts are queued (by any path), or after `expires_at`
-- (the session's absolute end).
CREATE TABLE saml_soap_participants (
    session_handle TEXT NOT NULL,
    sp_entity_id   TEXT NOT NULL,
    subject_sealed TEXT NOT NULL,
    expires_at     TIMESTAMP NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (session_handle, sp_entity_id)
);
CREATE INDEX saml_soap_participants_expiry ON saml_soap_participants (expires_at);
