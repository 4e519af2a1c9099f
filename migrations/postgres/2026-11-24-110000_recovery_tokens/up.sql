-- Single-use links mailed for a password reset or an invitation (DESIGN §7). Only the
-- SHA-256 of a token is stored: a copy of the database hands out no working link. A
-- user has at most one live token per purpose (issuing one deletes the others), and a
-- token is used by one conditional UPDATE of `used_at`, so it works exactly once.
CREATE TABLE recovery_tokens (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset', 'invite')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX recovery_tokens_user ON recovery_tokens (user_id, purpose);

-- A reset request may give the email address in any case.
CREATE INDEX users_email_lower ON users (lower(email));
