//! Integration tests: a real server on a random port per test (`helpers::spawn_app`).

mod cli;
mod health;
mod helpers;
mod storage;
mod tls;
