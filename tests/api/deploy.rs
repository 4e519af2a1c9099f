//! The deployment files under `deploy/` are read by tools that cannot run here (Docker,
//! Kubernetes): these tests parse them, hold them to what DESIGN §2 and §14 promise, run
//! `systemd-analyze` on the unit, and check that every `GATEHOUSE_*` variable they set
//! is a setting the server's own parser accepts, so the files cannot drift from the code.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use gatehouse::config::{Config, ConfigError};
use serde::Deserialize;
use serde_norway::Value;

use crate::{
    cli::{gatehouse, serve_with, terminate},
    helpers::skip,
};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every file under `deploy/`, sorted, including dot files such as `.env.example`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("deploy/ exists") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// All documents of a (possibly multi-document) YAML file, with `<<` merge keys applied
/// as Docker Compose applies them.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: bad merge key: {e}", path.display()));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn kubernetes_documents() -> Vec<Value> {
    files_under(&deploy_dir().join("kubernetes"))
        .iter()
        .filter(|p| is_yaml(p))
        .flat_map(|p| yaml_documents(p))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A variable's value with no substitution left for a tool to do: `${…}` (Compose),
/// `<…>` (a template's placeholder) and `%x` (systemd specifiers) are filled in later.
fn is_literal(value: &str) -> bool {
    !(value.contains("${") || value.contains('<') || value.contains('%'))
}

/// Accepted by the configuration's own parser, exactly as `serve` would read it.
fn check_setting(name: &str, value: &str) -> Result<(), String> {
    match Config::default().apply_env([(name.to_owned(), value.to_owned())]) {
        Ok(()) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn is_known_setting(name: &str) -> bool {
    // The value is irrelevant: an unknown name fails before any value is parsed.
    !matches!(
        Config::default().apply_env([(name.to_owned(), String::new())]),
        Err(ConfigError::UnknownEnv { .. })
    )
}

/// Every `GATEHOUSE_…` token in a text, wherever it appears (YAML, env files, the unit,
/// the Dockerfile, the Caddyfile's comments).
fn gatehouse_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("GATEHOUSE_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].trim_end_matches('_').to_owned());
        rest = &tail[end..];
    }
    names
}

/// `NAME=value` lines of an env file (comments and blank lines skipped).
fn env_file_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn compose() -> Value {
    let docs = yaml_documents(&deploy_dir().join("docker-compose.yml"));
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

/// The Compose services that run the Gatehouse image, by name.
fn gatehouse_services(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| s["image"].as_str() == Some("gatehouse:local"))
        .map(|(n, s)| (n.as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let yaml: Vec<_> = files_under(&deploy_dir())
        .into_iter()
        .filter(|p| is_yaml(p))
        .collect();
    assert!(
        yaml.len() >= 6,
        "expected compose and Kubernetes files: {yaml:?}"
    );
    for path in &yaml {
        let docs = yaml_documents(path);
        assert!(!docs.is_empty(), "{} is empty", path.display());
        if path.starts_with(deploy_dir().join("kubernetes")) {
            for doc in &docs {
                for field in ["apiVersion", "kind"] {
                    assert!(doc[field].is_string(), "{}: no {field}", path.display());
                }
                if doc["kind"] != "Kustomization" {
                    assert!(
                        doc["metadata"]["name"].is_string(),
                        "{}: no metadata.name",
                        path.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_gatehouse_variable_in_deploy_is_a_setting_the_server_accepts() {
    let mut names = BTreeSet::new();
    let mut pairs: Vec<(String, String, String)> = Vec::new(); // (file, name, value)
    for path in files_under(&deploy_dir()) {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.display().to_string();
        names.extend(gatehouse_names(&text));
        let name = path.file_name().unwrap().to_str().unwrap();
        if is_yaml(&path) {
            for doc in yaml_documents(&path) {
                let mut maps = vec![doc["data"].clone()];
                if let Some(services) = doc["services"].as_mapping() {
                    maps.extend(services.values().map(|s| s["environment"].clone()));
                }
                for map in maps.iter().filter_map(Value::as_mapping) {
                    for (k, v) in map {
                        let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                            continue;
                        };
                        pairs.push((file.clone(), k.to_owned(), v.to_owned()));
                    }
                }
            }
        } else if name.ends_with(".env") || name.starts_with(".env") {
            for (k, v) in env_file_pairs(&text) {
                pairs.push((file.clone(), k, v));
            }
        } else if name.ends_with(".service") {
            for line in text.lines() {
                if let Some((k, v)) = line
                    .strip_prefix("Environment=")
                    .and_then(|kv| kv.split_once('='))
                {
                    pairs.push((file.clone(), k.to_owned(), v.to_owned()));
                }
            }
        }
    }
    // The scan found what the files are for, so an empty result cannot pass.
    for expected in [
        "GATEHOUSE_DATABASE_URL",
        "GATEHOUSE_REDIS_URL",
        "GATEHOUSE_MASTER_KEY",
        "GATEHOUSE_TRUSTED_PROXIES",
        "GATEHOUSE_DATA_DIR",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found in {names:?}"
        );
    }
    let unknown: Vec<_> = names.iter().filter(|n| !is_known_setting(n)).collect();
    assert!(
        unknown.is_empty(),
        "not settings of this server: {unknown:?}"
    );

    let mut checked = 0;
    let mut bad = Vec::new();
    for (file, name, value) in &pairs {
        if !name.starts_with("GATEHOUSE_") || !is_literal(value) {
            continue;
        }
        checked += 1;
        if let Err(e) = check_setting(name, value) {
            bad.push(format!("{file}: {e}"));
        }
    }
    assert!(checked >= 20, "only {checked} literal values were checked");
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn compose_runs_two_hardened_instances_that_believe_only_the_proxy() {
    let compose = compose();
    for service in ["postgres", "redis", "mailpit", "caddy"] {
        assert!(
            compose["services"][service].is_mapping(),
            "no {service} service"
        );
    }
    let instances = gatehouse_services(&compose);
    assert!(instances.len() >= 2, "{instances:?}");

    let proxy_ip: std::net::IpAddr =
        compose["services"]["caddy"]["networks"]["gatehouse"]["ipv4_address"]
            .as_str()
            .expect("the proxy has a fixed address")
            .parse()
            .unwrap();
    let caddyfile = std::fs::read_to_string(deploy_dir().join("caddy/Caddyfile")).unwrap();
    assert!(
        str_list(&compose["services"]["caddy"]["volumes"])
            .iter()
            .any(|v| v.starts_with("./caddy/Caddyfile:")),
        "the proxy reads deploy/caddy/Caddyfile"
    );

    let mut master_keys = BTreeSet::new();
    for (name, service) in &instances {
        assert_eq!(
            service["read_only"], true,
            "{name}: read-only root filesystem"
        );
        assert!(
            str_list(&service["cap_drop"]).contains(&"ALL".to_owned()),
            "{name}: capabilities dropped"
        );
        assert!(
            service["ports"].is_null(),
            "{name} is reached only through the proxy"
        );
        let env = &service["environment"];
        let mut config = Config::default();
        let literal = |key: &str| {
            let v = env[key]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no {key}"));
            assert!(is_literal(v), "{name}: {key} = {v}");
            v.to_owned()
        };
        config
            .apply_env([
                (
                    "GATEHOUSE_TRUSTED_PROXIES".to_owned(),
                    literal("GATEHOUSE_TRUSTED_PROXIES"),
                ),
                ("GATEHOUSE_BIND".to_owned(), literal("GATEHOUSE_BIND")),
            ])
            .unwrap();
        assert!(
            config.trusted_proxies.iter().any(|n| n.contains(&proxy_ip)),
            "{name} does not trust the proxy at {proxy_ip}"
        );
        assert!(
            !config
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&"172.30.0.20".parse::<std::net::IpAddr>().unwrap())),
            "{name} trusts the whole network, not just the proxy"
        );
        // The proxy forwards to this instance's listening port.
        let upstream = format!("{name}:{}", config.bind.port());
        assert!(
            caddyfile.contains(&upstream),
            "Caddyfile does not forward to {upstream}"
        );
        assert!(
            env["GATEHOUSE_DATABASE_URL"]
                .as_str()
                .is_some_and(|u| u.starts_with("postgres://")),
            "{name}: PostgreSQL"
        );
        assert!(
            env["GATEHOUSE_REDIS_URL"]
                .as_str()
                .is_some_and(|u| u.starts_with("redis://")),
            "{name}: Redis"
        );
        master_keys.insert(env["GATEHOUSE_MASTER_KEY"].as_str().unwrap().to_owned());
        // The data directory (the image's default) is a volume.
        assert!(
            str_list(&service["volumes"])
                .iter()
                .any(|v| v.ends_with(":/var/lib/gatehouse")),
            "{name}: data directory is a volume"
        );
    }
    assert_eq!(
        master_keys.len(),
        1,
        "every instance has the same master key"
    );
    let key = master_keys.into_iter().next().unwrap();
    assert!(
        key.starts_with("${") && key.contains(":?"),
        "the master key comes from deploy/.env and is required: {key}"
    );
    // The env file example names every secret the compose file requires, empty.
    let example = std::fs::read_to_string(deploy_dir().join(".env.example")).unwrap();
    let example = env_file_pairs(&example);
    let text = std::fs::read_to_string(deploy_dir().join("docker-compose.yml")).unwrap();
    for required in [
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "GATEHOUSE_MASTER_KEY",
    ] {
        assert!(text.contains(&format!("${{{required}:?")), "{required}");
        assert!(
            example.iter().any(|(k, v)| k == required && v.is_empty()),
            ".env.example lists {required} without a value"
        );
    }
}

#[test]
fn kubernetes_deployment_is_redundant_probed_and_locked_down() {
    let docs = kubernetes_documents();
    let deployments = kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let d = deployments[0];
    assert!(d["spec"]["replicas"].as_u64().unwrap() >= 2);
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for other in kind(&docs, "PodDisruptionBudget")
        .into_iter()
        .map(|p| &p["spec"]["selector"]["matchLabels"])
        .chain(
            kind(&docs, "Service")
                .into_iter()
                .map(|s| &s["spec"]["selector"]),
        )
    {
        let other = other.as_mapping().expect("a selector");
        for (k, v) in other {
            assert_eq!(
                &labels[k.as_str().unwrap()],
                v,
                "selector {k:?} matches the pods"
            );
        }
    }
    assert_eq!(kind(&docs, "PodDisruptionBudget").len(), 1);

    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert!(str_list(&sc["capabilities"]["drop"]).contains(&"ALL".to_owned()));
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][bound][resource].is_string(),
                "resources.{bound}.{resource}"
            );
        }
    }

    // The ConfigMap and Secret it reads exist, and the data directory is writable.
    let config_maps = kind(&docs, "ConfigMap");
    let secrets = kind(&docs, "Secret");
    let names = |v: &[&Value]| -> Vec<String> {
        v.iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for source in c["envFrom"].as_sequence().unwrap() {
        if let Some(n) = source["configMapRef"]["name"].as_str() {
            assert!(names(&config_maps).contains(&n.to_owned()), "ConfigMap {n}");
        }
        if let Some(n) = source["secretRef"]["name"].as_str() {
            assert!(names(&secrets).contains(&n.to_owned()), "Secret {n}");
        }
    }
    let data_dir = config_maps[0]["data"]["GATEHOUSE_DATA_DIR"]
        .as_str()
        .unwrap();
    let mounted = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == data_dir && m["readOnly"] != true);
    assert!(mounted, "{data_dir} is a writable volume");
    // The certificate files the ConfigMap names come from the mounted TLS secret.
    for key in ["GATEHOUSE_TLS_CERT", "GATEHOUSE_TLS_KEY"] {
        let path = Path::new(config_maps[0]["data"][key].as_str().unwrap());
        assert!(
            c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|m| path.starts_with(m["mountPath"].as_str().unwrap())),
            "{key} is on a mounted volume"
        );
    }
}

/// The unit as `systemd-analyze` sees it, with the binary path pointing at the real
/// binary so "not executable" is not the only thing checked.
fn unit_with_real_binary(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(deploy_dir().join("systemd/gatehouse.service")).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/gatehouse serve"));
    let path = dir.join("gatehouse.service");
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/gatehouse", env!("CARGO_BIN_EXE_gatehouse")),
    )
    .unwrap();
    path
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        return skip(
            "systemd_unit_verifies_and_is_sandboxed",
            "systemd-analyze not installed (package systemd)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_real_binary(dir.path());
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values, naming them on stderr only.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    // The check catches what it is for: a misspelt sandboxing key.
    let broken = dir.path().join("broken.service");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&unit)
            .unwrap()
            .replace("ProtectSystem=strict", "ProtectSystem=strictly"),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty(), "a bad value goes unnoticed");

    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gatehouse.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    // systemd rates 0–10; below 2 it calls a service "OK" (a network daemon cannot get to 0).
    assert!(exposure < 2.0, "exposure {exposure}:\n{text}");
}

#[test]
fn the_image_healthcheck_tells_a_live_server_from_a_dead_one() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/gatehouse", "healthcheck"]"#));

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
    let mut cmd = gatehouse(dir.path());
    cmd.env("GATEHOUSE_BIND", &bind);
    let (mut child, _, _) = serve_with(cmd);
    let check = || {
        gatehouse(dir.path())
            .env("GATEHOUSE_BIND", &bind)
            .args(["healthcheck", "--timeout-secs", "5"])
            .output()
            .unwrap()
    };
    // TLS with the generated certificate, checked under the issuer's name (localhost).
    let alive = check();
    assert!(
        alive.status.success(),
        "{}",
        String::from_utf8_lossy(&alive.stderr)
    );
    terminate(&mut child);
    let dead = check();
    assert!(!dead.status.success());
    assert!(
        String::from_utf8_lossy(&dead.stderr).contains("/healthz"),
        "{}",
        String::from_utf8_lossy(&dead.stderr)
    );
}
