-- Issue 24 item 6: SPs whose metadata is fetched from a URL and refreshed on a schedule.
-- One row per such SP (an SP imported from a file has none). `pinned_cert` is the
-- base64 DER certificate whose signature the metadata must carry (NULL: unsigned
-- metadata is accepted, over HTTPS only). `next_refresh_at` is when an instance may
-- fetch it again; instances claim a due row by moving it forward, so one fetches.
-- `last_error` is what went wrong at the last attempt (NULL after a success).
CREATE TABLE saml_sp_metadata_sources (
    entity_id       TEXT PRIMARY KEY
                    REFERENCES saml_service_providers (entity_id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    pinned_cert     TEXT,
    refreshed_at    TIMESTAMP NOT NULL,
    next_refresh_at TIMESTAMP NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX saml_sp_metadata_sources_due ON saml_sp_metadata_sources (next_refresh_at);
