-- Issue 20 item 9: a relying party may be bound to organisations. `allowed_orgs` holds
-- a JSON array of organisation names; NULL admits users of every organisation (every
-- client registered before this, and any registered without a list: see README).
ALTER TABLE oidc_clients ADD COLUMN allowed_orgs TEXT;

-- Issue 20 item 11: only a resource server registered with this permission may
-- introspect tokens issued to other clients.
ALTER TABLE oidc_clients ADD COLUMN introspection BOOLEAN NOT NULL DEFAULT FALSE;
