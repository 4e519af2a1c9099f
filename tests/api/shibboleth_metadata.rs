//! Our signed metadata as a federation member's Shibboleth SP 3 loads it (issue 24
//! item 6): a `Signature` metadata filter pinned to Gatehouse's certificate and a
//! `RequireValidUntil` filter with Shibboleth's default ceiling (14 days), the way
//! federations tell their SPs to load an IdP's metadata. Runs when
//! `GATEHOUSE_TEST_SHIBBOLETH=1`, like tests/api/shibboleth.rs.

use crate::{
    saml::{KeyCert, idp_cert},
    shibboleth::{Shibboleth, SpSetup, assert_signed_in, enabled, gatehouse, sign_in, user},
};

/// The filters a federation's SP puts on an IdP's metadata: signed by `cert_pem_path`,
/// and valid for at most Shibboleth's default 14 days.
fn filters(cert_pem_path: &std::path::Path) -> String {
    format!(
        r#"<MetadataFilter type="Signature" certificate="{}" verifyBackup="false"/><MetadataFilter type="RequireValidUntil" maxValidityInterval="1209600"/>"#,
        cert_pem_path.display()
    )
}

fn pem_file(dir: &tempfile::TempDir, name: &str, der: &[u8]) -> std::path::PathBuf {
    let pem = openssl::x509::X509::from_der(der)
        .unwrap()
        .to_pem()
        .unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn shibboleth_loads_our_metadata_through_a_signature_filter_pinned_to_our_certificate() {
    if !enabled(
        "shibboleth_loads_our_metadata_through_a_signature_filter_pinned_to_our_certificate",
    ) {
        return;
    }
    let app = gatehouse().await;
    user(&app, "pinned").await;
    let certs = tempfile::tempdir().unwrap();
    let ours = pem_file(&certs, "gatehouse.pem", &idp_cert(&app).await);
    let sp =
        Shibboleth::launch_with_metadata_filters(&app, &SpSetup::default(), &filters(&ours)).await;
    sp.import(&app, &[]);
    let (page, _) = sign_in(&app, &sp, "pinned").await;
    assert_signed_in(&app, &sp, &page, "pinned");
    assert!(
        !sp.shibd_log().contains("failed signature check"),
        "{}",
        sp.logs()
    );
}

#[tokio::test]
async fn shibboleth_refuses_our_metadata_when_pinned_to_another_certificate() {
    if !enabled("shibboleth_refuses_our_metadata_when_pinned_to_another_certificate") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "unpinned").await;
    let certs = tempfile::tempdir().unwrap();
    let other = pem_file(&certs, "other.pem", &KeyCert::new("not gatehouse").der());
    let sp =
        Shibboleth::launch_with_metadata_filters(&app, &SpSetup::default(), &filters(&other)).await;
    sp.import(&app, &[]);
    let (page, browser) = sign_in(&app, &sp, "unpinned").await;
    assert!(
        page.body
            .contains("Unable to locate metadata for identity provider"),
        "{}",
        page.body
    );
    assert_eq!(
        browser.sign_ins, 0,
        "the SP never sends anyone to an IdP whose metadata it refused"
    );
    assert!(
        sp.shibd_log()
            .contains("SignatureMetadataFilter unable to verify signature"),
        "{}",
        sp.logs()
    );
}
