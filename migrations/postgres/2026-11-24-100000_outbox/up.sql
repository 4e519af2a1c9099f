-- The durable mail outbox (DESIGN §14): a message is a row committed with whatever
-- caused it (a reset token, a lockout), so an SMTP or webhook outage loses nothing.
-- `subject` is the mail subject, or the event name of a webhook; `body_text` and
-- `body_html` are sealed under the master key (reset and invitation links are as good
-- as the token) and cleared once the row is finished; `payload` is a webhook's JSON
-- body exactly as it is signed. `last_error` never holds a secret or a body.
CREATE TABLE outbox (
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
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
