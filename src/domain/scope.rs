//! The scope of scoped identifiers (`user@scope`).

/// Whether `scope` can follow the `@` of a scoped value (Subject Identifier Attributes
/// §3.3.1: a domain-like string, at most 127 characters).
pub fn valid_scope(scope: &str) -> bool {
    let mut chars = scope.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && scope.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}
