-- SAML key rotation (DESIGN §10, like the OIDC keys of §9): a `next` key is published in
-- the metadata before it signs; a retired key stays published for a grace period after
-- `retired_at`. `state` is now next, active or retired.
ALTER TABLE saml_keys ADD COLUMN activated_at TIMESTAMP;
ALTER TABLE saml_keys ADD COLUMN retired_at TIMESTAMP;
