//! The FHIR server of the SMART tests: a small resource server on loopback that serves
//! a few Patients to tokens Gatehouse says are active for it (RFC 7662 introspection,
//! as a real FHIR server in front of Gatehouse would), and advertises Gatehouse as its
//! authorization server (`/metadata`, `/.well-known/smart-configuration`). It is the
//! fixture; Gatehouse is what is tested.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The patients it holds: id, given name, family name, birth date, MRN.
pub const PATIENTS: &[(&str, &str, &str, &str, &str)] = &[
    ("p-42", "Ana", "López", "1980-02-03", "MRN-42"),
    ("p-7", "Bo", "Chen", "1975-11-30", "MRN-7"),
    ("p-8", "Ana", "Ruiz", "2001-05-05", "MRN-8"),
];

/// What a running fixture saw.
#[derive(Default)]
pub struct Seen {
    /// Each introspection answer for a request it served.
    pub introspected: Vec<Value>,
    /// Each search's `name`.
    pub searches: Vec<String>,
}

pub struct FhirFixture {
    /// The FHIR base URL (`http://127.0.0.1:port/fhir`).
    pub base: String,
    pub seen: Arc<Mutex<Seen>>,
}

#[derive(Clone)]
struct Shared {
    base: String,
    gatehouse: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
}

fn patient(p: &(&str, &str, &str, &str, &str)) -> Value {
    json!({
        "resourceType": "Patient",
        "id": p.0,
        "name": [{"given": [p.1], "family": p.2}],
        "birthDate": p.3,
        "identifier": [{"system": "urn:example:mrn", "value": p.4}],
    })
}

fn outcome(status: u16, text: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/fhir+json")
        .json(json!({"resourceType": "OperationOutcome",
                     "issue": [{"severity": "error", "code": "security", "diagnostics": text}]}))
}

impl Shared {
    /// The introspection of the request's bearer token, if Gatehouse says it is active
    /// and for this server.
    async fn token(&self, req: &HttpRequest) -> Result<Value, HttpResponse> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| outcome(401, "no bearer token"))?;
        let answer: Value = self
            .http
            .post(format!("{}/introspect", self.gatehouse))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|_| outcome(502, "introspection failed"))?
            .json()
            .await
            .map_err(|_| outcome(502, "introspection failed"))?;
        self.seen.lock().unwrap().introspected.push(answer.clone());
        if answer["active"] != true || answer["aud"] != self.base.as_str() {
            return Err(outcome(401, "the token is not active for this server"));
        }
        Ok(answer)
    }
}

async fn metadata(shared: web::Data<Shared>) -> HttpResponse {
    let g = &shared.gatehouse;
    HttpResponse::Ok().content_type("application/fhir+json").json(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "date": "2026-12-07",
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": format!("{g}/authorize")},
                        {"url": "token", "valueUri": format!("{g}/token")},
                    ],
                }],
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                }]}],
            },
            "resource": [{"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]}],
        }],
    }))
}

/// Gatehouse's SMART configuration, served at the FHIR base as the spec puts it.
async fn smart_configuration(shared: web::Data<Shared>) -> HttpResponse {
    let doc: Value = shared
        .http
        .get(format!(
            "{}/.well-known/smart-configuration",
            shared.gatehouse
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    HttpResponse::Ok()
        .insert_header(("access-control-allow-origin", "*"))
        .json(doc)
}

/// `Patient?name=…`: for a token with a patient in context, that patient only.
async fn search(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let token = match shared.token(&req).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let name = query
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default();
    shared.seen.lock().unwrap().searches.push(name.clone());
    let entries: Vec<Value> = PATIENTS
        .iter()
        .filter(|p| token["patient"].as_str().is_none_or(|only| only == p.0))
        .filter(|p| format!("{} {}", p.1, p.2).to_lowercase().contains(&name))
        .map(|p| json!({"resource": patient(p)}))
        .collect();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .insert_header(("access-control-allow-origin", "*"))
        .json(json!({"resourceType": "Bundle", "type": "searchset",
                     "total": entries.len(), "entry": entries}))
}

/// `Patient/{id}`: a token with a patient in context reads that patient only.
async fn read(shared: web::Data<Shared>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let token = match shared.token(&req).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    if token["patient"]
        .as_str()
        .is_some_and(|only| only != id.as_str())
    {
        return outcome(403, "another patient is in context");
    }
    match PATIENTS.iter().find(|p| p.0 == id.as_str()) {
        Some(p) => HttpResponse::Ok()
            .content_type("application/fhir+json")
            .insert_header(("access-control-allow-origin", "*"))
            .json(patient(p)),
        None => outcome(404, "no such patient"),
    }
}

/// CORS for the browser app (the JavaScript client reads with its token).
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("access-control-allow-origin", "*"))
        .insert_header((
            "access-control-allow-headers",
            "authorization, accept, content-type",
        ))
        .insert_header(("access-control-allow-methods", "GET, OPTIONS"))
        .finish()
}

impl FhirFixture {
    /// Starts the server; it introspects at `gatehouse` as `client_id`/`client_secret`
    /// (a client registered with the introspection permission).
    pub async fn start(gatehouse: &str, client_id: &str, client_secret: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!(
            "http://127.0.0.1:{}/fhir",
            listener.local_addr().unwrap().port()
        );
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Shared {
            base: base.clone(),
            gatehouse: gatehouse.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            http: crate::oidc::rp_http(),
            seen: seen.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/fhir/metadata", web::get().to(metadata))
                .route(
                    "/fhir/.well-known/smart-configuration",
                    web::get().to(smart_configuration),
                )
                .route("/fhir/Patient", web::get().to(search))
                .route("/fhir/Patient/{id}", web::get().to(read))
                .default_service(
                    web::route()
                        .method(actix_web::http::Method::OPTIONS)
                        .to(preflight),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { base, seen }
    }
}
