//! The dashboard at the top of `/admin`: the last day's sign-ins and failures in the
//! organisations the administrator sees, and what waits for someone now.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::admin::service::dashboard::{self as service, GlobalFigures};

/// What the dashboard shows, with the links from its figures.
pub(super) struct Dashboard {
    pub sign_ins: i64,
    pub failures: i64,
    pub locked: i64,
    pub emergency: i64,
    /// IP blocks and the outbox: a super administrator's only.
    pub global: Option<GlobalFigures>,
    /// The audit trail of the window's successful sign-ins, and of its failures.
    pub sign_ins_href: String,
    pub failures_href: String,
}

pub(super) async fn dashboard(state: &AppState, console: &Console) -> Result<Dashboard, AppError> {
    let figures = service::figures(state, &console.who)
        .await
        .said(&console.tr)?;
    let from = (state.clock.now() - service::WINDOW)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let trail = |event_type: EventType, outcome: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("type", event_type.as_str())
            .append_pair("outcome", outcome)
            .append_pair("from", &from)
            .finish();
        format!("/admin/audit?{query}")
    };
    Ok(Dashboard {
        sign_ins: figures.sign_ins,
        failures: figures.failures,
        locked: figures.locked,
        emergency: figures.emergency,
        global: figures.global,
        sign_ins_href: trail(EventType::SignInSucceeded, "success"),
        failures_href: trail(EventType::SignInFailed, "failure"),
    })
}
