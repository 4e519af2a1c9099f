-- Issue 28 (DESIGN §16): upstream identity providers.
--
-- A connector to an organisation's own IdP: `slug` names it in URLs (the sign-in
-- button, the callback, the SP metadata), so it is unique across organisations.
-- `settings` is the protocol's JSON document (issuer, client id, scopes, claim
-- mapping, MFA trust…); `secret_sealed` the client secret, sealed under the master key.
CREATE TABLE upstream_connectors (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    protocol TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    settings TEXT NOT NULL,
    secret_sealed TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX upstream_connectors_org ON upstream_connectors (org_id);

-- Home-realm discovery: an email domain sends its users to one connector.
CREATE TABLE upstream_domains (
    domain TEXT PRIMARY KEY NOT NULL,
    connector_id TEXT NOT NULL
);
CREATE INDEX upstream_domains_connector ON upstream_domains (connector_id);

-- Which Gatehouse account an upstream identity (the connector's subject) signs in as.
CREATE TABLE upstream_links (
    connector_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    PRIMARY KEY (connector_id, subject)
);
CREATE INDEX upstream_links_user ON upstream_links (user_id);
