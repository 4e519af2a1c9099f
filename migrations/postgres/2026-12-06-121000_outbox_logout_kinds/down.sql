DELETE FROM outbox WHERE kind IN ('oidc_backchannel_logout', 'saml_soap_logout');
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('email', 'webhook'));
