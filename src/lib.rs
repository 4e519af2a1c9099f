//! Gatehouse: an identity provider for clinical software (OpenID Connect and SAML 2.0).
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod ephemeral;
pub mod i18n;
pub mod keys;
pub mod mail;
pub mod oidc;
pub mod pages;
pub mod saml;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod time_sync;
pub mod web;
