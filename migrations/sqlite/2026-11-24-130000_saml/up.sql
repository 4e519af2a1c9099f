-- SAML 2.0 Identity Provider (DESIGN §10).

-- The IdP's signing key and its self-signed certificate (published in /saml/metadata).
-- The private key (PKCS#8 DER) is sealed with AES-256-GCM under the master key; the
-- certificate is public (base64 DER). `state` is active or retired.
CREATE TABLE saml_keys (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    certificate    TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL
);

-- Service providers, registered by importing their metadata. List-valued columns hold
-- JSON arrays (endpoints, base64 DER certificates); attribute_map is a JSON object.
CREATE TABLE saml_service_providers (
    entity_id               TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    acs_endpoints           TEXT NOT NULL,
    slo_endpoints           TEXT NOT NULL,
    signing_certs           TEXT NOT NULL,
    encryption_certs        TEXT NOT NULL,
    name_id_format          TEXT NOT NULL,
    name_id_source          TEXT NOT NULL,
    attribute_map           TEXT NOT NULL,
    sign_assertion          BOOLEAN NOT NULL DEFAULT 0,
    sign_response           BOOLEAN NOT NULL DEFAULT 0,
    require_signed_requests BOOLEAN NOT NULL DEFAULT 0,
    encrypt_assertions      BOOLEAN NOT NULL DEFAULT 0,
    metadata                TEXT NOT NULL,
    created_at              TIMESTAMP NOT NULL,
    updated_at              TIMESTAMP NOT NULL
);
