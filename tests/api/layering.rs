//! DESIGN §1, "capabilities below, doors above", checked on the source: the sign-in
//! core, sessions and the domain never name a protocol or the admin doors, and the
//! lowest layers (crypto, store, domain) name no capability at all. A reader can then
//! change a protocol without touching sign-in, and add a way to sign in without
//! touching a protocol. The README's architecture table says the same in prose.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The top-level modules of `src/`.
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .expect("src/ lists")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let name = name.strip_suffix(".rs").map(str::to_owned).unwrap_or(name);
            (name != "main" && name != "lib").then_some(name)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_owned());
        return;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit tests (which may use
/// anything to set up a case).
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module a file's code names through `crate::`, including each item of
/// a `use crate::{a, b::{c}}` group.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        named.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            named.insert(first_segment(&item));
        } else {
            named.insert(first_segment(rest));
        }
    }
    named
}

fn first_segment(path: &str) -> String {
    path.trim()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `(file, module it names)` for every file under `src/<dir>` naming one of `forbidden`.
fn violations(dir: &str, forbidden: &[&str]) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    for f in forbidden {
        assert!(
            known.contains(*f),
            "src/ has no module {f}: update this test"
        );
    }
    let mut files = Vec::new();
    let base = src.join(dir);
    if base.is_dir() {
        rust_files(&base, &mut files);
    } else {
        rust_files(&src.join(format!("{dir}.rs")), &mut files);
    }
    assert!(!files.is_empty(), "src/{dir} has no Rust files");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source reads");
        for name in named_modules(&code(&text)) {
            if forbidden.contains(&name.as_str()) {
                let rel = file
                    .strip_prefix(&src)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                found.push((rel, name));
            }
        }
    }
    found
}

#[test]
fn the_sign_in_core_sessions_and_domain_know_no_protocol_and_no_admin_door() {
    for dir in ["auth", "domain", "pages"] {
        let found = violations(dir, &["oidc", "saml", "admin"]);
        assert!(found.is_empty(), "src/{dir} names a door: {found:?}");
    }
}

/// The capabilities, each of which answers in its own error enum and knows no HTTP: the
/// doors (`web::error` for the pages, `oidc`, `saml`, `admin`) turn their errors into
/// responses, in one place each.
const CAPABILITIES: &[&str] = &[
    "auth",
    "audit",
    "mail",
    "keys",
    "ephemeral",
    "crypto",
    "store",
    "domain",
];

#[test]
fn capabilities_know_no_http_and_no_door() {
    for dir in CAPABILITIES {
        let found = violations(dir, &["web", "pages", "oidc", "saml", "admin"]);
        assert!(
            found.is_empty(),
            "src/{dir} names a door or the web layer: {found:?}"
        );
        let http = files_naming(dir, &["actix_web", "HttpRequest", "HttpResponse"]);
        assert!(http.is_empty(), "src/{dir} uses HTTP types: {http:?}");
    }
}

/// Files under `src/<dir>` whose code (comments and unit tests aside) names one of `words`.
fn files_naming(dir: &str, words: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let base = src.join(dir);
    if base.is_dir() {
        rust_files(&base, &mut files);
    } else {
        rust_files(&src.join(format!("{dir}.rs")), &mut files);
    }
    files
        .into_iter()
        .filter(|file| {
            let text = code(&std::fs::read_to_string(file).expect("source reads"));
            words.iter().any(|w| text.contains(w))
        })
        .map(|file| {
            file.strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string()
        })
        .collect()
}

/// The capabilities and doors above the lowest layers.
const ABOVE: &[&str] = &[
    "auth",
    "audit",
    "mail",
    "ephemeral",
    "keys",
    "oidc",
    "saml",
    "admin",
    "web",
    "startup",
    "bootstrap",
];

#[test]
fn crypto_store_and_domain_name_no_capability() {
    // The domain's types are what every layer shares, the store's rows among them; the
    // domain itself names nothing. Sealed rows are where crypto meets the store: in
    // `keys`, above both.
    let rules: [(&str, Vec<&str>); 3] = [
        ("domain", [ABOVE, &["crypto", "store"]].concat()),
        ("crypto", [ABOVE, &["store"]].concat()),
        ("store", [ABOVE, &["crypto"]].concat()),
    ];
    for (dir, forbidden) in rules {
        let found = violations(dir, &forbidden);
        assert!(found.is_empty(), "src/{dir} names a capability: {found:?}");
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let source = "use crate::{auth::{session, guard}, oidc::logout};\nfn f() { crate::saml::x(); }";
    let named = named_modules(source);
    assert!(named.contains("auth") && named.contains("oidc") && named.contains("saml"));
    assert!(!named.contains("session") && !named.contains("logout"));
    let commented =
        code("// use crate::oidc;\nfn f() {}\n#[cfg(test)]\nmod tests { use crate::saml; }");
    assert!(named_modules(&commented).is_empty());
}
