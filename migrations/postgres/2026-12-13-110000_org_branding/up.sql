-- Issue 31: an organisation's branding. `document`: the JSON of `domain::Branding`
-- (name, colours, support text, the apps it brands); `logo`: a PNG, JPEG or WebP of at
-- most 256 KiB, `logo_type` its media type. One row once anything was set.
CREATE TABLE org_branding (
    org_id TEXT PRIMARY KEY NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    document TEXT NOT NULL,
    logo BYTEA,
    logo_type TEXT,
    updated_at TIMESTAMP NOT NULL
);
