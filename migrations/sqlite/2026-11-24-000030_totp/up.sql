-- One TOTP credential per user (DESIGN §6). The secret is sealed with AES-256-GCM under
-- the master key; it is active only once `confirmed_at` is set by a first valid code.
-- `last_step` makes each time step usable once, atomically across instances.
CREATE TABLE totp_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    confirmed_at  TIMESTAMP,
    last_step     BIGINT,
    created_at    TIMESTAMP NOT NULL
);

-- Single-use recovery codes, stored as a keyed hash (HMAC under a key derived from the
-- master key), so a copy of the database alone cannot be searched for them.
CREATE TABLE recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at    TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
