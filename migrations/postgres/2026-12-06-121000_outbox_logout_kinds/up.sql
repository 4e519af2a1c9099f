-- The outbox also carries the protocols' back-channel logouts (issue 24 item 5): an
-- OIDC back-channel logout token for a client, a SAML LogoutRequest by SOAP for an SP.
-- `payload` holds what the message is built from at delivery time, sealed.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('email', 'webhook', 'oidc_backchannel_logout', 'saml_soap_logout'));
