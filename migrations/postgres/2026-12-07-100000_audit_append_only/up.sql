-- The audit trail is append-only in the database itself (ONC 170.315 (d)(2)(iv),
-- (d)(10): the technology must not let the trail be changed, overwritten or deleted).
-- The hash chain shows an edit afterwards; these triggers refuse it in the first place,
-- for every role that cannot drop them (see README, Compliance: the application's role
-- should not own these tables).
--
-- The one exception is `gatehouse audit prune` (retention), which deletes the oldest
-- events behind a signed checkpoint: it sets `gatehouse.audit_prune` to 'on' for its own
-- transaction only (SET LOCAL), and only a DELETE on audit_events honours it. No UPDATE
-- is ever allowed, nor any change to a checkpoint, nor TRUNCATE.
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_events'
       AND current_setting('gatehouse.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
