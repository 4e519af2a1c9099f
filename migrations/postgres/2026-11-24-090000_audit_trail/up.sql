-- Secrets Gatehouse generates for itself, sealed under the master key (DESIGN §12):
-- `value` is `MasterKey::seal("sealed-secret:" || name, ..)` text, so a master-key
-- rotation can re-seal every row without knowing what each one is for.
CREATE TABLE sealed_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- The audit trail (DESIGN §11). Rows are only ever appended (and pruned from the
-- oldest end, see audit_checkpoints). `hash` is HMAC-SHA-256 under the audit chain
-- key over `prev_hash` and every other column; `seq` is dense, so a deleted row
-- leaves a gap. `details` is canonical JSON text, hashed exactly as stored.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    occurred_at TIMESTAMP NOT NULL,
    org_id      TEXT,
    actor       TEXT,
    subject     TEXT,
    event_type  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    client_ip   TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_type ON audit_events (event_type, seq);

-- The end of the chain. Every append locks this one row, so appends from every
-- instance are serialised into one chain; it also tells `audit verify` where the
-- chain ends, so removing the newest events is noticed.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Written when old events are pruned: the last pruned event's seq and hash, signed
-- with the chain key, so the remaining events still verify from there.
CREATE TABLE audit_checkpoints (
    last_seq      BIGINT PRIMARY KEY,
    last_hash     TEXT NOT NULL,
    cutoff        TIMESTAMP NOT NULL,
    pruned_events BIGINT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    signature     TEXT NOT NULL
);
