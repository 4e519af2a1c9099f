//! The sign-in pipeline.

pub mod password;
