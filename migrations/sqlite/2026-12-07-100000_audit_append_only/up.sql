-- The audit trail is append-only in the database itself (ONC 170.315 (d)(2)(iv),
-- (d)(10)): the hash chain shows an edit afterwards; these triggers refuse it in the
-- first place. SQLite has no TRUNCATE (a DELETE without WHERE fires the triggers).
--
-- The one exception is `gatehouse audit prune` (retention): inside its transaction it
-- inserts the one row of audit_prune_permit, deletes the oldest events behind a signed
-- checkpoint, and removes the row again before commit. No UPDATE is ever allowed, nor
-- any change to a checkpoint.
CREATE TABLE audit_prune_permit (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TRIGGER audit_events_no_update
BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE on audit_events refused');
END;

CREATE TRIGGER audit_events_no_delete
BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_prune_permit)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE on audit_events refused');
END;

CREATE TRIGGER audit_checkpoints_no_update
BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE on audit_checkpoints refused');
END;

CREATE TRIGGER audit_checkpoints_no_delete
BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE on audit_checkpoints refused');
END;
