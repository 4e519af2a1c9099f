use super::*;

fn spec() -> ClientSpec {
    ClientSpec::new("RP", &["https://rp.example.org/cb"])
}

#[test]
fn a_plain_confidential_client_passes_and_has_a_secret() {
    let checked = check(&spec()).unwrap();
    assert!(checked.has_secret());
    assert_eq!(checked.auth_method, AUTH_BASIC);
}

#[test]
fn too_many_or_too_long_redirect_uris_are_refused_naming_the_field() {
    let mut many = spec();
    many.redirect_uris = (0..21)
        .map(|i| format!("https://rp.example.org/{i}"))
        .collect();
    let err = check(&many).err().unwrap().to_string();
    assert!(err.starts_with("redirect_uris:"), "{err}");
    let mut long = spec();
    long.post_logout_redirect_uris = vec![format!("https://rp.example.org/{}", "x".repeat(2000))];
    let err = check(&long).err().unwrap().to_string();
    assert!(err.starts_with("post_logout_redirect_uris:"), "{err}");
}

#[test]
fn an_empty_or_malformed_organisation_list_is_refused_and_duplicates_merge() {
    let mut bound = spec();
    bound.allowed_orgs = Some(vec![]);
    let err = check(&bound).err().unwrap().to_string();
    assert!(err.starts_with("allowed_orgs:"), "{err}");
    bound.allowed_orgs = Some(vec!["St Mary's".into()]);
    assert!(check(&bound).is_err());
    bound.allowed_orgs = Some(vec!["alpha".into(), "alpha".into()]);
    assert_eq!(
        check(&bound).unwrap().allowed_orgs,
        Some(vec!["alpha".into()])
    );
}

#[test]
fn a_fapi2_client_uses_private_key_jwt_and_requires_par_and_dpop() {
    let mut fapi = spec();
    fapi.fapi2 = true;
    let err = check(&fapi).err().unwrap().to_string();
    assert!(err.starts_with("fapi2:"), "{err}");
    fapi.auth_method = Some(AUTH_PRIVATE_KEY_JWT.into());
    fapi.jwks = Some(
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.into(),
    );
    let checked = check(&fapi).unwrap();
    assert!(checked.require_par && checked.require_dpop && checked.fapi2);
}

#[test]
fn urls_gatehouse_calls_are_https_or_loopback_each_refusal_naming_its_field() {
    let mut logout = spec();
    logout.backchannel_logout_uri = Some("http://rp.example.org/bc".into());
    let err = check(&logout).err().unwrap().to_string();
    assert_eq!(err, "backchannel_logout_uri: https (or http on loopback)");
    logout.backchannel_logout_uri = Some("http://127.0.0.1:8080/bc".into());
    assert!(check(&logout).is_ok());
    let mut keys = spec();
    keys.auth_method = Some(AUTH_PRIVATE_KEY_JWT.into());
    keys.jwks_uri = Some("http://rp.example.org/jwks".into());
    let err = check(&keys).err().unwrap().to_string();
    assert_eq!(err, "jwks_uri: https (or http on loopback)");
    keys.jwks_uri = Some("https://rp.example.org/jwks".into());
    assert_eq!(
        check(&keys).unwrap().keys.jwks_uri.as_deref(),
        Some("https://rp.example.org/jwks")
    );
}

#[test]
fn token_algorithms_default_to_rs256_and_are_exact_jwa_names() {
    let checked = check(&spec()).unwrap();
    assert_eq!(
        (
            checked.id_token_alg.as_str(),
            checked.access_token_alg.as_str()
        ),
        (RS256, RS256)
    );
    for alg in ["RS256", "ES256", "EdDSA"] {
        let asked = ClientSpec {
            id_token_alg: Some(alg.into()),
            access_token_alg: Some(alg.into()),
            ..spec()
        };
        let checked = check(&asked).unwrap();
        assert_eq!(
            (
                checked.id_token_alg.as_str(),
                checked.access_token_alg.as_str()
            ),
            (alg, alg)
        );
    }
    for bad in ["HS256", "none", "ES512", "", "eddsa", "PS256"] {
        let asked = ClientSpec {
            access_token_alg: Some(bad.into()),
            ..spec()
        };
        let err = check(&asked).err().unwrap().to_string();
        assert_eq!(err, "access_token_alg: RS256, ES256 or EdDSA", "{bad:?}");
        let asked = ClientSpec {
            id_token_alg: Some(bad.into()),
            ..spec()
        };
        let err = check(&asked).err().unwrap().to_string();
        assert_eq!(err, "id_token_alg: RS256, ES256 or EdDSA", "{bad:?}");
    }
}

#[test]
fn a_public_client_has_no_secret_and_no_client_credentials() {
    let mut public = spec();
    public.public = true;
    assert!(!check(&public).unwrap().has_secret());
    public.grant_types = vec![GRANT_CLIENT_CREDENTIALS.into()];
    assert!(check(&public).is_err());
}
