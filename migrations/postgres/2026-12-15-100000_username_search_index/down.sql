-- The extension stays: other schemas of this database may use it.
DROP INDEX IF EXISTS users_username_trgm;
