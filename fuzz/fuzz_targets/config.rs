#![no_main]
//! The configuration: a TOML file, then `GATEHOUSE_*` variables (the lines after a
//! `%%` line, `NAME=value`), then the checks; `config check` output never shows a
//! secret.

use std::path::Path;

use gatehouse::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, env) = text.split_once("\n%%\n").unwrap_or((&text, ""));
    let Ok(mut config) = Config::from_toml_str(file, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = config.validate();
    let _ = config.redacted_toml();
    let vars = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    if config.apply_env(vars).is_ok() {
        let _ = config.validate();
    }
});
