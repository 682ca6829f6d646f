//! The configuration in force, as TOML (`partwarden check-config`): every key, defaults
//! included, in the order of `config/partwarden.toml`. A duration someone wrote (in the
//! file or the environment) is printed as written ("90s" stays "90s"); a default one in
//! the largest unit that is exact. The database URL is printed with its password hidden.
//! Values are rendered by the `toml` crate (quoting, escapes); the layout is ours, so the
//! keys keep the documented order.

use std::fmt::Write;
use std::time::Duration;

use super::{Config, TableConfig};

/// What was written for some keys (`section.key` or `tables.N.key`), as text.
pub(super) type Written = std::collections::BTreeMap<String, String>;

/// The duration keys, whose written text is kept.
pub(super) const DURATION_KEYS: &[&str] = &[
    "database.lock_timeout",
    "database.lock_wait",
    "database.statement_timeout",
    "database.connect_timeout",
    "database.ddl_backoff",
    "schedule.stats_interval",
    "probe.interval",
    "probe.statement_timeout",
];

pub(super) fn render(config: &Config, written: &Written) -> String {
    let mut out = String::new();
    let duration = |key: &str, d: Duration| -> String {
        written
            .get(key)
            .cloned()
            .unwrap_or_else(|| format_duration(d))
    };
    let db = &config.database;
    section(&mut out, "database");
    if let Some(url) = &db.url {
        line(&mut out, "url", string(&url.to_string()));
    }
    if let Some(source) = &db.url_source {
        comment(&mut out, &format!("the URL came from {source}"));
    }
    if let Some(file) = &db.url_file {
        line(&mut out, "url_file", string(&file.display().to_string()));
    }
    line(&mut out, "max_connections", db.max_connections.to_string());
    for (key, d) in [
        ("lock_timeout", db.lock_timeout),
        ("lock_wait", db.lock_wait),
        ("statement_timeout", db.statement_timeout),
        ("connect_timeout", db.connect_timeout),
    ] {
        line(
            &mut out,
            key,
            string(&duration(&format!("database.{key}"), d)),
        );
    }
    line(&mut out, "ddl_attempts", db.ddl_attempts.to_string());
    line(
        &mut out,
        "ddl_backoff",
        string(&duration("database.ddl_backoff", db.ddl_backoff)),
    );

    section(&mut out, "http");
    line(&mut out, "listen", string(&config.http.listen.to_string()));
    line(
        &mut out,
        "per_partition_metrics",
        config.http.per_partition_metrics.to_string(),
    );

    section(&mut out, "schedule");
    line(
        &mut out,
        "maintenance",
        string(&config.schedule.maintenance),
    );
    line(
        &mut out,
        "stats_interval",
        string(&duration(
            "schedule.stats_interval",
            config.schedule.stats_interval,
        )),
    );

    section(&mut out, "log");
    line(&mut out, "format", string(config.log.format.as_str()));
    line(&mut out, "level", string(&config.log.level));

    let probe = &config.probe;
    section(&mut out, "probe");
    line(&mut out, "enabled", probe.enabled.to_string());
    line(
        &mut out,
        "interval",
        string(&duration("probe.interval", probe.interval)),
    );
    line(
        &mut out,
        "statement_timeout",
        string(&duration(
            "probe.statement_timeout",
            probe.statement_timeout,
        )),
    );
    if let Some(t) = &probe.tenant_id {
        line(&mut out, "tenant_id", string(t));
    }
    if let Some(q) = &probe.query {
        line(&mut out, "query", string(q));
    }

    for t in &config.tables {
        table(&mut out, t);
    }
    out
}

fn table(out: &mut String, t: &TableConfig) {
    let _ = writeln!(out, "\n[[tables]]");
    line(out, "name", string(t.name.as_str()));
    line(out, "schema", string(t.schema.as_str()));
    line(out, "column", string(t.column.as_str()));
    line(out, "interval", string(t.interval.as_str()));
    line(out, "premake", t.premake.to_string());
    line(out, "retention", string(&t.retention.to_string()));
    line(out, "retention_mode", string(t.retention_mode.as_str()));
    line(out, "archive_schema", string(t.archive_schema.as_str()));
    line(out, "max_expire_per_run", t.max_expire_per_run.to_string());
    line(out, "default_partition", t.default_partition.to_string());
    table_vector_index(out, t);
    // The store in force for this table (its own over [export]); credentials never
    // appear here because the configuration cannot hold them.
    if let Some(e) = &t.export {
        let _ = writeln!(out, "\n[tables.export]");
        line(out, "url", string(e.url.as_str()));
        line(out, "zstd_level", e.zstd_level.to_string());
        if !e.options.is_empty() {
            let _ = writeln!(out, "\n[tables.export.options]");
            for (k, v) in &e.options {
                line(out, k, string(v));
            }
        }
    }
}

fn table_vector_index(out: &mut String, t: &TableConfig) {
    let Some(v) = &t.vector_index else {
        return;
    };
    let _ = writeln!(out, "\n[tables.vector_index]");
    line(out, "column", string(v.column.as_str()));
    line(out, "method", string(v.method.as_str()));
    line(out, "opclass", string(v.opclass.as_str()));
    line(out, "min_rows", v.min_rows.to_string());
    let lists = v.lists.to_string();
    line(
        out,
        "lists",
        lists
            .parse::<u32>()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| string(&lists)),
    );
    line(out, "m", v.m.to_string());
    line(out, "ef_construction", v.ef_construction.to_string());
    line(
        out,
        "rebuild_growth_factor",
        toml::Value::Float(v.rebuild_growth_factor).to_string(),
    );
    line(out, "rebuild_on_close", v.rebuild_on_close.to_string());
    line(
        out,
        "max_maintenance_work_mem",
        string(&v.max_maintenance_work_mem),
    );
}

fn section(out: &mut String, name: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "[{name}]");
}

fn line(out: &mut String, key: &str, value: String) {
    let _ = writeln!(out, "{key} = {value}");
}

fn comment(out: &mut String, text: &str) {
    let _ = writeln!(out, "# {text}");
}

/// A TOML string literal.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The largest unit of `parse_duration`'s that states `d` exactly.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(50)), "50ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(1800)), "30min");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn the_effective_configuration_is_toml_that_loads_back_to_the_same_configuration() {
        let written = "[database]\nurl = \"postgres://u:secret@db/x\"\nlock_wait = \"75ms\"\nstatement_timeout = \"1800s\"\n\
                       [[tables]]\nname = \"t\"\n[tables.vector_index]\nlists = 40\n";
        let config = Config::from_sources(Some(written), &[]).unwrap();
        let text = Config::effective_toml(&config, Some(written), &[]).unwrap();
        assert!(text.contains("lock_wait = \"75ms\""), "{text}");
        assert!(
            text.contains("statement_timeout = \"1800s\""),
            "as written: {text}"
        );
        assert!(
            text.contains("connect_timeout = \"10s\""),
            "a default: {text}"
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("lists = 40"), "{text}");
        // Without the password it loads back to the same configuration.
        let with_password = text.replace("u:***@", "u:secret@");
        let again = Config::from_sources(Some(&with_password), &[]).unwrap();
        assert_eq!(again, config, "{text}");
    }
}
