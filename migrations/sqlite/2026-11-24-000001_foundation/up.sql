-- Organisations (tenants) own users and their policies. Policies live in one JSON
-- document so a new policy knob needs no migration; domain::OrgPolicy gives defaults.
CREATE TABLE organisations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    policy       TEXT NOT NULL DEFAULT '{}',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

-- Usernames are unique across organisations: the sign-in page asks for a username only.
-- `username` holds the NFKC, lower-cased form (domain::Username).
CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES organisations (id),
    username             TEXT NOT NULL UNIQUE,
    email                TEXT NOT NULL,
    display_name         TEXT,
    role                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    password_hash        TEXT,
    password_changed_at  TIMESTAMP,
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);
CREATE INDEX users_org_id ON users (org_id);
CREATE INDEX users_email ON users (email);

CREATE TABLE password_history (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at);
