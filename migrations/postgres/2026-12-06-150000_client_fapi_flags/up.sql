-- Issue 25: per-client requirements of the FAPI 2.0 security profile. require_par: the
-- client must push its authorization request (RFC 9126) and use the request_uri it gets.
-- require_dpop: every token it gets is bound to a DPoP key (RFC 9449). fapi2: the whole
-- profile (PAR, DPoP, private_key_jwt, PKCE S256). Existing clients keep none of them.
ALTER TABLE oidc_clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE oidc_clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE oidc_clients ADD COLUMN fapi2 BOOLEAN NOT NULL DEFAULT FALSE;
