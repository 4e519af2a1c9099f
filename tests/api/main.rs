//! Integration tests: a real server on a random port per test (`helpers::spawn_app`).

mod account;
mod admin;
mod admin_console;
mod audit;
mod audit_events;
mod browser;
mod build_prerequisites;
mod cli;
mod cli_admin;
mod deploy;
mod edge;
mod factor_lockout;
mod faults;
mod guard;
mod health;
mod helpers;
mod login;
mod mail;
mod oidc;
mod recovery;
mod saml;
mod saml_hostile;
mod saml_outbound;
mod storage;
mod tls;
mod totp;
