//! Checks that the system libraries Gatehouse links are installed, and names the packages
//! to install when one is not.
//!
//! The check itself is `.cargo/prerequisites`, which cargo runs as its rustc wrapper
//! before anything is compiled (`.cargo/config.toml`). A build script runs too late for
//! that: cargo schedules it after dependencies whose own build scripts fail first, and
//! less clearly ("Could not find libxml2", "Unable to find libclang"). This script only
//! covers builds that replaced the wrapper (`RUSTC_WRAPPER=sccache`, say), so that they
//! still end with the same list, if later.

use std::{env, path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.cargo/prerequisites");
    // The translations are embedded (src/i18n): a new language folder or file must
    // rebuild, not only a changed one.
    println!("cargo:rerun-if-changed=locales");
    for var in [
        "GATEHOUSE_SKIP_BUILD_PROBE",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "LIBCLANG_PATH",
        "OPENSSL_DIR",
        "PQ_LIB_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var("CARGO_CFG_TARGET_FAMILY").as_deref() != Ok("unix") {
        return;
    }
    let checked_already =
        env::var("RUSTC_WRAPPER").is_ok_and(|wrapper| wrapper.ends_with(".cargo/prerequisites"));
    if checked_already {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cargo/prerequisites");
    let Ok(out) = Command::new("sh").arg(&script).arg("--check").output() else {
        return; // no sh: nothing to say that the dependencies will not say themselves
    };
    if !out.status.success() {
        panic!("{}", String::from_utf8_lossy(&out.stderr));
    }
}
