use std::collections::BTreeMap;

use super::*;

const MAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";
const EPPN: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";

fn person(username: &str, role: &str) -> Person {
    Person {
        user_id: "0B6C7F7E-0000-4000-8000-000000000000".into(),
        username: username.into(),
        email: "pat@example.org".into(),
        display_name: Some("Pat Doe".into()),
        role: role.into(),
        organisation: "St Elsewhere".into(),
    }
}

const CX: Context<'static> = Context {
    scope: "hospital.example",
    pairwise_id: "ab12",
};

fn list(pairs: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut list = BTreeMap::new();
    apply(
        &mut list,
        &pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    )?;
    Ok(list)
}

#[test]
fn every_registry_name_is_a_uri_and_finds_its_entry_by_any_of_its_names() {
    for k in REGISTRY {
        assert!(k.name.starts_with("urn:"), "{}", k.name);
        for name in [k.friendly_name, k.name]
            .into_iter()
            .chain(k.aliases.iter().copied())
        {
            assert_eq!(lookup(name).map(|f| f.name), Some(k.name), "{name}");
        }
    }
    assert_eq!(lookup("MAIL").map(|k| k.name), Some(MAIL));
    assert!(
        lookup("givenName").is_none(),
        "Gatehouse holds no given name"
    );
    assert!(lookup("urn:oid:2.5.4.42").is_none());
}

#[test]
fn the_standard_names_are_the_ones_sps_expect() {
    let name = |f| lookup(f).unwrap().name;
    assert_eq!(name("mail"), MAIL);
    assert_eq!(name("uid"), "urn:oid:0.9.2342.19200300.100.1.1");
    assert_eq!(name("displayName"), "urn:oid:2.16.840.1.113730.3.1.241");
    assert_eq!(name("eduPersonPrincipalName"), EPPN);
    assert_eq!(
        name("eduPersonScopedAffiliation"),
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.9"
    );
    assert_eq!(
        name("subject-id"),
        "urn:oasis:names:tc:SAML:attribute:subject-id"
    );
    assert_eq!(
        name("pairwise-id"),
        "urn:oasis:names:tc:SAML:attribute:pairwise-id"
    );
}

#[test]
fn a_known_attribute_by_friendly_name_goes_out_by_uri_with_its_friendly_name() {
    let list = list(&["mail"]).unwrap();
    assert_eq!(list.get("mail").map(String::as_str), Some(MAIL));
    let out = release(&list, &person("pat", "user"), &CX);
    assert_eq!(
        out,
        [Released {
            name: MAIL.into(),
            friendly_name: Some("mail"),
            name_format: ATTRNAME_URI,
            values: vec!["pat@example.org".into()],
        }]
    );
    // By its OID or SAML 1 name, it is the same entry.
    assert_eq!(list, super::tests::list(&[MAIL]).unwrap());
    assert_eq!(
        list,
        super::tests::list(&["urn:mace:dir:attribute-def:mail"]).unwrap()
    );
}

#[test]
fn a_field_under_a_plain_name_stays_basic_without_a_friendly_name() {
    let list = list(&["email=mail", "name=displayName"]).unwrap();
    let out = release(&list, &person("pat", "user"), &CX);
    assert_eq!(out.len(), 2);
    for a in &out {
        assert_eq!(a.name_format, ATTRNAME_BASIC, "{a:?}");
        assert_eq!(a.friendly_name, None, "{a:?}");
    }
}

#[test]
fn a_field_under_a_registry_uri_gets_the_uri_format_and_friendly_name() {
    let list = list(&[&format!("email={MAIL}")]).unwrap();
    let out = release(&list, &person("pat", "user"), &CX);
    assert_eq!(out[0].name_format, ATTRNAME_URI);
    assert_eq!(out[0].friendly_name, Some("mail"));
}

#[test]
fn scoped_identifiers_carry_the_scope() {
    let list = list(&[
        "eduPersonPrincipalName",
        "eduPersonScopedAffiliation",
        "eduPersonAffiliation",
        "subject-id",
        "pairwise-id",
    ])
    .unwrap();
    let out = release(&list, &person("pat", "org_admin"), &CX);
    let values = |name: &str| {
        out.iter()
            .find(|a| a.friendly_name == Some(name))
            .map(|a| a.values.clone())
            .unwrap_or_default()
    };
    assert_eq!(values("eduPersonPrincipalName"), ["pat@hospital.example"]);
    assert_eq!(values("eduPersonAffiliation"), ["member", "staff"]);
    assert_eq!(
        values("eduPersonScopedAffiliation"),
        ["member@hospital.example", "staff@hospital.example"]
    );
    assert_eq!(
        values("subject-id"),
        ["0b6c7f7e-0000-4000-8000-000000000000@hospital.example"],
        "lower case, as the profile wants"
    );
    assert_eq!(values("pairwise-id"), ["ab12@hospital.example"]);
}

#[test]
fn a_username_with_an_at_sign_has_no_principal_name() {
    let list = list(&["eduPersonPrincipalName", "uid"]).unwrap();
    let out = release(&list, &person("pat@ward.example", "user"), &CX);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].friendly_name, Some("uid"));
}

#[test]
fn plain_users_are_members_and_administrators_staff_too() {
    assert_eq!(affiliations("user"), ["member"]);
    assert_eq!(affiliations("support"), ["member", "staff"]);
    assert_eq!(affiliations("super_admin"), ["member", "staff"]);
    assert_eq!(affiliations("nonsense"), ["member"]);
}

#[test]
fn only_the_listed_attributes_are_released() {
    let list = list(&["uid"]).unwrap();
    let out = release(&list, &person("pat", "user"), &CX);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].values, ["pat"]);
    // An entry that is neither a field nor known (a damaged row) releases nothing.
    let odd: BTreeMap<String, String> = [("password".to_owned(), "password".to_owned())].into();
    assert!(release(&odd, &person("pat", "user"), &CX).is_empty());
}

#[test]
fn no_display_name_no_attribute() {
    let mut p = person("pat", "user");
    p.display_name = None;
    let list = list(&["displayName", "name=cn"]).unwrap();
    assert!(release(&list, &p, &CX).is_empty());
}

#[test]
fn unknown_names_and_renamed_known_attributes_are_refused() {
    for bad in [
        "givenName",
        "password",
        "email",
        "email= ",
        "mail=urn:oid:2.5.4.3",
        "nonsense=",
    ] {
        assert!(list(&[bad]).is_err(), "{bad}");
    }
    let long = format!("email={}", "x".repeat(MAX_NAME_LEN + 1));
    assert!(list(&[&long]).is_err());
}

#[test]
fn an_empty_name_drops_an_entry_by_any_of_its_names() {
    let mut l = list(&["mail", "email=email"]).unwrap();
    apply(&mut l, &[format!("{MAIL}="), "email=".into()]).unwrap();
    assert!(l.is_empty(), "{l:?}");
}

#[test]
fn requested_attributes_preselect_what_gatehouse_has() {
    let asked = |name: &str, friendly: Option<&str>| RequestedAttribute {
        friendly_name: friendly.map(str::to_owned),
        name: name.to_owned(),
        name_format: None,
        values: None,
        is_required: Some(true),
    };
    let (list, unsupplied) = requested(&[
        asked(MAIL, None),
        asked("urn:mace:dir:attribute-def:eduPersonPrincipalName", None),
        asked("displayName", None),
        asked("https://example.org/custom", Some("mail")),
        asked("urn:oid:2.5.4.42", Some("givenName")),
        asked("eppn", None),
    ]);
    assert_eq!(
        list.keys().map(String::as_str).collect::<Vec<_>>(),
        ["eduPersonPrincipalName", "mail", "name"]
    );
    assert_eq!(list["eduPersonPrincipalName"], EPPN);
    assert_eq!(list["mail"], MAIL);
    assert_eq!(
        list["name"], "displayName",
        "a plain name is kept: the field goes out under the name asked for"
    );
    assert_eq!(
        unsupplied,
        ["https://example.org/custom", "urn:oid:2.5.4.42", "eppn"],
        "never another name than the one asked for; eppn has no plain field"
    );
}

#[test]
fn scopes_are_domain_like() {
    assert!(valid_scope("hospital.example"));
    assert!(valid_scope("127.0.0.1"));
    for bad in ["", ".example", "a b", "a@b", "ex/ample", &"a".repeat(128)] {
        assert!(!valid_scope(bad), "{bad}");
    }
}
