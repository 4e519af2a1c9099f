use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use chrono::TimeZone;
use fluent_syntax::ast;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ends: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path, ends));
        } else if ends.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            out.push(path);
        }
    }
    out
}

/// Each message of one language's files, with the variables it uses.
fn messages(lang: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for file in files_under(&root().join("locales").join(lang), &[".ftl"]) {
        let text = fs::read_to_string(&file).unwrap();
        let resource = fluent_syntax::parser::parse(text.as_str())
            .unwrap_or_else(|(_, errors)| panic!("{}: {errors:?}", file.display()));
        for entry in resource.body {
            if let ast::Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(p) = &m.value {
                    pattern_variables(p, &mut vars);
                }
                // An English message may list, in an `.arguments` attribute, what the
                // code gives it beyond what English uses (another language may need it).
                for a in m.attributes.iter().filter(|a| a.id.name == "arguments") {
                    pattern_variables(&a.value, &mut vars);
                }
                let id = m.id.name.to_owned();
                assert!(out.insert(id.clone(), vars).is_none(), "{lang}: {id} twice");
            }
        }
    }
    out
}

fn pattern_variables(p: &ast::Pattern<&str>, vars: &mut BTreeSet<String>) {
    for element in &p.elements {
        if let ast::PatternElement::Placeable { expression } = element {
            expression_variables(expression, vars);
        }
    }
}

fn expression_variables(e: &ast::Expression<&str>, vars: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Select { selector, variants } => {
            inline_variables(selector, vars);
            for v in variants {
                pattern_variables(&v.value, vars);
            }
        }
        ast::Expression::Inline(i) => inline_variables(i, vars),
    }
}

fn inline_variables(i: &ast::InlineExpression<&str>, vars: &mut BTreeSet<String>) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            vars.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => expression_variables(expression, vars),
        _ => {}
    }
}

/// The string ids the code and templates ask for: `.t("id"`, `.a("id"`, `.a2("id"`,
/// `.n("id"`, `.with("id"` and `Id("id")`.
fn ids_in_use() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    // This module's own docs and tests name the calls without asking for anything.
    let files = files_under(&root().join("src"), &[".rs"])
        .into_iter()
        .filter(|f| !f.starts_with(root().join("src/i18n")))
        .chain(files_under(&root().join("templates"), &[".html", ".txt"]));
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for call in [".t(\"", ".a(\"", ".a2(\"", ".n(\"", ".with(\"", "Id(\""] {
            for (at, _) in text.match_indices(call) {
                // `getElementById("…")` is not an `Id("…")`.
                let glued = text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if call == "Id(\"" && glued {
                    continue;
                }
                let rest = &text[at + call.len()..];
                let id = &rest[..rest.find('"').unwrap()];
                if id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !id.is_empty()
                {
                    out.insert(id.to_owned(), file.clone());
                }
            }
        }
    }
    out
}

#[test]
fn every_language_has_every_string() {
    let english = messages("en");
    assert!(english.len() > 20, "the English files were not read");
    for lang in languages().iter().filter(|l| *l != "en") {
        let other = messages(lang);
        for (id, vars) in &english {
            let Some(theirs) = other.get(id) else {
                panic!("{lang} has no {id}");
            };
            // A translation may leave an argument out (a plural's count, the English
            // words of a resource type), never use one English does not give.
            assert!(
                theirs.is_subset(vars),
                "{lang}: {id} uses variables en does not give: {theirs:?} against {vars:?}"
            );
        }
        for id in other.keys() {
            assert!(
                english.contains_key(id),
                "{lang}: {id} is not an English string"
            );
        }
    }
}

#[test]
fn every_string_the_code_asks_for_exists() {
    let english = messages("en");
    let used = ids_in_use();
    assert!(used.len() > 20, "the scan found no calls");
    for (id, file) in used {
        assert!(
            english.contains_key(&id),
            "{} asks for {id}, which locales/en does not have",
            file.display()
        );
    }
}

#[test]
fn a_translation_is_not_the_english_left_in_place() {
    let english = messages("en");
    let tr = Wishes {
        person: Some("es-419".into()),
        ..Wishes::default()
    }
    .tr();
    let en = Tr::default();
    let same: Vec<&String> = english
        .iter()
        .filter(|(_, vars)| vars.is_empty())
        .map(|(id, _)| id)
        .filter(|id| {
            let text = en.t(id);
            text.len() > 24 && tr.t(id) == text
        })
        .collect();
    assert!(same.is_empty(), "left in English in es-419: {same:?}");
}

#[test]
fn the_language_is_the_first_wish_gatehouse_speaks() {
    let wish = |ui: &str, person: Option<&str>, browser: &str, org: Option<&str>| {
        Wishes {
            ui_locales: tag_list(ui),
            person: person.map(str::to_owned),
            browser: accept_language(browser),
            organisation: org.map(str::to_owned),
            zone: None,
            brand: None,
        }
        .tr()
        .lang()
    };
    assert_eq!(wish("", None, "", None), "en");
    assert_eq!(wish("", None, "es-MX,es;q=0.9", None), "es-419");
    assert_eq!(wish("", None, "fr, de", Some("es-419")), "es-419");
    assert_eq!(wish("", Some("es"), "en-GB", None), "es-419");
    assert_eq!(wish("es-CO en", Some("en"), "en", None), "es-419");
    assert_eq!(
        wish("fr es", None, "en", None),
        "es-419",
        "ui_locales skips fr"
    );
    assert_eq!(wish("", None, "es;q=0.2, en;q=0.8", None), "en", "q orders");
    assert_eq!(
        wish("", None, "en;q=0, es;q=0.1", None),
        "es-419",
        "q=0 refuses"
    );
}

#[test]
fn hostile_language_lists_are_bounded_and_tolerated() {
    assert!(accept_language(&"es,".repeat(10_000)).len() <= MAX_TAGS);
    assert!(tag_list(&"es ".repeat(10_000)).len() <= MAX_TAGS);
    for junk in [
        "", ",,,", ";q=1", "es;q=abc", "es;q=5", "*", "\u{0}", "ñ;q=0.5",
    ] {
        assert!(accept_language(junk).len() <= 1, "{junk:?}");
    }
    assert!(accept_language(&format!("{}é", "a".repeat(511))).is_empty());
}

#[test]
fn dates_are_in_the_readers_language_and_time_zone() {
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 14, 5, 0).unwrap();
    assert_eq!(Tr::default().datetime(at), "7 Dec 2026, 14:05 UTC");
    let bogota = Wishes {
        person: Some("es-419".into()),
        zone: Some("America/Bogota".into()),
        ..Wishes::default()
    }
    .tr();
    assert_eq!(bogota.datetime(at), "7 dic 2026, 09:05 -05");
    assert_eq!(time_zone("america/bogota"), None, "names are exact");
    assert_eq!(time_zone("Europe/London").as_deref(), Some("Europe/London"));
}

#[test]
fn settings_name_a_language_gatehouse_speaks() {
    assert_eq!(supported("es").as_deref(), Some("es-419"));
    assert_eq!(supported("es-MX").as_deref(), Some("es-419"));
    assert_eq!(supported("en-US").as_deref(), Some("en"));
    assert_eq!(supported("fr"), None);
    assert_eq!(supported("not a tag"), None);
    assert_eq!(languages(), vec!["en".to_owned(), "es-419".to_owned()]);
}
