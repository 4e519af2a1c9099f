ALTER TABLE saml_keys DROP COLUMN retired_at;
ALTER TABLE saml_keys DROP COLUMN activated_at;
