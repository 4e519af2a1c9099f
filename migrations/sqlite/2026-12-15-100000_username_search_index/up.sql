-- Issue 32 (a million users): PostgreSQL indexes usernames by trigram here, for
-- searches by part of a name. SQLite has no index that answers `LIKE '%part%'`; the
-- embedded default serves far fewer users, and its searches stay as they were.
SELECT 1;
