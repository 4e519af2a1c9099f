-- Issue 27: personal data sealed at field level (DESIGN §12). The address and display
-- name columns now hold `MasterKey::seal` text (`v1.<kid>.<…>`), for their row only;
-- `email_index` is the keyed HMAC blind index of the lower-cased address (its key is a
-- random secret in `sealed_secrets`), the one thing lookups by address compare. The
-- columns are renamed so that an older binary meeting this schema fails loudly instead
-- of mailing ciphertext.
--
-- Rows written by an earlier release still hold clear text, with no index: the Rust
-- data migration that runs at start-up right after this one (`store::pii::seal_legacy`)
-- seals them in place, in batches, and wraps clear password hashes (`$argon2…`) too.
ALTER TABLE users RENAME COLUMN email TO email_sealed;
ALTER TABLE users RENAME COLUMN display_name TO display_name_sealed;
ALTER TABLE users ADD COLUMN email_index TEXT;
DROP INDEX users_email;
DROP INDEX users_email_lower;
CREATE INDEX users_email_index ON users (email_index);

-- The outbox recipient is sealed like the bodies. A row queued by an earlier release
-- keeps its clear recipient in `legacy_recipient` until start-up seals it.
ALTER TABLE outbox RENAME COLUMN recipient TO recipient_sealed;
ALTER TABLE outbox ADD COLUMN legacy_recipient TEXT;
UPDATE outbox SET legacy_recipient = recipient_sealed, recipient_sealed = '';
