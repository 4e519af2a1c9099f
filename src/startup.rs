//! Builds the shared state, runs actix-web on rustls, and stops gracefully.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};

mod certificate;
mod keys;
mod master_key;

use certificate::certificate_paths;
pub use keys::{keep_retired, reload_saml_keys};
use keys::{load_keys, load_saml_keys, spawn_key_reloader, spawn_next_keys};
use master_key::{follow_master_key, not_this_database};
pub use master_key::{load_master_key, persist_rotated_key, reseal_tls_key, rotation_target};

use crate::{
    admin,
    audit::{AnchorTargets, AnchorWorker, Anchoring, Audit, AuditError},
    auth::{guard::Guard, hashing::HashingPool, password::Hasher, session::SessionListeners},
    bootstrap::{self, FirstAdmin},
    clock::{SharedClock, SystemClock},
    config::{Config, redacted},
    crypto::{MasterKey, signing::Keys},
    ephemeral::{Ephemeral, MemoryStore, RedisStore},
    keys::master::Follower,
    mail::{MailWorker, Mailer},
    oidc, pages, saml,
    store::{Pii, Store},
    telemetry::Metrics,
    web::{self as gw, error::bad_input},
};

/// Everything a request handler may use. One per running application.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// Seals and opens users' personal fields and password hashes (DESIGN §12).
    pub pii: Pii,
    pub ephemeral: Arc<dyn Ephemeral>,
    pub master_key: Arc<MasterKey>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    pub hashing: HashingPool,
    pub guard: Guard,
    /// The audit trail every capability records into (DESIGN §11).
    pub audit: Audit,
    /// Anchors of the audit chain's head outside the database (`audit_anchor_*`).
    pub anchoring: Arc<Anchoring>,
    /// Whether the system clock is synchronised, as the OS last said (`/readyz`).
    pub time_sync: Arc<crate::time_sync::TimeSync>,
    pub mailer: Mailer,
    /// Token signing keys (DESIGN §9), reloaded to follow rotations.
    pub keys: Arc<Keys>,
    /// The SAML signing keys (DESIGN §10), reloaded with the token keys.
    pub saml_keys: Arc<crate::saml::keys::SamlKeys>,
    /// Client rows for the token endpoints, trusted for a couple of seconds.
    pub clients: Arc<crate::oidc::client_cache::ClientCache>,
    /// The keys clients publish at their `jwks_uri`, as last read.
    pub client_keys: Arc<crate::oidc::client_keys::ClientKeyCache>,
    /// The OpenID Provider's discovery document, serialised once.
    pub discovery: Arc<crate::oidc::discovery::Published>,
    /// How each door that starts sign-ins answers them once finished (DESIGN §1).
    pub sign_in_answers: Arc<pages::login::SignInAnswers>,
    /// Who hears that an SSO session ended: the protocols (DESIGN §1, §8).
    pub session_listeners: Arc<SessionListeners>,
    /// This instance's upstream identity providers' discovery (DESIGN §16).
    pub upstreams: Arc<crate::auth::upstream::UpstreamCache>,
    /// The WebAuthn relying party the issuer is (DESIGN §17), if it can be one.
    pub passkeys: Arc<crate::auth::passkey::RelyingParty>,
    /// What this instance has seen of a master-key rotation (`keys::master`).
    pub master_key_follower: tokio::sync::Mutex<Follower>,
}

/// The composition root of the layering (DESIGN §1): the sign-in core and sessions know
/// no protocol; here each door registers how it answers a finished sign-in, and each
/// protocol subscribes to sessions ending.
fn protocol_hooks() -> (pages::login::SignInAnswers, SessionListeners) {
    let mut answers = pages::login::SignInAnswers::default();
    answers.register(
        pages::account::RESUME,
        Arc::new(pages::account::ToAccountPage),
    );
    answers.register(
        pages::account::PASSKEYS_RESUME,
        Arc::new(pages::account::ToPasskeysPage),
    );
    answers.register(admin::console::RESUME, Arc::new(admin::console::ToConsole));
    answers.register(
        oidc::authorize::RESUME,
        Arc::new(oidc::authorize::IssueCode),
    );
    answers.register(saml::sso::RESUME, Arc::new(saml::sso::RespondToSp));
    let mut listeners = SessionListeners::default();
    // SAML first: it records which SPs could not be told while the session's list of
    // them is still there; then OIDC revokes the grants and sends back-channel logout.
    listeners.subscribe(Arc::new(saml::logout_chain::RecordUntold));
    listeners.subscribe(Arc::new(oidc::logout::RevokeGrants));
    // A session's end ends its emergency window (DESIGN §15), which OIDC is then told of.
    listeners.subscribe(crate::auth::emergency::session_listener());
    (answers, listeners)
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("redis_url: {0}")]
    Ephemeral(#[from] crate::ephemeral::EphemeralError),
    #[error("{0}")]
    MasterKey(String),
    #[error("{0}")]
    Tls(#[from] gw::tls::TlsError),
    #[error("{0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Mail(#[from] crate::mail::MailError),
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
}

/// A built, not yet running, application.
pub struct Application {
    local_addr: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    first_admin: Option<FirstAdmin>,
    mail_worker: MailWorker,
    /// Anchors the audit chain's head every `audit_anchor_secs`; `None` when 0.
    anchor_worker: Option<AnchorWorker>,
    tls: Option<Arc<gw::tls::ReloadingCert>>,
    /// The internal `/metrics` listener (`metrics_bind`), if configured.
    metrics: Option<(SocketAddr, Server)>,
    /// Makes the next signing keys, after start-up ([`spawn_next_keys`]).
    next_keys: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with a clock tests can move.
    pub async fn build_with_clock(
        config: Config,
        clock: SharedClock,
    ) -> Result<Self, StartupError> {
        // The master key before anything else: a wrong passphrase stops start-up with
        // nothing bound, created or migrated (issue 27).
        let master_key = load_master_key(&config)?;
        let listener = std::net::TcpListener::bind(config.bind).map_err(|e| StartupError::Io {
            what: format!("bind {}", config.bind),
            reason: e.to_string(),
        })?;
        Self::build_on_with_key(listener, config, clock, master_key).await
    }

    /// As `build_with_clock`, on a listener the caller already bound (tests bind first so
    /// the issuer can name the real port).
    pub async fn build_on(
        listener: std::net::TcpListener,
        config: Config,
        clock: SharedClock,
    ) -> Result<Self, StartupError> {
        let master_key = load_master_key(&config)?;
        Self::build_on_with_key(listener, config, clock, master_key).await
    }

    async fn build_on_with_key(
        listener: std::net::TcpListener,
        config: Config,
        clock: SharedClock,
        master_key: MasterKey,
    ) -> Result<Self, StartupError> {
        // Bound before anything starts, so a taken metrics port stops start-up.
        let metrics_io = |e: std::io::Error| StartupError::Io {
            what: "metrics_bind".into(),
            reason: e.to_string(),
        };
        let metrics_listener = gw::metrics::bind(&config).map_err(metrics_io)?;
        let laps = Laps::new();
        let state = build_state_with_key(config, clock, master_key).await?;
        let first_admin = bootstrap::ensure_first_start(
            &state.store,
            &state.pii,
            state.hashing.hasher(),
            &state.config,
            state.clock.as_ref(),
        )
        .await?;
        if let Some(admin) = &first_admin {
            bootstrap::record_first_admin(&state.audit, admin).await?;
        }
        laps.lap("first administrator");
        let config = state.config.clone();
        let state = web::Data::new(state);
        spawn_key_reloader(&state);
        spawn_master_key_follower(&state);
        spawn_token_janitor(&state);
        spawn_metadata_refresher(&state);
        spawn_emergency_sweeper(&state);
        spawn_time_sync_refresher(&state);
        let local_addr = listener.local_addr().map_err(|e| StartupError::Io {
            what: "bind".into(),
            reason: e.to_string(),
        })?;

        let app_state = state.clone();
        let routes_config = config.clone();
        let http = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(gw::error::log_unavailable))
                .wrap(from_fn(gw::pages::speak_error_pages))
                .wrap(from_fn(gw::context))
                .configure(|cfg| configure(cfg, &routes_config))
        })
        .shutdown_timeout(config.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(10))
        // With Nagle's algorithm on, a new TLS connection's first answer waited about
        // 40 ms behind the session tickets for the client's delayed ACK (signin_flows).
        .tcp_nodelay(true);

        let mut tls = None;
        let http = if config.tls {
            let (cert, key) = certificate_paths(&config, &state.master_key)?;
            let serving = Arc::new(gw::tls::ReloadingCert::load(
                &cert,
                &key,
                state.master_key.clone(),
            )?);
            tls = Some(serving.clone());
            http.listen_rustls_0_23(listener, gw::tls::server_config(serving)?)
        } else {
            http.listen(listener)
        }
        .map_err(|e| StartupError::Io {
            what: format!("listen on {local_addr}"),
            reason: e.to_string(),
        })?;

        laps.lap("listening");
        let next_keys = Some(spawn_next_keys(&state));
        spawn_rate_limit_housekeeping(&state);

        let metrics = metrics_listener
            .map(|listener| gw::metrics::serve(listener, state.clone()))
            .transpose()
            .map_err(metrics_io)?;

        // Started last: nothing above can fail after it, so no worker outlives a failed build.
        let mail_worker = state.mailer.spawn_worker();
        let anchor_worker = (config.audit_anchor_secs > 0).then(|| {
            state
                .anchoring
                .clone()
                .spawn(Duration::from_secs(config.audit_anchor_secs))
        });

        Ok(Self {
            local_addr,
            server: http.run(),
            state,
            first_admin,
            mail_worker,
            anchor_worker,
            tls,
            metrics,
            next_keys,
        })
    }

    /// Waits until the next signing keys, made once the server serves, are published
    /// and loaded (for tests and benchmarks that count the published keys).
    pub async fn next_keys_published(&mut self) {
        if let Some(making) = self.next_keys.take() {
            let _ = making.await;
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the internal `/metrics` listener is, when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The first administrator's one-time password, if this start created one. Taken
    /// once: the caller shows it and it is gone.
    pub fn take_first_admin(&mut self) -> Option<FirstAdmin> {
        self.first_admin.take()
    }

    /// The serving certificate, to reload on SIGHUP; `None` when TLS is off.
    pub fn tls_certificate(&self) -> Option<Arc<gw::tls::ReloadingCert>> {
        self.tls.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until SIGTERM/SIGINT (graceful: in-flight requests finish, then the mail
    /// worker finishes the delivery it is in).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // The metrics listener has no signal handling of its own: it stops with this one.
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        let grace = Duration::from_secs(self.state.config.shutdown_timeout_secs);
        // Before the mail worker: the final anchor may queue a webhook.
        if let Some(anchors) = self.anchor_worker {
            anchors.stop(grace).await;
        }
        self.mail_worker.stop(grace).await;
        result
    }
}

/// Opens the data directory, the master key, the database (migrated) and the ephemeral store.
/// Start-up's phases, timed from the first (`RUST_LOG`/`log_level` debug shows them).
struct Laps(std::time::Instant);

impl Laps {
    fn new() -> Self {
        Self(std::time::Instant::now())
    }

    fn lap(&self, phase: &str) {
        let ms = self.0.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(phase, ms, "start-up");
    }
}

/// How often spent refresh tokens and grants are purged (`grants::purge`) and lapsed
/// sessions swept (`logout::sweep_lapsed_sessions`, `saml::lapsed::sweep_lapsed_sessions`).
const TOKEN_JANITOR_EVERY: Duration = Duration::from_secs(600);

/// Purges spent refresh tokens and grants now and then, so those tables hold what is
/// live rather than everything ever issued, and ends the grants of SSO sessions that ran
/// out unnoticed (with back-channel logout) and tells their SOAP SPs; stops when the
/// application is dropped.
/// Every instance does it; the deletes are idempotent, and a grant is revoked (and its
/// client told) by one instance only.
fn spawn_token_janitor(state: &web::Data<AppState>) {
    let weak = Arc::downgrade(&state.clone().into_inner());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TOKEN_JANITOR_EVERY).await;
            let Some(state) = weak.upgrade() else { return };
            let now = state.clock.now().naive_utc();
            let lifetime = chrono::Duration::seconds(
                i64::try_from(state.config.access_token_secs).unwrap_or(i64::MAX / 4),
            );
            match state
                .store
                .run(move |c| crate::store::grants::purge(c, now, lifetime))
                .await
            {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "purged spent tokens and grants"),
                Err(e) => tracing::warn!(error = %e, "token purge failed; will try again"),
            }
            match crate::oidc::logout::sweep_lapsed_sessions(&state).await {
                Ok(0) => {}
                Ok(sessions) => tracing::info!(sessions, "ended the grants of lapsed sessions"),
                Err(e) => tracing::warn!(error = %e, "session sweep failed; will try again"),
            }
            match crate::saml::lapsed::sweep_lapsed_sessions(&state).await {
                Ok(0) => {}
                Ok(logouts) => tracing::info!(logouts, "queued SOAP logouts of lapsed sessions"),
                Err(e) => tracing::warn!(error = %e, "SAML session sweep failed; will try again"),
            }
        }
    });
}

/// Ends emergency windows that ran out (DESIGN §15) and mails overdue reviews; every
/// instance does it, and each window is ended (and announced) by one only. Stops when
/// the application is dropped.
fn spawn_emergency_sweeper(state: &web::Data<AppState>) {
    let weak = Arc::downgrade(&state.clone().into_inner());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(crate::auth::emergency::SWEEP_EVERY).await;
            let Some(state) = weak.upgrade() else { return };
            match crate::auth::emergency::sweep(&state).await {
                Ok(0) => {}
                Ok(ended) => tracing::info!(ended, "ended lapsed emergency windows"),
                Err(e) => tracing::warn!(error = %e, "emergency sweep failed; will try again"),
            }
        }
    });
}

/// Fetches the metadata of URL-imported SPs again when due (issue 24 item 6), every
/// `saml_metadata_refresh_secs` (0: never on a schedule). Instances claim each due SP in
/// the database, so one fetches it; stops when the application is dropped.
fn spawn_metadata_refresher(state: &web::Data<AppState>) {
    let every = state.config.saml_metadata_refresh_secs;
    if every == 0 {
        return;
    }
    let weak = Arc::downgrade(&state.clone().into_inner());
    // Looks often enough that a due refresh (set by cacheDuration too) is not late.
    let poll = Duration::from_secs(every.clamp(1, 60));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(poll).await;
            let Some(state) = weak.upgrade() else { return };
            if let Err(e) = saml::metadata_refresh::refresh_due(&state).await {
                tracing::warn!(error = %e, "SP metadata refresh pass failed; will try again");
            }
        }
    });
}

/// How often the OS is asked again whether the clock is synchronised.
const TIME_SYNC_EVERY: Duration = Duration::from_secs(60);

/// Asks the OS whether the clock is synchronised, at once and then every minute;
/// stops when the application is dropped.
fn spawn_time_sync_refresher(state: &web::Data<AppState>) {
    let weak = Arc::downgrade(&state.clone().into_inner());
    tokio::spawn(async move {
        loop {
            let Some(state) = weak.upgrade() else { return };
            state.time_sync.refresh().await;
            drop(state);
            tokio::time::sleep(TIME_SYNC_EVERY).await;
        }
    });
}

/// Looks for a master-key rotation every `master_key_poll_secs` and keeps this
/// instance's key ring in step with it (`keys::master`); stops when the application is
/// dropped.
fn spawn_master_key_follower(state: &web::Data<AppState>) {
    let weak = Arc::downgrade(&state.clone().into_inner());
    let every = Duration::from_secs(state.config.master_key_poll_secs.max(1));
    tokio::spawn(async move {
        // The TLS key file is looked at only when the sealing key changes, not every poll.
        let mut sealing = None;
        loop {
            tokio::time::sleep(every).await;
            let Some(state) = weak.upgrade() else { return };
            let mut follower = state.master_key_follower.lock().await;
            if let Err(e) = follower.sync(&state.store, &state.master_key).await {
                tracing::warn!(error = %e, "master key rotation not followed; will try again");
            }
            drop(follower);
            // Once this instance seals under a new key, so does its TLS key file: a
            // restart after the rotation must still open it.
            let now_sealing = state.master_key.sealing_kid();
            if sealing.as_ref() == Some(&now_sealing) {
                continue;
            }
            match reseal_tls_key(&state.config, &state.master_key) {
                Ok(resealed) => {
                    if resealed {
                        tracing::info!("re-sealed the TLS private key under the new master key");
                    }
                    sealing = Some(now_sealing);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS private key not re-sealed; will try again")
                }
            }
        }
    });
}

/// Request limits and every route: the doors of DESIGN §2's public URL table.
fn configure(cfg: &mut web::ServiceConfig, config: &Config) {
    cfg.app_data(web::PayloadConfig::new(64 * 1024))
        .app_data(
            web::FormConfig::default()
                .limit(16 * 1024)
                .error_handler(bad_input),
        )
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(bad_input),
        )
        .app_data(web::QueryConfig::default().error_handler(bad_input))
        .app_data(web::PathConfig::default().error_handler(bad_input))
        // actix tries routes in this order, one by one (a pattern with a variable by a
        // regex): what relying parties and probes call most comes first.
        .configure(gw::ops::routes)
        .configure(crate::oidc::routes)
        .configure(|cfg| gw::metrics::public_routes(cfg, config))
        .configure(gw::pages::static_routes)
        .configure(crate::pages::login::routes)
        .configure(crate::pages::account::routes)
        .configure(crate::oidc::logout::routes)
        .configure(crate::admin::routes)
        .configure(crate::saml::routes)
        .configure(crate::pages::recovery::routes)
        .configure(crate::pages::branding::routes)
        .default_service(web::to(gw::error::not_found));
}

/// Per-IP rate-limit state for addresses gone quiet is dropped, bounding memory.
fn spawn_rate_limit_housekeeping(state: &web::Data<AppState>) {
    let housekeeping = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            housekeeping.guard.shrink();
        }
    });
}

/// Redis when configured (shared by every instance), else in-process memory.
async fn open_ephemeral(config: &Config) -> Result<Arc<dyn Ephemeral>, StartupError> {
    Ok(match &config.redis_url {
        Some(url) => {
            let timeout = config.redis_timeout();
            let connect = |url, prefix| RedisStore::connect_with_timeout(url, prefix, timeout);
            let store = connect(url.as_str(), &config.redis_key_prefix)
                .await
                .map_err(|e| {
                    crate::ephemeral::EphemeralError::Unavailable(format!(
                        "{} ({})",
                        e,
                        redacted(url)
                    ))
                })?;
            Arc::new(store)
        }
        None => Arc::new(MemoryStore::new()),
    })
}

pub async fn build_state(config: Config, clock: SharedClock) -> Result<AppState, StartupError> {
    let master_key = load_master_key(&config)?;
    build_state_with_key(config, clock, master_key).await
}

async fn build_state_with_key(
    config: Config,
    clock: SharedClock,
    master_key: MasterKey,
) -> Result<AppState, StartupError> {
    let laps = Laps::new();
    ensure_private_dir(&config.data_dir)?;
    let master_key = Arc::new(master_key);
    let store = open_store(&config).await?;
    laps.lap("store");
    let follower = follow_master_key(&store, &master_key).await?;
    let audit = Audit::open(store.clone(), &master_key, clock.clone())
        .await
        .map_err(|e| not_this_database(e, &master_key, &config))?
        .with_retention(config.audit_retention_days);
    laps.lap("audit");
    let pii = open_pii(&store, &master_key, &clock).await?;
    let ephemeral = open_ephemeral(&config).await?;
    laps.lap("pii and ephemeral");
    let hasher = Hasher::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
    )
    .map_err(|e| StartupError::MasterKey(format!("argon2_memory_kib: {e}")))?;
    let metrics = Arc::new(Metrics::new());
    audit.register_metrics(&metrics);
    let workers = config
        .hashing_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let hashing = async {
        let metrics = metrics.clone();
        let queue = config.hashing_queue;
        tokio::task::spawn_blocking(move || HashingPool::new(hasher, workers, queue, &metrics))
            .await
            .map_err(|e| StartupError::MasterKey(e.to_string()))?
            .map_err(|e| StartupError::MasterKey(format!("argon2_memory_kib: {e}")))
    };
    // The hashing pool's first hash and the keys (made on a first start, opened on a
    // restart) at the same time, on every core.
    let (hashing, ring, saml_keys) = tokio::try_join!(
        hashing,
        load_keys(&config, &store, &master_key, &clock),
        load_saml_keys(&config, &store, &master_key, &clock),
    )?;
    let keys = Arc::new(Keys::new(ring));
    laps.lap("hashing pool and signing keys");
    let guard = Guard::new(&config, &metrics);
    let mailer = Mailer::new(
        &config,
        store.clone(),
        clock.clone(),
        master_key.clone(),
        &metrics,
    )?;
    let anchoring = Arc::new(Anchoring::new(
        audit.clone(),
        AnchorTargets {
            file: config.audit_anchor_path(),
            syslog: config
                .audit_anchor_syslog
                .then(|| crate::audit::SYSLOG_SOCKET.into()),
            mailer: Some(mailer.clone()),
            instance: crate::audit::instance_name(),
        },
    ));
    let time_sync = Arc::new(crate::time_sync::TimeSync::new(
        crate::time_sync::Probe::default(),
        &metrics,
    ));
    let (sign_in_answers, session_listeners) = protocol_hooks();
    let state = AppState {
        sign_in_answers: Arc::new(sign_in_answers),
        session_listeners: Arc::new(session_listeners),
        upstreams: Arc::default(),
        client_keys: Arc::default(),
        discovery: Arc::default(),
        passkeys: Arc::new(crate::auth::passkey::RelyingParty::for_issuer(
            &config.issuer,
        )),
        saml_keys: Arc::new(saml_keys),
        keys,
        guard,
        mailer,
        config: Arc::new(config),
        store,
        pii,
        ephemeral,
        master_key,
        clock,
        metrics,
        hashing,
        audit,
        anchoring,
        time_sync,
        clients: Arc::default(),
        master_key_follower: tokio::sync::Mutex::new(follower),
    };
    protocol_couriers(&state);
    Ok(state)
}

/// The protocols' back-channel logouts go through the durable outbox (issue 24 item 5):
/// each protocol builds and sends its own message, the outbox retries it.
fn protocol_couriers(state: &AppState) {
    use crate::store::outbox::{KIND_OIDC_BACKCHANNEL_LOGOUT, KIND_SAML_SOAP_LOGOUT};
    state.mailer.register_courier(
        KIND_OIDC_BACKCHANNEL_LOGOUT,
        Arc::new(oidc::logout::BackChannelLogout::new(state)),
    );
    state.mailer.register_courier(
        KIND_SAML_SOAP_LOGOUT,
        Arc::new(saml::soap::SoapLogout::new(state)),
    );
}

/// The key to users' personal data, and the data migration of issue 27: rows an
/// earlier release wrote in clear are sealed before anything else reads them.
async fn open_pii(
    store: &Store,
    master_key: &Arc<MasterKey>,
    clock: &SharedClock,
) -> Result<Pii, StartupError> {
    let now = clock.now().naive_utc();
    let pii = crate::keys::pii::load(store, master_key.clone(), now)
        .await
        .map_err(|e| StartupError::MasterKey(format!("personal data key: {e}")))?;
    let sealed =
        crate::store::pii::seal_legacy(store, &pii, crate::store::pii::LEGACY_BATCH).await?;
    if sealed.any() {
        tracing::info!(
            users = sealed.users,
            password_history = sealed.password_history,
            outbox = sealed.outbox,
            "sealed personal data an earlier release stored in clear"
        );
    }
    Ok(pii)
}

/// Just the audit trail, for `gatehouse audit …`: no hashing pool, no Redis.
pub async fn open_audit(config: &Config, clock: SharedClock) -> Result<Audit, StartupError> {
    let master_key = load_master_key(config)?;
    ensure_private_dir(&config.data_dir)?;
    let store = open_store(config).await?;
    follow_master_key(&store, &master_key).await?;
    Ok(Audit::open(store, &master_key, clock)
        .await
        .map_err(|e| not_this_database(e, &master_key, config))?
        .with_retention(config.audit_retention_days))
}

/// Connects and migrates; used by `serve` and `migrate`.
pub async fn open_store(config: &Config) -> Result<Store, StartupError> {
    let target = config.database_target()?;
    // Issue 27: said at every start, so nobody runs this way without knowing.
    if let Some(url) = &config.database_url
        && !config.database_require_tls
    {
        let hosts = crate::config::postgres_unverified_hosts(url);
        if !hosts.is_empty() && matches!(target, crate::config::DatabaseTarget::Postgres(_)) {
            tracing::warn!(hosts = %hosts.join(","), "PostgreSQL is reached off this host without verified TLS (database_require_tls = false): add sslmode=verify-full");
        }
    }
    let (pool_size, deadlines) = (config.database_pool_size, config.database_deadlines());
    let connect = move |target: &_, size| Store::connect_bounded(target, size, deadlines);
    let store = tokio::task::spawn_blocking(move || connect(&target, pool_size))
        .await
        .map_err(|e| StartupError::Io {
            what: "database".into(),
            reason: e.to_string(),
        })??;
    let applied = store.migrate().await?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied database migrations");
    }
    Ok(store)
}

pub(super) fn ensure_private_dir(dir: &Path) -> Result<(), StartupError> {
    let io = |e: std::io::Error| StartupError::Io {
        what: format!("data_dir {}", dir.display()),
        reason: e.to_string(),
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    Ok(())
}
