-- Issue 32 (a million users): a search by part of a username (`lower(username) LIKE
-- '%part%'`, the admin API and the console) reads every row without an index that can
-- answer a pattern with a leading wildcard. A trigram index can: pg_trgm, shipped with
-- PostgreSQL and a trusted extension since PostgreSQL 13.
--
-- The extension is one per database, whatever the schema, so it goes in `public` (where
-- a database with several Gatehouse schemas finds it once) unless it is installed
-- already; the index names its operator class there. Where it cannot be installed (no
-- privilege, or the contrib package is missing) the migration warns and goes on: the
-- index is for speed only, and searches answer the same without it.
DO $$
DECLARE
    home TEXT;
BEGIN
    SELECT extnamespace::regnamespace::text INTO home
        FROM pg_extension WHERE extname = 'pg_trgm';
    IF home IS NULL THEN
        BEGIN
            CREATE EXTENSION pg_trgm SCHEMA public;
            home := 'public';
        EXCEPTION WHEN insufficient_privilege OR undefined_file OR invalid_schema_name THEN
            RAISE WARNING 'pg_trgm cannot be installed (%): searches by part of a username read every user', SQLERRM;
            RETURN;
        END;
    END IF;
    EXECUTE format(
        'CREATE INDEX users_username_trgm ON users USING gin (lower(username) %s.gin_trgm_ops)',
        home
    );
END
$$;
