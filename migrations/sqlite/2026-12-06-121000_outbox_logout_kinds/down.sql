DELETE FROM outbox WHERE kind IN ('oidc_backchannel_logout', 'saml_soap_logout');
CREATE TABLE outbox_rebuilt (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'webhook')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT,
    body_html       TEXT,
    payload         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error      TEXT,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP
);
INSERT INTO outbox_rebuilt SELECT id, kind, recipient, subject, body_text, body_html, payload,
    attempts, next_attempt_at, last_error, status, created_at, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
