//! The known keys and the type each takes, checked before deserializing so that unknown
//! or mistyped keys are reported by their full path, with a did-you-mean and, for
//! environment overrides, the variable that set them.

use std::collections::BTreeMap;

use super::error::{invalid, ConfigError};
use super::url::redact_urls;

/// Prefix of the environment overrides (`PARTWARDEN__SECTION__KEY`).
pub const ENV_PREFIX: &str = "PARTWARDEN";
/// Separator between prefix, section and key in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

/// What a key's value must be. The config crate would coerce (a float to an integer, the
/// text "5" to a number, "no" to a boolean), so every value's type is checked before it is
/// deserialized: in the file exactly, in the environment (always text) by strict parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    /// An integer is accepted too (`2` is `2.0`).
    Float,
    Bool,
    /// `"auto"` or an integer (`lists`).
    StrOrInt,
    Section,
    Array,
}

impl Kind {
    const fn expected(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean (true or false)",
            Kind::StrOrInt => "a string or an integer",
            Kind::Section => "a table",
            Kind::Array => "an array of tables",
        }
    }
}

/// The known keys and their kinds, for errors that name the full path.
const DATABASE_KEYS: &[(&str, Kind)] = &[
    ("url", Kind::Str),
    ("url_file", Kind::Str),
    ("max_connections", Kind::Int),
    ("lock_timeout", Kind::Str),
    ("lock_wait", Kind::Str),
    ("statement_timeout", Kind::Str),
    ("connect_timeout", Kind::Str),
    ("ddl_attempts", Kind::Int),
    ("ddl_backoff", Kind::Str),
];
const HTTP_KEYS: &[(&str, Kind)] = &[("listen", Kind::Str), ("per_partition_metrics", Kind::Bool)];
const SCHEDULE_KEYS: &[(&str, Kind)] = &[("maintenance", Kind::Str), ("stats_interval", Kind::Str)];
const LOG_KEYS: &[(&str, Kind)] = &[("format", Kind::Str), ("level", Kind::Str)];
const PROBE_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("interval", Kind::Str),
    ("statement_timeout", Kind::Str),
    ("tenant_id", Kind::Str),
    ("query", Kind::Str),
];
const TABLE_KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("schema", Kind::Str),
    ("column", Kind::Str),
    ("interval", Kind::Str),
    ("premake", Kind::Int),
    ("retention", Kind::Str),
    ("retention_mode", Kind::Str),
    ("archive_schema", Kind::Str),
    ("max_expire_per_run", Kind::Int),
    ("default_partition", Kind::Bool),
    ("vector_index", Kind::Section),
    ("export", Kind::Section),
];
const EXPORT_KEYS: &[(&str, Kind)] = &[
    ("url", Kind::Str),
    ("zstd_level", Kind::Int),
    // Its keys are the store's own, checked against object_store's (config/export.rs).
    ("options", Kind::Section),
];
const VECTOR_KEYS: &[(&str, Kind)] = &[
    ("column", Kind::Str),
    ("method", Kind::Str),
    ("opclass", Kind::Str),
    ("min_rows", Kind::Int),
    ("lists", Kind::StrOrInt),
    ("m", Kind::Int),
    ("ef_construction", Kind::Int),
    ("rebuild_growth_factor", Kind::Float),
    ("rebuild_on_close", Kind::Bool),
    ("max_maintenance_work_mem", Kind::Str),
];
const ROOT_KEYS: &[(&str, Kind)] = &[
    ("database", Kind::Section),
    ("http", Kind::Section),
    ("schedule", Kind::Section),
    ("log", Kind::Section),
    ("probe", Kind::Section),
    ("tables", Kind::Array),
    ("export", Kind::Section),
];

/// `PARTWARDEN__…` variables as config key paths (`database.lock_timeout`) → variable
/// names, for error messages. Rejects overrides of `tables`.
pub(super) fn prefixed_env_keys(
    env: &[(String, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_ascii_lowercase();
    let mut keys = BTreeMap::new();
    for (name, value) in env {
        let lower = name.to_lowercase();
        if value.is_empty() || !lower.starts_with(&prefix) {
            continue;
        }
        let key = lower[prefix.len()..].replace(ENV_SEPARATOR, ".");
        if key == "tables" || key.starts_with("tables.") {
            return Err(invalid(
                "tables",
                format!("cannot be set from the environment ({name}); configure [[tables]] in the config file"),
            ));
        }
        keys.insert(key, name.clone());
    }
    Ok(keys)
}

pub(super) fn check_keys(
    tree: &config::Map<String, config::Value>,
    env_keys: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    check_table_keys("", tree, ROOT_KEYS, env_keys)?;
    for (section, allowed) in [
        ("database", DATABASE_KEYS),
        ("http", HTTP_KEYS),
        ("schedule", SCHEDULE_KEYS),
        ("log", LOG_KEYS),
        ("probe", PROBE_KEYS),
        ("export", EXPORT_KEYS),
    ] {
        if let Some(v) = tree.get(section) {
            let table = expect_table(section, v, env_keys)?;
            check_table_keys(section, table, allowed, env_keys)?;
        }
    }
    if let Some(v) = tree.get("tables") {
        let config::ValueKind::Array(entries) = &v.kind else {
            return Err(invalid(
                "tables",
                "must be an array of tables ([[tables]] entries)",
            ));
        };
        for (i, entry) in entries.iter().enumerate() {
            let path = format!("tables[{i}]");
            let table = expect_table(&path, entry, env_keys)?;
            check_table_keys(&path, table, TABLE_KEYS, env_keys)?;
            if let Some(vi) = table.get("vector_index") {
                let path = format!("{path}.vector_index");
                let vi = expect_table(&path, vi, env_keys)?;
                check_table_keys(&path, vi, VECTOR_KEYS, env_keys)?;
            }
            if let Some(ex) = table.get("export") {
                let path = format!("{path}.export");
                let ex = expect_table(&path, ex, env_keys)?;
                check_table_keys(&path, ex, EXPORT_KEYS, env_keys)?;
            }
        }
    }
    Ok(())
}

fn expect_table<'a>(
    path: &str,
    v: &'a config::Value,
    env_keys: &BTreeMap<String, String>,
) -> Result<&'a config::Map<String, config::Value>, ConfigError> {
    match &v.kind {
        config::ValueKind::Table(t) => Ok(t),
        _ => Err(invalid(
            path,
            format!("must be a table{}", env_note(path, env_keys)),
        )),
    }
}

fn check_table_keys(
    path: &str,
    table: &config::Map<String, config::Value>,
    allowed: &[(&str, Kind)],
    env_keys: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    let names: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
    for key in keys {
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if let Some((_, kind)) = allowed.iter().find(|(k, _)| k == key) {
            check_kind(&full, &table[key], *kind, env_keys)?;
            continue;
        }
        let section = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in {path}")
        };
        let hint = match closest(key, &names) {
            Some(s) => format!(" (did you mean {s:?}?)"),
            None => String::new(),
        };
        return Err(invalid(
            &full,
            format!(
                "unknown key{hint}{}; known keys {section}: {}",
                env_note(&full, env_keys),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Rejects a value whose type is not `kind`. A value set from the environment is text:
/// it must parse exactly (`"7"` for an integer, `"true"`/`"false"` for a boolean).
fn check_kind(
    key: &str,
    value: &config::Value,
    kind: Kind,
    env_keys: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    use config::ValueKind as V;
    let from_env = env_keys.contains_key(key);
    let ok = match (&value.kind, kind) {
        (V::String(s), Kind::Int) if from_env => s.trim().parse::<i64>().is_ok(),
        (V::String(s), Kind::Float) if from_env => {
            s.trim().parse::<f64>().is_ok_and(f64::is_finite)
        }
        (V::String(s), Kind::Bool) if from_env => matches!(s.trim(), "true" | "false"),
        (V::String(_), Kind::Str | Kind::StrOrInt) => true,
        (
            V::I64(_) | V::U64(_) | V::I128(_) | V::U128(_),
            Kind::Int | Kind::Float | Kind::StrOrInt,
        ) => true,
        (V::Float(_), Kind::Float) => true,
        (V::Boolean(_), Kind::Bool) => true,
        (V::Table(_), Kind::Section) => true,
        (V::Array(_), Kind::Array) => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let got = match &value.kind {
        V::String(s) => format!("the string {s:?}"),
        V::Float(f) => format!("the number {f:?}"),
        V::I64(_) | V::U64(_) | V::I128(_) | V::U128(_) => format!("the integer {value}"),
        V::Boolean(b) => format!("the boolean {b}"),
        V::Table(_) => "a table".to_owned(),
        V::Array(_) => "an array".to_owned(),
        V::Nil => "nothing".to_owned(),
    };
    Err(invalid(
        key,
        format!(
            "expected {}, got {got}{}",
            kind.expected(),
            env_note(key, env_keys)
        ),
    ))
}

/// ` (set by environment variable X)` when `path` (or a key below it) came from one.
fn env_note(path: &str, env_keys: &BTreeMap<String, String>) -> String {
    let below = format!("{path}.");
    env_keys
        .iter()
        .find(|(k, _)| *k == path || k.starts_with(&below))
        .map(|(_, var)| format!(" (set by environment variable {var})"))
        .unwrap_or_default()
}

/// The allowed key closest to a misspelt one, if it is close enough to be a typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::levenshtein(key, a), *a))
        .filter(|(d, a)| *d <= 1.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// The config crate writes array paths as `tables[0]premake`; restore the dot.
fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_bracket = false;
    for c in key.chars() {
        if after_bracket && c != '.' && c != '[' {
            out.push('.');
        }
        after_bracket = c == ']';
        out.push(c);
    }
    out
}

/// Turn a config-crate error into one that names its key where it knows it.
pub(super) fn from_config_error(e: config::ConfigError) -> ConfigError {
    match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => invalid(
            normalize_key(&key),
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => invalid(normalize_key(&key), error.to_string()),
        config::ConfigError::NotFound(key) => invalid(key, "missing"),
        other => ConfigError::Parse(redact_urls(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{env, invalid_key, load, table};
    use crate::config::{Config, ListsSetting};

    #[test]
    fn shipped_file_documents_every_key() {
        let text = include_str!("../../config/partwarden.toml");
        let all = [
            DATABASE_KEYS,
            HTTP_KEYS,
            SCHEDULE_KEYS,
            LOG_KEYS,
            PROBE_KEYS,
            TABLE_KEYS,
            VECTOR_KEYS,
            EXPORT_KEYS,
        ];
        for (key, _) in all.iter().flat_map(|k| k.iter()) {
            let present = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l == format!("[tables.{key}]")
                    || l == format!("[export.{key}]")
            });
            assert!(present, "config/partwarden.toml does not mention {key}");
        }
    }

    #[test]
    fn unknown_keys_named() {
        let msg = invalid_key("[database]\nlock_timout = \"1s\"\n", "database.lock_timout");
        assert!(msg.contains("did you mean \"lock_timeout\""), "{msg}");
        invalid_key("colour = 1\n", "colour");
        invalid_key("[htp]\nlisten = \"x\"\n", "htp");
        invalid_key(&table("premade = 3"), "tables[0].premade");
        invalid_key(
            &format!("{}[[tables]]\nname = \"b\"\nfoo = 1\n", table("")),
            "tables[1].foo",
        );
        invalid_key(
            &table("[tables.vector_index]\nlist = 10"),
            "tables[0].vector_index.list",
        );
        invalid_key("database = 5\n", "database");
        invalid_key("[[database]]\nurl = \"x\"\n", "database");
        invalid_key("tables = 3\n", "tables");
    }

    #[test]
    fn unknown_env_keys_named() {
        let err = Config::from_sources(None, &env(&[("PARTWARDEN__DATABASE__LOCK_TIMOUT", "1s")]))
            .unwrap_err();
        assert_eq!(err.key(), Some("database.lock_timout"));
        assert!(
            err.to_string()
                .contains("PARTWARDEN__DATABASE__LOCK_TIMOUT"),
            "{err}"
        );
        let err = Config::from_sources(None, &env(&[("PARTWARDEN__NOPE", "1")])).unwrap_err();
        assert_eq!(err.key(), Some("nope"));
        let err = Config::from_sources(None, &env(&[("PARTWARDEN__TABLES__0__PREMAKE", "1")]))
            .unwrap_err();
        assert_eq!(err.key(), Some("tables"));
        assert!(
            err.to_string().contains("PARTWARDEN__TABLES__0__PREMAKE"),
            "{err}"
        );
    }

    #[test]
    fn type_errors_named() {
        let msg = invalid_key(&table("premake = \"three\""), "tables[0].premake");
        assert!(msg.contains("three"), "{msg}");
        invalid_key(
            "[database]\nmax_connections = \"x\"\n",
            "database.max_connections",
        );
        invalid_key("[probe]\nenabled = \"maybe\"\n", "probe.enabled");
        invalid_key("[database]\nlock_timeout = [1]\n", "database.lock_timeout");
    }

    /// Issue 10.9: values of the wrong type are rejected, never coerced (a float for an
    /// integer, a string for a number or a boolean), in the file and in the environment.
    #[test]
    fn loose_types_rejected() {
        let msg = invalid_key(&table("premake = 3.5"), "tables[0].premake");
        assert!(msg.contains("3.5") && msg.contains("an integer"), "{msg}");
        invalid_key(
            "[database]\nmax_connections = 4.9\n",
            "database.max_connections",
        );
        invalid_key(
            "[database]\nddl_attempts = \"5\"\n",
            "database.ddl_attempts",
        );
        invalid_key(
            &table("default_partition = \"no\""),
            "tables[0].default_partition",
        );
        invalid_key(
            &table("max_expire_per_run = 2.0"),
            "tables[0].max_expire_per_run",
        );
        invalid_key("[probe]\nenabled = 1\n", "probe.enabled");
        invalid_key("[database]\nlock_timeout = 2\n", "database.lock_timeout");
        invalid_key(
            &table("[tables.vector_index]\nmin_rows = 1e4"),
            "tables[0].vector_index.min_rows",
        );
        invalid_key(
            &table("[tables.vector_index]\nrebuild_on_close = \"yes\""),
            "tables[0].vector_index.rebuild_on_close",
        );
        // A float key takes an integer (2 is 2.0); lists takes "auto" or an integer.
        let c = load(&table(
            "[tables.vector_index]\nrebuild_growth_factor = 3\nlists = 50",
        ))
        .unwrap();
        let v = c.tables[0].vector_index.as_ref().unwrap();
        assert_eq!(
            (v.rebuild_growth_factor, v.lists),
            (3.0, ListsSetting::Fixed(50))
        );
        // The environment carries text: numbers and booleans must be written exactly.
        let with_env = |k: &str, v: &str| Config::from_sources(None, &env(&[(k, v)]));
        assert_eq!(
            with_env("PARTWARDEN__DATABASE__MAX_CONNECTIONS", "7")
                .unwrap()
                .database
                .max_connections,
            7
        );
        for (k, v, key) in [
            (
                "PARTWARDEN__DATABASE__MAX_CONNECTIONS",
                "4.9",
                "database.max_connections",
            ),
            (
                "PARTWARDEN__DATABASE__DDL_ATTEMPTS",
                "five",
                "database.ddl_attempts",
            ),
            ("PARTWARDEN__PROBE__ENABLED", "no", "probe.enabled"),
        ] {
            let err = with_env(k, v).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(k), "names the variable: {err}");
        }
        assert!(
            with_env("PARTWARDEN__PROBE__ENABLED", "true")
                .unwrap()
                .probe
                .enabled
        );
    }
}
