-- Issue 30 (DESIGN §18): consent. `ask_consent`: the client's users are asked, the first
-- time and whenever it asks for more, which of the requested scopes it may have (a
-- patient-facing app); otherwise (the default, as before) the administrator's
-- registration is the consent (an EHR-embedded or in-house app).
--
-- `consents`: what a user decided for a client: the scopes they were asked about
-- (`asked`) and those they allowed (`granted`), JSON arrays. Withdrawn on the account
-- page, which ends the client's grants for the user too.
ALTER TABLE oidc_clients ADD COLUMN ask_consent BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    asked TEXT NOT NULL,
    granted TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
