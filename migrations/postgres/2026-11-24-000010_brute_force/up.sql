-- Account lockout state, keyed by the normalised username rather than the user id:
-- names that belong to no account are counted and locked exactly like real ones, so
-- the answers never tell whether an account exists (keycloak#13782).
CREATE TABLE lockouts (
    login_key    TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    lock_count   INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    permanent    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at   TIMESTAMP NOT NULL
);

-- Blocked client addresses, shared by every instance and kept across restarts.
CREATE TABLE ip_blocks (
    ip            TEXT PRIMARY KEY,
    blocked_until TIMESTAMP NOT NULL,
    block_count   INTEGER NOT NULL DEFAULT 1,
    reason        TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
