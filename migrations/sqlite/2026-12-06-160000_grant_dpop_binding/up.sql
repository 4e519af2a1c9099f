-- Issue 25 (RFC 9449): the thumbprint of the DPoP key a grant was made with. Its refresh
-- tokens then need DPoP proofs too (a public client's, by that very key). NULL: a grant
-- made without DPoP, as every grant before this was.
ALTER TABLE oidc_grants ADD COLUMN dpop_jkt TEXT;
