-- The columns come back under their old names, but their values stay sealed: going
-- back to an earlier release needs a database restored from before the upgrade.
UPDATE outbox SET recipient_sealed = legacy_recipient WHERE legacy_recipient IS NOT NULL;
ALTER TABLE outbox DROP COLUMN legacy_recipient;
ALTER TABLE outbox RENAME COLUMN recipient_sealed TO recipient;

DROP INDEX users_email_index;
ALTER TABLE users DROP COLUMN email_index;
ALTER TABLE users RENAME COLUMN display_name_sealed TO display_name;
ALTER TABLE users RENAME COLUMN email_sealed TO email;
CREATE INDEX users_email ON users (email);
CREATE INDEX users_email_lower ON users (lower(email));
