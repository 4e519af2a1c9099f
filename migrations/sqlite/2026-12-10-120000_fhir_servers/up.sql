-- Issue 30 (DESIGN §18): FHIR servers registered as resource servers.
--
-- `base_url` is what `aud` (or RFC 8707 `resource`) names at /authorize and what the
-- access token's `aud` then is; `allowed_scopes` the clinical scopes it accepts (JSON
-- array of normalised SMART scopes); `allowed_clients` the client ids that may ask for
-- tokens to it (JSON array).
CREATE TABLE fhir_servers (
    id TEXT PRIMARY KEY NOT NULL,
    base_url TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    allowed_scopes TEXT NOT NULL,
    allowed_clients TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
