-- IdP-initiated SSO is a per-SP opt-in (issue 20, item 12): an unsolicited Response can be
-- started by a link on any site, so it is off until an administrator turns it on, for
-- SPs registered before this migration too. With it on, a RelayState must be one of the
-- SP's registered values (a JSON array of exact strings).
ALTER TABLE saml_service_providers ADD COLUMN idp_initiated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE saml_service_providers ADD COLUMN idp_initiated_relay_states TEXT NOT NULL DEFAULT '[]';
