//! What a new user must install before the README's first command, said in four places
//! that must agree: the README's Debian install line, the build list in `.ci/run`, the
//! builder stage of `deploy/Dockerfile`, and the Debian names `.cargo/prerequisites`
//! prints when a library is missing. CI installing something the README does not name is how a green
//! CI once hid a README whose first command failed on every fresh machine.

use std::{collections::BTreeSet, path::Path};

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .filter(|w| *w != "\\")
        .map(str::to_owned)
        .collect()
}

/// The packages of the README's Debian line in "The two commands".
fn readme_build_packages() -> BTreeSet<String> {
    let readme = read("README.md");
    let section = readme
        .split("## The two commands")
        .nth(1)
        .expect("README has \"The two commands\"");
    let line = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("sudo apt-get install "))
        .expect("the section starts with the Debian install line");
    words(line)
}

/// A bash array `name=(…)` from `.ci/run`, across lines.
fn ci_array(name: &str) -> BTreeSet<String> {
    let ci = read(".ci/run");
    let start = ci
        .find(&format!("\n{name}=("))
        .unwrap_or_else(|| panic!(".ci/run defines {name}"));
    let rest = &ci[start + name.len() + 3..];
    let end = rest.find(')').expect("the array is closed");
    words(&rest[..end])
}

/// The packages the Dockerfile's builder stage installs.
fn dockerfile_build_packages() -> BTreeSet<String> {
    let dockerfile = read("deploy/Dockerfile");
    let builder = dockerfile
        .split("AS builder")
        .nth(1)
        .expect("a builder stage")
        .split("\nFROM ")
        .next()
        .unwrap();
    let install = builder
        .split("--no-install-recommends")
        .nth(1)
        .expect("the builder installs packages");
    let list = install.split("&&").next().unwrap();
    words(list)
}

/// The Debian names `.cargo/prerequisites` tells the user to install: the second
/// argument of each `need` call.
fn probe_packages() -> BTreeSet<String> {
    let script = read(".cargo/prerequisites");
    let mut names = BTreeSet::new();
    let mut rest = script.as_str();
    while let Some(at) = rest.find("need \"") {
        let call = &rest[at + 6..];
        let after_what = &call[call.find('"').expect("closed")..][1..];
        let package = after_what
            .split_whitespace()
            .next()
            .expect("a Debian package follows");
        names.insert(package.to_owned());
        rest = after_what;
    }
    names
}

#[test]
fn the_readme_lists_exactly_the_build_packages_ci_installs() {
    let readme = readme_build_packages();
    assert!(readme.contains("libclang-dev"), "{readme:?}");
    assert_eq!(readme, ci_array("build_packages"));
}

#[test]
fn the_dockerfile_builds_with_the_readme_list_from_a_bare_image() {
    assert_eq!(dockerfile_build_packages(), readme_build_packages());
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains("-slim-${DEBIAN_RELEASE} AS builder"),
        "the builder starts from an image without -dev packages of its own"
    );
    assert!(
        dockerfile.contains(".cargo"),
        "the probe (.cargo/prerequisites) is in the image"
    );
}

#[test]
fn the_build_probe_names_every_library_of_the_readme_list() {
    let mut expected = readme_build_packages();
    // The C compiler is what rustup needs anyway; there is no library to probe.
    expected.remove("build-essential");
    assert_eq!(probe_packages(), expected);
}

fn probe(path_dirs: &str, pkg_config_libdir: &str) -> std::process::Output {
    std::process::Command::new("/bin/sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".cargo/prerequisites"))
        .arg("--check")
        .env("PATH", path_dirs)
        .env("PKG_CONFIG_LIBDIR", pkg_config_libdir)
        .env_remove("PKG_CONFIG_PATH")
        .env_remove("OPENSSL_DIR")
        .env_remove("PQ_LIB_DIR")
        .env_remove("GATEHOUSE_SKIP_BUILD_PROBE")
        .output()
        .expect("sh runs")
}

#[test]
fn a_missing_library_stops_the_build_naming_the_package() {
    // pkg-config that looks nowhere: every library it finds is "missing".
    let empty = tempfile::tempdir().unwrap();
    let out = probe("/usr/bin:/bin", empty.path().to_str().unwrap());
    if String::from_utf8_lossy(&out.stderr).contains("  - pkg-config") {
        crate::helpers::skip(
            "a_missing_library_stops_the_build_naming_the_package",
            "no pkg-config on this machine",
        );
        return;
    }
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    for package in [
        "libssl-dev",
        "libpq-dev",
        "libsqlite3-dev",
        "libxml2-dev",
        "libxmlsec1-dev",
    ] {
        assert!(said.contains(package), "{package} not named in:\n{said}");
    }
    assert!(said.contains("sudo apt-get install"), "{said}");
    assert!(said.contains("sudo dnf install"), "{said}");
}

#[test]
fn without_pkg_config_the_probe_says_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    // sh itself must still be found: run it by absolute path, with a PATH that has no
    // pkg-config in it.
    let out = probe(empty.path().to_str().unwrap(), "/nonexistent");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("  - pkg-config"), "{said}");
    assert!(said.contains("apt-get install pkg-config"), "{said}");
}

#[test]
fn cargo_runs_the_probe_before_compiling_anything() {
    let config = read(".cargo/config.toml");
    assert!(
        config.contains("rustc-wrapper = \".cargo/prerequisites\""),
        "{config}"
    );
}

#[test]
fn test_only_packages_are_named_apart_in_the_readme() {
    let readme = read("README.md");
    let paragraph = readme
        .split("for the tests only")
        .nth(1)
        .expect("the README names the test-only packages")
        .split("\n\n")
        .next()
        .unwrap();
    let named: BTreeSet<String> = paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(words)
        .collect();
    let tests = ci_array("test_packages");
    assert!(
        tests.is_subset(&named),
        "not named: {:?}",
        tests.difference(&named).collect::<Vec<_>>()
    );
    assert!(tests.is_disjoint(&ci_array("build_packages")));
}
