//! FHIR servers registered as resource servers (DESIGN §18): they span organisations, so
//! only a super administrator sees and changes them.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::admin::service::fhir_servers::{self as service, FhirServerFields};
use crate::i18n::Tr;

struct ServerRow {
    id: String,
    base_url: String,
    display_name: String,
    scopes: String,
    clients: String,
}

#[derive(Template)]
#[template(path = "admin/fhir_servers.html")]
struct FhirServersPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    servers: Vec<ServerRow>,
}

#[get("/admin/fhir-servers")]
pub(super) async fn fhir_servers_page(query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    let servers = service::list(&visit.state, &console.who)
        .await
        .said(&tr)?
        .into_iter()
        .map(|r| ServerRow {
            scopes: r.scopes().join(" "),
            clients: r.clients().join(" "),
            id: r.id,
            base_url: r.base_url,
            display_name: r.display_name,
        })
        .collect();
    let page = FhirServersPage {
        nav: console.nav(),
        notice: notice(&tr, query.done.as_deref()),
        servers,
        tr,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    display_name: String,
    /// Space- or line-separated SMART scopes.
    #[serde(default)]
    scopes: String,
    /// Space- or line-separated client ids.
    #[serde(default)]
    clients: String,
}

fn words(raw: &str) -> Vec<String> {
    raw.split_whitespace().map(str::to_owned).collect()
}

#[post("/admin/fhir-servers")]
pub(super) async fn create_fhir_server(form: Form<CreateForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let form = form.into_inner();
    let fields = FhirServerFields {
        allowed_scopes: words(&form.scopes),
        allowed_clients: words(&form.clients),
        base_url: form.base_url,
        display_name: form.display_name,
    };
    service::create(visit.by(&console), fields)
        .await
        .said(&console.tr())?;
    Ok(see_other("/admin/fhir-servers?done=fhir-server-created"))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

#[post("/admin/fhir-servers/delete")]
pub(super) async fn delete_fhir_server(form: Form<DeleteForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    service::delete(visit.by(&console), &form.id)
        .await
        .said(&console.tr())?;
    Ok(see_other("/admin/fhir-servers?done=fhir-server-deleted"))
}
