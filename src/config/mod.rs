//! Configuration: a TOML file, overridden by the environment, validated once at start.
//!
//! # Sources, lowest to highest precedence
//! 1. Built-in defaults (every key has one except the database URL; see
//!    `config/partwarden.toml`, which documents each key and its default).
//! 2. The TOML file, when one is given.
//! 3. Environment variables `PARTWARDEN__SECTION__KEY` (double underscores; the name is
//!    case-insensitive), e.g. `PARTWARDEN__DATABASE__LOCK_TIMEOUT=1s`,
//!    `PARTWARDEN__HTTP__LISTEN=127.0.0.1:1234`. Variables that do not start with
//!    `PARTWARDEN__` (Kubernetes' `*_SERVICE_HOST`, `PARTWARDEN_X` with one underscore) are
//!    ignored; an unknown key *under* the prefix is rejected. Empty variables count as
//!    unset. `[[tables]]` cannot be set from the environment (use the file).
//!
//! # The database URL
//! It has no default; a missing URL is only an error for commands that talk to the
//! database ([`Config::database_url`]), and a warning otherwise ([`Config::warnings`]).
//! The first of these that is set wins — the environment beats the file, and at the same
//! level an inline URL beats a URL file:
//! 1. `DATABASE_URL`
//! 2. `PARTWARDEN__DATABASE__URL`
//! 3. `PARTWARDEN__DATABASE__URL_FILE` (path of a file holding the URL, e.g. a mounted
//!    Kubernetes secret; its contents are trimmed)
//! 4. `database.url` in the file
//! 5. `database.url_file` in the file
//!
//! Lower-ranked URL sources that are also set are ignored (and reported as a warning). The
//! URL's password is never printed: [`DatabaseUrl`]'s `Debug`/`Display` redact it.
//!
//! # Values
//! Durations are strings: a whole number and a unit, optionally separated by a space:
//! `ms`, `s`, `min` (or `m`), `h`, `d` — `"500ms"`, `"2s"`, `"5min"`, `"1h"`, `"1d"`,
//! `"2 s"`. Fractions are not accepted (write `"1500ms"`).
//!
//! Every error names its key (`tables[0].premake: must be at least 1 (got 0)`); all
//! [`ConfigError`]s mean exit code 2.

mod database;
mod effective;
mod error;
mod export;
mod fields;
mod http;
mod keys;
mod log;
mod probe;
mod schedule;
mod table;
#[cfg(test)]
mod test_support;
mod url;
mod url_source;
mod values;
mod vector_index;

pub use self::database::DatabaseConfig;
pub use self::error::ConfigError;
pub use self::export::{ExportConfig, StoreScheme};
pub use self::http::{HttpConfig, DEFAULT_LISTEN};
pub use self::keys::{ENV_PREFIX, ENV_SEPARATOR};
pub use self::log::LogConfig;
pub use self::probe::ProbeConfig;
pub use self::schedule::{validate_cron, ScheduleConfig, DEFAULT_MAINTENANCE_CRON};
pub use self::table::{TableConfig, DEFAULT_TABLE, DEFAULT_VECTOR_COLUMN};
pub use self::url::DatabaseUrl;
pub use self::url_source::{UrlSource, DATABASE_URL_ENV};
pub use self::values::{
    format_duration, parse_duration, parse_memory_kb, ListsSetting, LogFormat, RetentionMode,
    VectorMethod,
};
pub use self::vector_index::VectorIndexPolicy;

use std::path::Path;

use serde::Deserialize;

use self::database::{database_config, RawDatabase};
use self::error::invalid;
use self::http::{http_config, RawHttp};
use self::keys::{check_keys, from_config_error, prefixed_env_keys};
use self::log::{log_config, RawLog};
use self::probe::{probe_config, RawProbe};
use self::schedule::{schedule_config, RawSchedule};
use self::table::{tables_config, RawTable};
use self::url::redact_urls;

/// The file's shape: every field optional and loosely typed, validated section by section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    database: RawDatabase,
    http: RawHttp,
    schedule: RawSchedule,
    log: RawLog,
    probe: RawProbe,
    tables: Option<Vec<RawTable>>,
    export: Option<self::export::RawExport>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub schedule: ScheduleConfig,
    pub log: LogConfig,
    pub probe: ProbeConfig,
    pub tables: Vec<TableConfig>,
    /// A URL file that was chosen but could not be used: reported by `database_url()`.
    url_problem: Option<(String, String)>,
    warnings: Vec<String>,
}

impl Default for Config {
    /// The built-in defaults (no file, no environment): no database URL.
    fn default() -> Self {
        Config::from_sources(None, &[]).expect("built-in defaults are valid")
    }
}

impl Config {
    /// Load the configuration: the TOML file at `path` when given (a missing file is an
    /// error naming it), then the process environment (`PARTWARDEN__SECTION__KEY`,
    /// `DATABASE_URL`). See the module docs for precedence.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, env) = read_sources(path)?;
        Config::from_sources(text.as_deref(), &env).map_err(|e| in_file(e, path))
    }

    /// [`Config::load`], and the configuration in force as TOML (see
    /// [`Config::effective_toml`]).
    pub fn load_effective(path: Option<&Path>) -> Result<(Config, String), ConfigError> {
        let (text, env) = read_sources(path)?;
        let config = Config::from_sources(text.as_deref(), &env).map_err(|e| in_file(e, path))?;
        let toml = Config::effective_toml(&config, text.as_deref(), &env)?;
        Ok((config, toml))
    }

    /// Every key of `config` (built from `toml` and `env`) with the value in force, as
    /// TOML: durations as written where they were written, the URL's password hidden.
    pub fn effective_toml(
        config: &Config,
        toml: Option<&str>,
        env: &[(String, String)],
    ) -> Result<String, ConfigError> {
        let merged = merge_sources(toml, env)?;
        let written = effective::DURATION_KEYS
            .iter()
            .filter_map(|k| merged.get_string(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Ok(effective::render(config, &written))
    }

    /// Build the configuration from TOML text (if any) and an explicit environment.
    /// Reads no environment itself; it only reads the file named by `database.url_file`
    /// when that is the URL source chosen.
    pub fn from_sources(
        toml: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let env_keys = prefixed_env_keys(env)?;

        let merged = merge_sources(toml, env)?;
        let tree = config::Source::collect(&merged)
            .map_err(|e| ConfigError::Parse(redact_urls(&e.to_string())))?;
        check_keys(&tree, &env_keys)?;

        let raw: RawConfig = merged.try_deserialize().map_err(from_config_error)?;
        let mut warnings = Vec::new();

        let (database, url_problem) = database_config(raw.database, env, &env_keys, &mut warnings)?;
        let http = http_config(raw.http, &mut warnings)?;
        let schedule = schedule_config(raw.schedule)?;
        let log = log_config(raw.log)?;
        let probe = probe_config(raw.probe, &mut warnings)?;
        self::export::check_shared(raw.export.as_ref())?;
        let tables = tables_config(raw.tables, raw.export.as_ref(), &mut warnings)?;

        if database.url.is_none() && url_problem.is_none() {
            warnings.insert(
                0,
                "no database URL configured (DATABASE_URL, database.url or database.url_file): \
                 commands that use the database will fail"
                    .to_owned(),
            );
        }
        if let Some((key, message)) = &url_problem {
            warnings.insert(0, format!("{key}: {message}"));
        }

        Ok(Config {
            database,
            http,
            schedule,
            log,
            probe,
            tables,
            url_problem,
            warnings,
        })
    }

    /// The database URL, or why there is none: [`ConfigError::MissingDatabaseUrl`], or an
    /// [`ConfigError::Invalid`] naming `database.url_file` when that file is unusable.
    pub fn database_url(&self) -> Result<&DatabaseUrl, ConfigError> {
        if let Some(url) = &self.database.url {
            return Ok(url);
        }
        match &self.url_problem {
            Some((key, message)) => Err(ConfigError::Invalid {
                key: key.clone(),
                message: message.clone(),
            }),
            None => Err(ConfigError::MissingDatabaseUrl),
        }
    }

    /// Things worth telling an operator that do not stop the program (`check-config`
    /// prints them): no database URL, an unreadable URL file, URL sources that were
    /// overridden, a password in the config file, and similar.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// The table selected by `--table`: `schema.name`, or a bare `name` that exactly one
    /// configured table has.
    pub fn find_table(&self, spec: &str) -> Result<&TableConfig, ConfigError> {
        let matches: Vec<&TableConfig> = match spec.split_once('.') {
            Some((schema, name)) => self
                .tables
                .iter()
                .filter(|t| t.schema == schema && t.name == name)
                .collect(),
            None => self.tables.iter().filter(|t| t.name == spec).collect(),
        };
        let configured = || {
            self.tables
                .iter()
                .map(TableConfig::label)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(invalid(
                "--table",
                format!(
                    "no configured table {spec:?} (configured: {})",
                    configured()
                ),
            )),
            _ => Err(invalid(
                "--table",
                format!(
                    "{spec:?} is ambiguous: write it as schema.name (configured: {})",
                    configured()
                ),
            )),
        }
    }
}

/// A configuration file's text (if one was given) and the process environment.
type Sources = (Option<String>, Vec<(String, String)>);

/// The file's text (a missing or unreadable file is an error naming it) and the process
/// environment.
fn read_sources(path: Option<&Path>) -> Result<Sources, ConfigError> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Ok((text, env))
}

/// A parse error names the file it is in.
fn in_file(e: ConfigError, path: Option<&Path>) -> ConfigError {
    match (e, path) {
        (ConfigError::Parse(msg), Some(p)) => ConfigError::Parse(format!("{}: {msg}", p.display())),
        (e, _) => e,
    }
}

/// The TOML text and the `PARTWARDEN__` variables, merged by the config crate with the
/// environment on top.
fn merge_sources(
    toml: Option<&str>,
    env: &[(String, String)],
) -> Result<config::Config, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(text) = toml {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    let env_map: config::Map<String, String> = env.iter().cloned().collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .ignore_empty(true)
            .source(Some(env_map)),
    );
    builder
        .build()
        .map_err(|e| ConfigError::Parse(redact_urls(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::calendar::{Interval, RetentionPeriod};
    use crate::config::test_support::{env, invalid_key, load};

    #[test]
    fn defaults() {
        let c = Config::from_sources(None, &[]).unwrap();
        assert_eq!(c.database.url, None);
        assert_eq!(c.database.url_source, None);
        assert_eq!(c.database.max_connections, 4);
        assert_eq!(c.database.lock_timeout, Duration::from_secs(2));
        assert_eq!(c.database.statement_timeout, Duration::from_secs(1800));
        assert_eq!(c.database.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.database.ddl_attempts, 5);
        assert_eq!(c.database.ddl_backoff, Duration::from_secs(1));
        assert_eq!(c.http.listen, "0.0.0.0:9464".parse().unwrap());
        assert_ne!(c.http.listen.port(), 9187);
        assert_eq!(c.schedule.maintenance, "0 0 2 * * *");
        assert_eq!(c.schedule.stats_interval, Duration::from_secs(60));
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert!(!c.probe.enabled);
        assert_eq!(c.probe.interval, Duration::from_secs(60));
        assert_eq!(c.probe.statement_timeout, Duration::from_secs(5));
        assert_eq!(c.probe.tenant_id, None);
        assert_eq!(c.probe.query, None);

        assert_eq!(c.tables.len(), 1);
        let t = &c.tables[0];
        assert_eq!(t.name, "archon_ga4_events");
        assert_eq!(t.schema, "public");
        assert_eq!(t.column, "event_timestamp");
        assert_eq!(t.interval, Interval::Month);
        assert_eq!(t.premake, 3);
        assert_eq!(t.retention, RetentionPeriod::Months(24));
        assert_eq!(t.retention_mode, RetentionMode::Drop);
        assert_eq!(t.archive_schema, "partwarden_archive");
        assert_eq!(t.max_expire_per_run, 3);
        assert!(t.default_partition);
        assert_eq!(t.qualified_name(), "\"public\".\"archon_ga4_events\"");
        assert_eq!(t.label(), "public.archon_ga4_events");
        assert_eq!(t.default_partition_name(), "archon_ga4_events_default");
        let v = t
            .vector_index
            .as_ref()
            .expect("default table has a vector index");
        assert_eq!(v.column, "embedding_768");
        assert_eq!(v.method, VectorMethod::Ivfflat);
        assert_eq!(v.opclass, "vector_cosine_ops");
        assert_eq!(v.min_rows, 10_000);
        assert_eq!(v.lists, ListsSetting::Auto);
        assert_eq!(v.m, 16);
        assert_eq!(v.ef_construction, 64);
        assert_eq!(v.rebuild_growth_factor, 2.0);
        assert!(v.rebuild_on_close);
        assert_eq!(v.max_maintenance_work_mem, "2GB");
        assert_eq!(v.max_maintenance_work_mem_kb(), 2 * 1024 * 1024);

        assert_eq!(Config::default(), c);
        assert!(matches!(
            c.database_url(),
            Err(ConfigError::MissingDatabaseUrl)
        ));
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("no database URL"), "{w:?}");
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let shipped = load(include_str!("../../config/partwarden.toml")).unwrap();
        assert_eq!(shipped, Config::from_sources(None, &[]).unwrap());
    }

    #[test]
    fn full_file() {
        let c = load(
            r#"
            [database]
            url = "postgres://app@db:5432/app"
            max_connections = 8
            lock_timeout = "500ms"
            statement_timeout = "1h"
            connect_timeout = "5 s"
            ddl_attempts = 1
            ddl_backoff = "250ms"
            [http]
            listen = "[::1]:9000"
            [schedule]
            maintenance = "0 30 3 * * Sun"
            stats_interval = "5min"
            [log]
            format = "json"
            level = "info,partwarden=debug"
            [probe]
            enabled = true
            interval = "30s"
            statement_timeout = "1s"
            tenant_id = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
            query = "SELECT 1"
            [[tables]]
            name = "events"
            schema = "analytics"
            column = "ts"
            interval = "week"
            premake = 4
            retention = "8 weeks"
            retention_mode = "archive"
            archive_schema = "old"
            max_expire_per_run = 10
            default_partition = false
            [tables.vector_index]
            column = "emb"
            method = "hnsw"
            opclass = "vector_l2_ops"
            min_rows = 0
            lists = 100
            m = 32
            ef_construction = 128
            rebuild_growth_factor = 3
            rebuild_on_close = false
            max_maintenance_work_mem = "512MB"
            [[tables]]
            name = "clicks"
            interval = "day"
            retention = "30 days"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.database.url.as_ref().unwrap().expose(),
            "postgres://app@db:5432/app"
        );
        assert_eq!(c.database.url_source, Some(UrlSource::FileUrl));
        assert_eq!(c.database.max_connections, 8);
        assert_eq!(c.database.lock_timeout, Duration::from_millis(500));
        assert_eq!(c.database.statement_timeout, Duration::from_secs(3600));
        assert_eq!(c.database.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.database.ddl_attempts, 1);
        assert_eq!(c.database.ddl_backoff, Duration::from_millis(250));
        assert_eq!(c.http.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.schedule.maintenance, "0 30 3 * * Sun");
        assert_eq!(c.schedule.stats_interval, Duration::from_secs(300));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info,partwarden=debug");
        assert!(c.probe.enabled);
        assert_eq!(
            c.probe.tenant_id.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
        );
        assert_eq!(c.probe.query.as_deref(), Some("SELECT 1"));
        assert_eq!(c.tables.len(), 2);
        let t = &c.tables[0];
        assert_eq!(
            (t.schema.as_str(), t.name.as_str(), t.column.as_str()),
            ("analytics", "events", "ts")
        );
        assert_eq!(t.interval, Interval::Week);
        assert_eq!(t.premake, 4);
        assert_eq!(t.retention, RetentionPeriod::Weeks(8));
        assert_eq!(t.retention_mode, RetentionMode::Archive);
        assert_eq!(t.archive_schema, "old");
        assert_eq!(t.max_expire_per_run, 10);
        assert!(!t.default_partition);
        let v = t.vector_index.as_ref().unwrap();
        assert_eq!(v.method, VectorMethod::Hnsw);
        assert_eq!(v.opclass, "vector_l2_ops");
        assert_eq!(v.min_rows, 0);
        assert_eq!(v.lists, ListsSetting::Fixed(100));
        assert_eq!((v.m, v.ef_construction), (32, 128));
        assert_eq!(v.rebuild_growth_factor, 3.0);
        assert!(!v.rebuild_on_close);
        assert_eq!(v.max_maintenance_work_mem_kb(), 512 * 1024);
        // Exactly the configured tables: no default entry added, no vector index implied.
        let t = &c.tables[1];
        assert_eq!(t.name, "clicks");
        assert_eq!(t.schema, "public");
        assert_eq!(t.interval, Interval::Day);
        assert_eq!(t.vector_index, None);
        assert_eq!(c.find_table("clicks").unwrap().name, "clicks");
        assert_eq!(c.find_table("analytics.events").unwrap().name, "events");
        assert_eq!(c.find_table("nope").unwrap_err().key(), Some("--table"));
        // The password-free URL raises no warning; the probe has a tenant.
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn env_overrides() {
        let e = env(&[
            ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "1s"),
            ("PARTWARDEN__HTTP__LISTEN", "127.0.0.1:1234"),
            ("PARTWARDEN__DATABASE__MAX_CONNECTIONS", "7"),
            ("PARTWARDEN__PROBE__ENABLED", "true"),
            ("partwarden__log__format", "json"),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "0 */15 * * * *"),
        ]);
        let c = Config::from_sources(
            Some("[database]\nlock_timeout = \"3s\"\nmax_connections = 2\n"),
            &e,
        )
        .unwrap();
        assert_eq!(c.database.lock_timeout, Duration::from_secs(1));
        assert_eq!(c.http.listen, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.database.max_connections, 7);
        assert!(c.probe.enabled);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.schedule.maintenance, "0 */15 * * * *");
        // Without a file too.
        let c = Config::from_sources(None, &e).unwrap();
        assert_eq!(c.database.lock_timeout, Duration::from_secs(1));
        // Empty variables count as unset.
        let c = Config::from_sources(None, &env(&[("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "")]))
            .unwrap();
        assert_eq!(c.database.lock_timeout, Duration::from_secs(2));
    }

    #[test]
    fn unrelated_env_ignored() {
        let e = env(&[
            ("PARTWARDEN_SERVICE_HOST", "10.0.0.1"),
            ("PARTWARDEN_PORT_9464_TCP", "tcp://10.0.0.1:9464"),
            ("PARTWARDEN_TEST_X", "1"),
            ("POSTGRES_SERVICE_HOST", "10.0.0.2"),
            ("KUBERNETES_PORT", "tcp://10.0.0.3:443"),
            ("XPARTWARDEN__DATABASE__URL", "x"),
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
        ]);
        assert_eq!(Config::from_sources(None, &e).unwrap(), Config::default());
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(load("[database\n"), Err(ConfigError::Parse(_))));
        let err = load("[database]\nurl = \"postgres://u:hunter2@h/db\" junk\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn load_missing_file_names_it() {
        let err = Config::load(Some(Path::new("/nonexistent/partwarden.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(
            err.to_string().contains("/nonexistent/partwarden.toml"),
            "{err}"
        );
    }

    #[test]
    fn other_validation() {
        for bad in [
            "localhost:9464",
            "9464",
            "0.0.0.0",
            "0.0.0.0:99999",
            "0.0.0.0:0",
        ] {
            invalid_key(&format!("[http]\nlisten = \"{bad}\"\n"), "http.listen");
        }
        let c = load("[http]\nlisten = \"0.0.0.0:9187\"\n").unwrap();
        assert!(c.warnings().iter().any(|w| w.contains("9187")));
        invalid_key("[log]\nformat = \"xml\"\n", "log.format");
        invalid_key("[log]\nlevel = \"loud\"\n", "log.level");
        assert_eq!(
            load("[log]\nlevel = \"DEBUG\"\n").unwrap().log.level,
            "debug"
        );
        invalid_key(
            "[database]\nmax_connections = 0\n",
            "database.max_connections",
        );
        invalid_key("[database]\nddl_attempts = 0\n", "database.ddl_attempts");
        invalid_key("[probe]\ntenant_id = \"not-a-uuid\"\n", "probe.tenant_id");
        invalid_key("[probe]\nquery = \"  \"\n", "probe.query");
        let c = load("[probe]\nenabled = true\n").unwrap();
        assert!(c.warnings().iter().any(|w| w.contains("tenant_id")));
    }
}
