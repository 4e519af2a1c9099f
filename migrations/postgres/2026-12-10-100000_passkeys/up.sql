-- Issue 29 (DESIGN §17): passkeys.
--
-- One row per WebAuthn credential. `credential_id` is the authenticator's id for it
-- (base64url), unique across accounts; `credential` the public key, counter and flags
-- as webauthn-rs stores them (JSON: nothing in it is secret); `aaguid` the
-- authenticator model it named at registration; `backup_eligible` whether it may be
-- synced between devices (`amr` swk) or is bound to one device (`amr` hwk).
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    aaguid TEXT,
    backup_eligible BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user ON passkeys (user_id);
