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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::calendar::{Interval, RetentionPeriod};
use crate::ident::{self, Ident, MAX_IDENT_LEN};

/// Prefix of the environment overrides (`PARTWARDEN__SECTION__KEY`).
pub const ENV_PREFIX: &str = "PARTWARDEN";
/// Separator between prefix, section and key in environment overrides.
pub const ENV_SEPARATOR: &str = "__";
/// The conventional variable that overrides every other database URL source.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Default HTTP address. Not 9187: that is postgres_exporter, often the sidecar next door.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9464";
/// Default maintenance schedule: 02:00:00 UTC every day (6 fields, seconds first).
pub const DEFAULT_MAINTENANCE_CRON: &str = "0 0 2 * * *";
/// The table managed when the file has no `[[tables]]`.
pub const DEFAULT_TABLE: &str = "archon_ga4_events";
/// Its pgvector column.
pub const DEFAULT_VECTOR_COLUMN: &str = "embedding_768";

/// PostgreSQL stores `lock_timeout`/`statement_timeout` as an `int` of milliseconds.
const MAX_PG_TIMEOUT_MS: u128 = i32::MAX as u128;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A configuration problem. Every variant means exit code 2 at the binary's edge.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The given config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML (or the sources could not be merged).
    #[error("cannot parse configuration: {0}")]
    Parse(String),
    /// A key has an unknown name or an impossible value.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// A command that needs the database found no URL anywhere.
    #[error(
        "no database URL: set DATABASE_URL, database.url (PARTWARDEN__DATABASE__URL) or \
         database.url_file (PARTWARDEN__DATABASE__URL_FILE)"
    )]
    MissingDatabaseUrl,
}

impl ConfigError {
    /// The process exit code this error maps to (bad usage or bad config).
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// The key this error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn invalid(key: impl Into<String>, message: impl AsRef<str>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: redact_urls(message.as_ref()),
    }
}

// ---------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------

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

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    /// The URL, if any source set one (see the module docs for precedence). Use
    /// [`Config::database_url`] to get it or a proper error.
    pub url: Option<DatabaseUrl>,
    /// Where `url` came from.
    pub url_source: Option<UrlSource>,
    /// `database.url_file` after merging file and environment, whether or not it was used.
    pub url_file: Option<PathBuf>,
    /// Pool size. Default 4.
    pub max_connections: u32,
    /// `lock_timeout` of every DDL statement. Default 2s.
    pub lock_timeout: Duration,
    /// How long a lock that blocks the application (writes or reads of a table) may be
    /// waited for in the queue; holders of long transactions are never queued behind.
    /// Default 50ms.
    pub lock_wait: Duration,
    /// `statement_timeout` of maintenance sessions. Default 30min.
    pub statement_timeout: Duration,
    /// Timeout of one connection attempt. Default 10s.
    pub connect_timeout: Duration,
    /// Tries per DDL step (≥ 1) before the step is reported failed. Default 5.
    pub ddl_attempts: u32,
    /// Base of the jittered exponential backoff between DDL retries. Default 1s.
    pub ddl_backoff: Duration,
}

/// Which source supplied the database URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    /// `DATABASE_URL`
    DatabaseUrlEnv,
    /// `PARTWARDEN__DATABASE__URL`
    EnvUrl,
    /// `PARTWARDEN__DATABASE__URL_FILE`
    EnvUrlFile,
    /// `database.url` in the config file
    FileUrl,
    /// `database.url_file` in the config file
    FileUrlFile,
}

impl UrlSource {
    /// The variable or key name, as used in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            UrlSource::DatabaseUrlEnv => "DATABASE_URL",
            UrlSource::EnvUrl => "PARTWARDEN__DATABASE__URL",
            UrlSource::EnvUrlFile => "PARTWARDEN__DATABASE__URL_FILE",
            UrlSource::FileUrl => "database.url",
            UrlSource::FileUrlFile => "database.url_file",
        }
    }
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`, `/status`. Default 0.0.0.0:9464.
    pub listen: SocketAddr,
}

/// `[schedule]`
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// 6-field cron expression (seconds first), evaluated in UTC. Validated by building
    /// the tokio-cron-scheduler job the daemon uses. Default `0 0 2 * * *`.
    pub maintenance: String,
    /// How often partition statistics are refreshed for `/metrics`. Default 60s.
    pub stats_interval: Duration,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A level (`trace|debug|info|warn|error|off`) or an `EnvFilter` directive list such
    /// as `info,partwarden=debug`. Default `info`.
    pub level: String,
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[probe]`: a query whose latency is measured as a histogram (for the P95 alert).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Default false.
    pub enabled: bool,
    /// Default 60s.
    pub interval: Duration,
    /// Default 5s.
    pub statement_timeout: Duration,
    /// Tenant to set as `app.current_tenant_id` (RLS) for the probe; a UUID, normalised
    /// to lowercase hyphenated form. Default none.
    pub tenant_id: Option<String>,
    /// SQL of the probe; `None` means the daemon's built-in date-range query.
    pub query: Option<String>,
}

/// One `[[tables]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    pub name: Ident,
    /// Default `public`.
    pub schema: Ident,
    /// Partition key column (`timestamptz`). Default `event_timestamp`.
    pub column: Ident,
    /// Default month.
    pub interval: Interval,
    /// Intervals created ahead of the current one (≥ 1). Default 3.
    pub premake: u32,
    /// Default 24 months.
    pub retention: RetentionPeriod,
    /// Default drop.
    pub retention_mode: RetentionMode,
    /// Where `archive` mode moves expired partitions. Default `partwarden_archive`.
    pub archive_schema: Ident,
    /// Cap on partitions expired per run (≥ 1). Default 3.
    pub max_expire_per_run: u32,
    /// Keep a `<name>_default` partition. Default true.
    pub default_partition: bool,
    /// pgvector index policy; `None` = no vector index management.
    pub vector_index: Option<VectorIndexPolicy>,
}

impl TableConfig {
    /// `"schema"."name"`
    pub fn qualified_name(&self) -> String {
        ident::qualified(&self.schema, self.name.as_str())
    }

    /// `schema.name`, unquoted (logs, metric labels, `--table`).
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The configuration key of one of this table's settings, for errors that the database
    /// reveals: `tables[public.events].column`.
    pub fn key(&self, setting: &str) -> String {
        format!("tables[{}].{setting}", self.label())
    }

    /// Name of the table's default partition: `<name>_default`.
    pub fn default_partition_name(&self) -> String {
        format!("{}_default", self.name)
    }
}

/// `tables[].retention_mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    #[default]
    Drop,
    Detach,
    Archive,
}

/// `tables[].vector_index`
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndexPolicy {
    /// Default `embedding_768`.
    pub column: Ident,
    /// Default ivfflat.
    pub method: VectorMethod,
    /// Default `vector_cosine_ops`.
    pub opclass: Ident,
    /// Rows a partition must hold before its index is built. Default 10000.
    pub min_rows: u64,
    /// ivfflat `lists`. Default auto.
    pub lists: ListsSetting,
    /// HNSW `m`. Default 16.
    pub m: u32,
    /// HNSW `ef_construction`. Default 64.
    pub ef_construction: u32,
    /// Rebuild once rows have grown by this factor since the build (> 1). Default 2.0.
    pub rebuild_growth_factor: f64,
    /// Rebuild once more when the partition's interval closes. Default true.
    pub rebuild_on_close: bool,
    /// Ceiling for the session's `maintenance_work_mem` during a build, normalised
    /// (`"2GB"`). Default `2GB`.
    pub max_maintenance_work_mem: String,
}

impl VectorIndexPolicy {
    /// [`VectorIndexPolicy::max_maintenance_work_mem`] in kB.
    pub fn max_maintenance_work_mem_kb(&self) -> u64 {
        parse_memory_kb(&self.max_maintenance_work_mem).expect("validated at load")
    }
}

/// `vector_index.method`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorMethod {
    #[default]
    Ivfflat,
    Hnsw,
}

/// `vector_index.lists`: `"auto"` (from the row count) or a fixed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ListsSetting {
    #[default]
    Auto,
    Fixed(u32),
}

macro_rules! keyword_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} {:?}: expected {}",
                        $what,
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

keyword_enum!(LogFormat, "log format", { Text => "text", Json => "json" });
keyword_enum!(RetentionMode, "retention mode", { Drop => "drop", Detach => "detach", Archive => "archive" });
keyword_enum!(VectorMethod, "vector index method", { Ivfflat => "ivfflat", Hnsw => "hnsw" });

impl fmt::Display for ListsSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListsSetting::Auto => f.write_str("auto"),
            ListsSetting::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for ListsSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ListsSetting::Auto);
        }
        match t.parse::<i64>() {
            Ok(n) if (1..=32_768).contains(&n) => Ok(ListsSetting::Fixed(n as u32)),
            Ok(n) => Err(format!(
                "must be between 1 and 32768, pgvector's limit (got {n})"
            )),
            Err(_) => Err(format!(
                "expected \"auto\" or a whole number of lists (got {s:?})"
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Database URL
// ---------------------------------------------------------------------------------------

/// A `postgres://` or `postgresql://` URL, parsed by the `url` crate (the parser sqlx
/// connects with) and held in a [`SecretString`]. `Debug` and `Display` redact the
/// password (`postgres://user:***@host/db`, also `?password=***`);
/// [`DatabaseUrl::expose`] gives the real string, for the connection only.
#[derive(Clone)]
pub struct DatabaseUrl {
    secret: SecretString,
    redacted: String,
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl Eq for DatabaseUrl {}

impl DatabaseUrl {
    /// Check the scheme and the syntax, and wrap. The error never contains the password.
    pub fn new(url: impl Into<String>) -> Result<DatabaseUrl, String> {
        let secret = SecretString::from(url.into());
        let text = secret.expose_secret();
        let lower = text.to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            let shown = match text.find("://") {
                Some(i) => format!("{:?}", format!("{}://…", &text[..i])),
                None => "a value that is not a URL (not shown)".to_owned(),
            };
            return Err(format!(
                "must be a postgres:// or postgresql:// URL (got {shown})"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "must not contain whitespace or control characters (got {})",
                redact_url(text)
            ));
        }
        let parsed = Url::parse(text).map_err(|e| {
            format!(
                "is not a valid URL: {e} (got {}; a password with '/', '@', ':' or '#' \
                 must be percent-encoded)",
                redact_url(text)
            )
        })?;
        let redacted = redact_parsed(&parsed);
        Ok(DatabaseUrl { secret, redacted })
    }

    /// The real URL, password included. Only for handing to the database driver.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        self.redacted.clone()
    }

    /// Does the URL carry a password (in the user info or as a `password` parameter)?
    pub fn has_password(&self) -> bool {
        self.redacted != self.expose()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DatabaseUrl::new(s)
    }
}

/// A parsed URL with the user-info password and every query parameter whose name contains
/// `password` (`password`, `sslpassword`) replaced by `***`; the rest as written.
fn redact_parsed(url: &Url) -> String {
    let mut shown = url.clone();
    if url.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = shown.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let params: Vec<String> = query
            .split('&')
            .map(|param| {
                let key = url::form_urlencoded::parse(param.as_bytes())
                    .next()
                    .map(|(k, _)| k.to_ascii_lowercase())
                    .unwrap_or_default();
                match param.split_once('=') {
                    Some((k, _)) if key.contains("password") => format!("{k}=***"),
                    _ => param.to_owned(),
                }
            })
            .collect();
        shown.set_query(Some(&params.join("&")));
    }
    shown.to_string()
}

/// Redact one URL-looking token: redacted as a URL when it parses as one, otherwise
/// everything after the scheme is hidden (an odd URL may hold its password anywhere).
fn redact_url(token: &str) -> String {
    match Url::parse(token) {
        Ok(url) => redact_parsed(&url),
        Err(_) => match token.find("://") {
            Some(i) => format!("{}://***", &token[..i]),
            None => token.to_owned(),
        },
    }
}

/// Redact every URL-looking token (anything around a `://`) in free text, such as a
/// parser's error message that quotes a line of the file.
fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let is_delim = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(is_delim)
            .map(|p| p + rest[p..].chars().next().unwrap().len_utf8())
            .unwrap_or(0);
        let end = rest[i..]
            .find(is_delim)
            .map(|p| i + p)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------------

/// Parse a duration string: a whole number, an optional space, and a unit among `ms`,
/// `s`/`sec`/`seconds`, `m`/`min`/`minutes`, `h`/`hour(s)`, `d`/`day(s)`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let examples = "such as \"500ms\", \"2s\", \"5min\", \"1h\" or \"1d\"";
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "{s:?} is not a duration: expected a whole number and a unit, {examples}"
        ));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{s:?}: fractions are not supported; use a smaller unit (\"1500ms\")"
        ));
    }
    let ms_per_unit: u64 = match unit.as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "" => return Err(format!("{s:?} has no unit: write it {examples}")),
        other => {
            return Err(format!(
                "{s:?} has an unknown unit {other:?}: use ms, s, min, h or d"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(ms_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Format a duration the way the config file writes it (`"500ms"`, `"2s"`, `"30min"`,
/// `"1h"`, `"1d"`), with the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Parse a PostgreSQL memory size with a unit (`64MB`, `2GB`, `512kB`, `1TB`; units are
/// case-sensitive, as in PostgreSQL) into kB.
pub fn parse_memory_kb(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let kb_per_unit: u64 = match unit.trim_start() {
        "kB" => 1,
        "MB" => 1024,
        "GB" => 1024 * 1024,
        "TB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{s:?} is not a memory size: expected a whole number and kB, MB, GB or TB, such as \"64MB\" or \"2GB\""
            ))
        }
    };
    let kb = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(kb_per_unit))
        .ok_or_else(|| format!("{s:?} is not a memory size: expected a whole number and a unit"))?;
    // PostgreSQL's bounds for maintenance_work_mem.
    if !(1024..=i32::MAX as u64).contains(&kb) {
        return Err(format!(
            "{s:?} is outside PostgreSQL's range for maintenance_work_mem (1MB to 2147483647kB)"
        ));
    }
    Ok(kb)
}

// ---------------------------------------------------------------------------------------
// Raw (deserialized) configuration: every field optional, loose types, validated later
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    database: RawDatabase,
    http: RawHttp,
    schedule: RawSchedule,
    log: RawLog,
    probe: RawProbe,
    tables: Option<Vec<RawTable>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: Option<String>,
    url_file: Option<String>,
    max_connections: Option<i64>,
    lock_timeout: Option<String>,
    lock_wait: Option<String>,
    statement_timeout: Option<String>,
    connect_timeout: Option<String>,
    ddl_attempts: Option<i64>,
    ddl_backoff: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    maintenance: Option<String>,
    stats_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawProbe {
    enabled: Option<bool>,
    interval: Option<String>,
    statement_timeout: Option<String>,
    tenant_id: Option<String>,
    query: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTable {
    name: Option<String>,
    schema: Option<String>,
    column: Option<String>,
    interval: Option<String>,
    premake: Option<i64>,
    retention: Option<String>,
    retention_mode: Option<String>,
    archive_schema: Option<String>,
    max_expire_per_run: Option<i64>,
    default_partition: Option<bool>,
    vector_index: Option<RawVectorIndex>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawVectorIndex {
    column: Option<String>,
    method: Option<String>,
    opclass: Option<String>,
    min_rows: Option<i64>,
    /// `"auto"` or an integer; the config crate hands integers over as their text.
    lists: Option<String>,
    m: Option<i64>,
    ef_construction: Option<i64>,
    rebuild_growth_factor: Option<f64>,
    rebuild_on_close: Option<bool>,
    max_maintenance_work_mem: Option<String>,
}

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
const HTTP_KEYS: &[(&str, Kind)] = &[("listen", Kind::Str)];
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
];

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

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
        let text = match path {
            Some(p) => Some(
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
            ),
            None => None,
        };
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Config::from_sources(text.as_deref(), &env).map_err(|e| match (e, path) {
            (ConfigError::Parse(msg), Some(p)) => {
                ConfigError::Parse(format!("{}: {msg}", p.display()))
            }
            (e, _) => e,
        })
    }

    /// Build the configuration from TOML text (if any) and an explicit environment.
    /// Reads no environment itself; it only reads the file named by `database.url_file`
    /// when that is the URL source chosen.
    pub fn from_sources(
        toml: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let env_keys = prefixed_env_keys(env)?;

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
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Parse(redact_urls(&e.to_string())))?;

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
        let tables = tables_config(raw.tables, &mut warnings)?;

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

/// `PARTWARDEN__…` variables as config key paths (`database.lock_timeout`) → variable
/// names, for error messages. Rejects overrides of `tables`.
fn prefixed_env_keys(env: &[(String, String)]) -> Result<BTreeMap<String, String>, ConfigError> {
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

fn check_keys(
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
fn from_config_error(e: config::ConfigError) -> ConfigError {
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

// ---------------------------------------------------------------------------------------
// Validation, section by section
// ---------------------------------------------------------------------------------------

fn duration_at(
    key: &str,
    raw: Option<String>,
    default: Duration,
    max_ms: Option<u128>,
) -> Result<Duration, ConfigError> {
    let Some(s) = raw else {
        return Ok(default);
    };
    let d = parse_duration(&s).map_err(|m| invalid(key, m))?;
    if d.is_zero() {
        return Err(invalid(
            key,
            format!("must be greater than zero (got {s:?})"),
        ));
    }
    if let Some(max) = max_ms {
        if d.as_millis() > max {
            return Err(invalid(
                key,
                format!("must be at most {max}ms, PostgreSQL's limit (got {s:?})"),
            ));
        }
    }
    Ok(d)
}

fn int_at<T: TryFrom<i64>>(
    key: &str,
    raw: Option<i64>,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, ConfigError> {
    let Some(n) = raw else {
        return Ok(default);
    };
    if n < min {
        return Err(invalid(key, format!("must be at least {min} (got {n})")));
    }
    if n > max {
        return Err(invalid(key, format!("must be at most {max} (got {n})")));
    }
    T::try_from(n).map_err(|_| invalid(key, format!("out of range (got {n})")))
}

fn ident_at(key: &str, raw: Option<String>, default: &str) -> Result<Ident, ConfigError> {
    Ident::new(raw.unwrap_or_else(|| default.to_owned())).map_err(|e| invalid(key, e.to_string()))
}

fn parse_at<T: FromStr<Err = String>>(
    key: &str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match raw {
        Some(s) => s.parse().map_err(|m: String| invalid(key, m)),
        None => Ok(default),
    }
}

type UrlProblem = Option<(String, String)>;

fn database_config(
    raw: RawDatabase,
    env: &[(String, String)],
    env_keys: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(DatabaseConfig, UrlProblem), ConfigError> {
    let max_connections = int_at(
        "database.max_connections",
        raw.max_connections,
        4u32,
        1,
        100,
    )?;
    let lock_timeout = duration_at(
        "database.lock_timeout",
        raw.lock_timeout,
        Duration::from_secs(2),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let statement_timeout = duration_at(
        "database.statement_timeout",
        raw.statement_timeout,
        Duration::from_secs(30 * 60),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let connect_timeout = duration_at(
        "database.connect_timeout",
        raw.connect_timeout,
        Duration::from_secs(10),
        None,
    )?;
    let ddl_attempts = int_at("database.ddl_attempts", raw.ddl_attempts, 5u32, 1, 100)?;
    let ddl_backoff = duration_at(
        "database.ddl_backoff",
        raw.ddl_backoff,
        Duration::from_secs(1),
        None,
    )?;
    let lock_wait = duration_at(
        "database.lock_wait",
        raw.lock_wait,
        Duration::from_millis(50),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    if lock_wait > lock_timeout {
        return Err(invalid(
            "database.lock_wait",
            format!(
                "must not exceed database.lock_timeout ({} > {})",
                format_duration(lock_wait),
                format_duration(lock_timeout)
            ),
        ));
    }
    if lock_timeout > statement_timeout {
        return Err(invalid(
            "database.lock_timeout",
            format!(
                "must not exceed database.statement_timeout ({} > {})",
                format_duration(lock_timeout),
                format_duration(statement_timeout)
            ),
        ));
    }

    // The URL: the first set source in precedence order wins (see the module docs).
    let database_url_env = env
        .iter()
        .rev()
        .find(|(k, v)| k == DATABASE_URL_ENV && !v.is_empty())
        .map(|(_, v)| v.clone());
    let url_from_env = env_keys.contains_key("database.url");
    let url_file_from_env = env_keys.contains_key("database.url_file");
    let merged_url = raw.url.filter(|s| !s.trim().is_empty());
    let merged_url_file = raw
        .url_file
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from);

    let mut candidates: Vec<UrlSource> = Vec::new();
    if database_url_env.is_some() {
        candidates.push(UrlSource::DatabaseUrlEnv);
    }
    if merged_url.is_some() && url_from_env {
        candidates.push(UrlSource::EnvUrl);
    }
    if merged_url_file.is_some() && url_file_from_env {
        candidates.push(UrlSource::EnvUrlFile);
    }
    if merged_url.is_some() && !url_from_env {
        candidates.push(UrlSource::FileUrl);
    }
    if merged_url_file.is_some() && !url_file_from_env {
        candidates.push(UrlSource::FileUrlFile);
    }
    if candidates.len() > 1 {
        let ignored: Vec<&str> = candidates[1..].iter().map(|s| s.as_str()).collect();
        warnings.push(format!(
            "database URL taken from {}; also set but ignored: {}",
            candidates[0],
            ignored.join(", ")
        ));
    }

    let mut url = None;
    let mut url_source = None;
    let mut problem = None;
    if let Some(&source) = candidates.first() {
        let (key, text) = match source {
            UrlSource::DatabaseUrlEnv => (source.as_str(), database_url_env.clone()),
            UrlSource::EnvUrl | UrlSource::FileUrl => ("database.url", merged_url.clone()),
            UrlSource::EnvUrlFile | UrlSource::FileUrlFile => {
                let path = merged_url_file.as_ref().expect("candidate implies a path");
                match std::fs::read_to_string(path) {
                    Ok(s) if !s.trim().is_empty() => {
                        ("database.url_file", Some(s.trim().to_owned()))
                    }
                    Ok(_) => {
                        problem = Some((
                            "database.url_file".to_owned(),
                            format!("{} is empty", path.display()),
                        ));
                        ("database.url_file", None)
                    }
                    Err(e) => {
                        problem = Some((
                            "database.url_file".to_owned(),
                            format!("cannot read {}: {e}", path.display()),
                        ));
                        ("database.url_file", None)
                    }
                }
            }
        };
        if let Some(text) = text {
            let parsed = DatabaseUrl::new(text.trim()).map_err(|m| {
                let origin = match source {
                    UrlSource::EnvUrl => " (from PARTWARDEN__DATABASE__URL)",
                    UrlSource::EnvUrlFile => " (file named by PARTWARDEN__DATABASE__URL_FILE)",
                    _ => "",
                };
                invalid(key, format!("{m}{origin}"))
            })?;
            if source == UrlSource::FileUrl && parsed.has_password() {
                warnings.push(
                    "database.url in the config file contains a password; prefer DATABASE_URL or \
                     database.url_file (a mounted secret)"
                        .to_owned(),
                );
            }
            url = Some(parsed);
            url_source = Some(source);
        }
    }

    Ok((
        DatabaseConfig {
            url,
            url_source,
            url_file: merged_url_file,
            max_connections,
            lock_timeout,
            lock_wait,
            statement_timeout,
            connect_timeout,
            ddl_attempts,
            ddl_backoff,
        },
        problem,
    ))
}

fn http_config(raw: RawHttp, warnings: &mut Vec<String>) -> Result<HttpConfig, ConfigError> {
    let text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = text.trim().parse().map_err(|_| {
        invalid(
            "http.listen",
            format!("{text:?} is not a socket address: expected IP:port, such as \"0.0.0.0:9464\" or \"[::]:9464\""),
        )
    })?;
    if listen.port() == 0 {
        return Err(invalid(
            "http.listen",
            format!("port must not be 0 (got {text:?}): Prometheus needs a fixed port"),
        ));
    }
    if listen.port() == 9187 {
        warnings.push(
            "http.listen uses port 9187, postgres_exporter's default: it will clash with an exporter sidecar".to_owned(),
        );
    }
    Ok(HttpConfig { listen })
}

/// Validate a maintenance schedule exactly as the daemon will use it: 6 fields (seconds
/// first) and accepted by tokio-cron-scheduler's own constructor (croner with seconds
/// required and day-of-month AND day-of-week), in UTC. Needs no async runtime.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        let hint = if fields == 5 {
            format!(
                "; a crontab line has 5, but seconds come first here: \"0 {}\"",
                expr.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        } else {
            String::new()
        };
        return Err(format!(
            "{expr:?} has {fields} fields; expected exactly 6 (second minute hour day-of-month month \
             day-of-week, UTC), such as \"0 0 2 * * *\"{hint}"
        ));
    }
    tokio_cron_scheduler::Job::new_async_tz(expr, chrono::Utc, |_id, _scheduler| Box::pin(async {}))
        .map(|_| ())
        .map_err(|_| format!("{expr:?} is not a valid cron expression (second minute hour day-of-month month day-of-week)"))
}

fn schedule_config(raw: RawSchedule) -> Result<ScheduleConfig, ConfigError> {
    let maintenance = raw
        .maintenance
        .unwrap_or_else(|| DEFAULT_MAINTENANCE_CRON.to_owned())
        .trim()
        .to_owned();
    validate_cron(&maintenance).map_err(|m| invalid("schedule.maintenance", m))?;
    let stats_interval = duration_at(
        "schedule.stats_interval",
        raw.stats_interval,
        Duration::from_secs(60),
        None,
    )?;
    Ok(ScheduleConfig {
        maintenance,
        stats_interval,
    })
}

fn log_config(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let format = parse_at("log.format", raw.format, LogFormat::Text)?;
    let level = raw
        .level
        .unwrap_or_else(|| "info".to_owned())
        .trim()
        .to_owned();
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level = if level.contains(['=', ',']) {
        tracing_subscriber::EnvFilter::try_new(&level)
            .map_err(|e| invalid("log.level", format!("{level:?} is not a valid filter: {e}")))?;
        level
    } else if LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        level.to_ascii_lowercase()
    } else {
        return Err(invalid(
            "log.level",
            format!(
                "{level:?}: expected one of {} or a filter such as \"info,partwarden=debug\"",
                LEVELS.join(", ")
            ),
        ));
    };
    Ok(LogConfig { format, level })
}

fn probe_config(raw: RawProbe, warnings: &mut Vec<String>) -> Result<ProbeConfig, ConfigError> {
    let enabled = raw.enabled.unwrap_or(false);
    let interval = duration_at(
        "probe.interval",
        raw.interval,
        Duration::from_secs(60),
        None,
    )?;
    let statement_timeout = duration_at(
        "probe.statement_timeout",
        raw.statement_timeout,
        Duration::from_secs(5),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let tenant_id = match raw
        .tenant_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            uuid::Uuid::parse_str(&s)
                .map_err(|_| invalid("probe.tenant_id", format!("{s:?} is not a UUID")))?
                .hyphenated()
                .to_string(),
        ),
    };
    let query = match raw.query {
        None => None,
        Some(q) if q.trim().is_empty() => {
            return Err(invalid(
                "probe.query",
                "must not be empty (remove the key to use the built-in query)",
            ))
        }
        Some(q) => Some(q),
    };
    if enabled && tenant_id.is_none() {
        warnings.push(
            "probe.enabled is true but probe.tenant_id is unset: with forced row-level security the probe sees no rows"
                .to_owned(),
        );
    }
    Ok(ProbeConfig {
        enabled,
        interval,
        statement_timeout,
        tenant_id,
        query,
    })
}

fn default_raw_tables() -> Vec<RawTable> {
    vec![RawTable {
        name: Some(DEFAULT_TABLE.to_owned()),
        vector_index: Some(RawVectorIndex {
            column: Some(DEFAULT_VECTOR_COLUMN.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }]
}

fn tables_config(
    raw: Option<Vec<RawTable>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<TableConfig>, ConfigError> {
    let raw = raw.unwrap_or_else(default_raw_tables);
    if raw.is_empty() {
        return Err(invalid(
            "tables",
            "is empty: configure at least one [[tables]] entry (or omit tables for the default archon_ga4_events)",
        ));
    }
    let mut seen: HashMap<(Ident, Ident), usize> = HashMap::new();
    let mut tables = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let table = table_config(&format!("tables[{i}]"), t, warnings)?;
        if let Some(j) = seen.insert((table.schema.clone(), table.name.clone()), i) {
            return Err(invalid(
                format!("tables[{i}].name"),
                format!(
                    "table {} is configured twice (also tables[{j}])",
                    table.label()
                ),
            ));
        }
        tables.push(table);
    }
    Ok(tables)
}

fn table_config(
    p: &str,
    raw: RawTable,
    warnings: &mut Vec<String>,
) -> Result<TableConfig, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let Some(name) = raw.name else {
        return Err(invalid(key("name"), "is required"));
    };
    let name = Ident::new(name).map_err(|e| invalid(key("name"), e.to_string()))?;
    let schema = ident_at(&key("schema"), raw.schema, "public")?;
    let column = ident_at(&key("column"), raw.column, "event_timestamp")?;
    let interval = parse_at(&key("interval"), raw.interval, Interval::Month)?;
    let longest = name.as_str().len() + interval.max_suffix_len();
    if longest > MAX_IDENT_LEN {
        return Err(invalid(
            key("name"),
            format!(
                "{:?} is too long for {} partitions: with the suffix (e.g. {:?}) partition names would be {} bytes; \
                 PostgreSQL identifiers are at most {MAX_IDENT_LEN}, so the name can be at most {} bytes",
                name.as_str(),
                interval,
                interval.suffix(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
                longest,
                MAX_IDENT_LEN - interval.max_suffix_len()
            ),
        ));
    }
    // At most ten years ahead: more is a typo, and every interval is a CREATE per run.
    let premake_cap = match interval {
        Interval::Month => 120,
        Interval::Week => 520,
        Interval::Day => 3660,
    };
    if let Some(n) = raw.premake.filter(|n| *n > premake_cap) {
        return Err(invalid(
            key("premake"),
            format!("must be at most {premake_cap} (ten years of {interval}s; got {n})"),
        ));
    }
    let premake = int_at(&key("premake"), raw.premake, 3u32, 1, premake_cap)?;
    let retention = parse_at(
        &key("retention"),
        raw.retention,
        RetentionPeriod::Months(24),
    )?;
    if let Some(cap) = retention.over_cap() {
        return Err(invalid(
            key("retention"),
            format!("\"{retention}\" is longer than 100 years; at most {cap}"),
        ));
    }
    if retention.shorter_than(interval, premake) {
        return Err(invalid(
            key("retention"),
            format!(
                "\"{retention}\" is shorter than premake = {premake} ({premake} {interval}{}): retention must \
                 cover at least as long as the partitions premake keeps ahead",
                if premake == 1 { "" } else { "s" }
            ),
        ));
    }
    let retention_mode = parse_at(
        &key("retention_mode"),
        raw.retention_mode,
        RetentionMode::Drop,
    )?;
    let archive_schema = ident_at(
        &key("archive_schema"),
        raw.archive_schema,
        "partwarden_archive",
    )?;
    if retention_mode == RetentionMode::Archive && archive_schema == schema {
        return Err(invalid(
            key("archive_schema"),
            format!(
                "must differ from {} ({schema}) when retention_mode is archive",
                key("schema")
            ),
        ));
    }
    let max_expire_per_run = int_at(
        &key("max_expire_per_run"),
        raw.max_expire_per_run,
        3u32,
        1,
        10_000,
    )?;
    let default_partition = raw.default_partition.unwrap_or(true);
    let vector_index = match raw.vector_index {
        None => None,
        Some(v) => Some(vector_policy(&key("vector_index"), v, &column, warnings)?),
    };
    Ok(TableConfig {
        name,
        schema,
        column,
        interval,
        premake,
        retention,
        retention_mode,
        archive_schema,
        max_expire_per_run,
        default_partition,
        vector_index,
    })
}

fn vector_policy(
    p: &str,
    raw: RawVectorIndex,
    partition_column: &Ident,
    warnings: &mut Vec<String>,
) -> Result<VectorIndexPolicy, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let column = ident_at(&key("column"), raw.column, DEFAULT_VECTOR_COLUMN)?;
    if &column == partition_column {
        return Err(invalid(
            key("column"),
            format!("{column} is the partition column, not a vector column"),
        ));
    }
    let method = parse_at(&key("method"), raw.method, VectorMethod::Ivfflat)?;
    let opclass = ident_at(&key("opclass"), raw.opclass, "vector_cosine_ops")?;
    let min_rows_min = if method == VectorMethod::Ivfflat {
        1
    } else {
        0
    };
    let min_rows = int_at(
        &key("min_rows"),
        raw.min_rows,
        10_000u64,
        min_rows_min,
        i64::MAX,
    )?;
    let lists = match raw.lists {
        None => ListsSetting::Auto,
        Some(s) => s.parse().map_err(|m: String| invalid(key("lists"), m))?,
    };
    // pgvector's limits for HNSW.
    let m = int_at(&key("m"), raw.m, 16u32, 2, 100)?;
    let ef_construction = int_at(
        &key("ef_construction"),
        raw.ef_construction,
        64u32,
        4,
        1_000,
    )?;
    if ef_construction < 2 * m {
        return Err(invalid(
            key("ef_construction"),
            format!(
                "must be at least 2 × m = {} (got {ef_construction}), pgvector's rule",
                2 * m
            ),
        ));
    }
    let rebuild_growth_factor = raw.rebuild_growth_factor.unwrap_or(2.0);
    if !(rebuild_growth_factor.is_finite() && rebuild_growth_factor > 1.0) {
        return Err(invalid(
            key("rebuild_growth_factor"),
            format!("must be greater than 1.0 (got {rebuild_growth_factor})"),
        ));
    }
    let rebuild_on_close = raw.rebuild_on_close.unwrap_or(true);
    let mem = raw
        .max_maintenance_work_mem
        .unwrap_or_else(|| "2GB".to_owned());
    parse_memory_kb(&mem).map_err(|m| invalid(key("max_maintenance_work_mem"), m))?;
    let max_maintenance_work_mem: String = mem.split_whitespace().collect();
    if let (VectorMethod::Ivfflat, ListsSetting::Fixed(n)) = (method, lists) {
        if min_rows < u64::from(n) {
            warnings.push(format!(
                "{}: {min_rows} is below lists = {n}: an ivfflat index trained on fewer rows than lists has poor recall",
                key("min_rows")
            ));
        }
    }
    Ok(VectorIndexPolicy {
        column,
        method,
        opclass,
        min_rows,
        lists,
        m,
        ef_construction,
        rebuild_growth_factor,
        rebuild_on_close,
        max_maintenance_work_mem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some(toml), &[])
    }

    /// The error for `toml`, which must be `Invalid` for `key`.
    fn invalid_key(toml: &str, key: &str) -> String {
        match load(toml) {
            Ok(_) => panic!("accepted:\n{toml}"),
            Err(e @ ConfigError::Invalid { .. }) => {
                assert_eq!(e.key(), Some(key), "wrong key in {e}");
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{key}: ")), "{msg}");
                assert_eq!(e.exit_code(), 2);
                msg
            }
            Err(e) => panic!("expected Invalid for {key}, got {e:?}"),
        }
    }

    fn table(extra: &str) -> String {
        format!("[[tables]]\nname = \"events\"\n{extra}\n")
    }

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
        let shipped = load(include_str!("../config/partwarden.toml")).unwrap();
        assert_eq!(shipped, Config::from_sources(None, &[]).unwrap());
    }

    #[test]
    fn shipped_file_documents_every_key() {
        let text = include_str!("../config/partwarden.toml");
        let all = [
            DATABASE_KEYS,
            HTTP_KEYS,
            SCHEDULE_KEYS,
            LOG_KEYS,
            PROBE_KEYS,
            TABLE_KEYS,
            VECTOR_KEYS,
        ];
        for (key, _) in all.iter().flat_map(|k| k.iter()) {
            let present = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} =")) || l == format!("[tables.{key}]")
            });
            assert!(present, "config/partwarden.toml does not mention {key}");
        }
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

    /// Issue 10.6 and 10.9: values that would make the planner do absurd or impossible
    /// work are capped, and the caps are named.
    #[test]
    fn caps_named() {
        let msg = invalid_key(&table("premake = 10000"), "tables[0].premake");
        assert!(msg.contains("at most 120"), "{msg}");
        load(&table("premake = 120\nretention = \"121 months\"")).unwrap();
        let msg = invalid_key(
            &table("interval = \"day\"\npremake = 4000\nretention = \"5000 days\""),
            "tables[0].premake",
        );
        assert!(msg.contains("at most 3660"), "{msg}");
        let msg = invalid_key(
            &table("retention = \"4294967295 months\""),
            "tables[0].retention",
        );
        assert!(msg.contains("1200 months"), "{msg}");
        invalid_key(&table("retention = \"40000 days\""), "tables[0].retention");
        load(&table("retention = \"1200 months\"")).unwrap();
        invalid_key(
            "[database]\nmax_connections = 101\n",
            "database.max_connections",
        );
        invalid_key("[database]\nddl_attempts = 101\n", "database.ddl_attempts");
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
    fn table_validation() {
        assert_eq!(
            invalid_key(&table("premake = 0"), "tables[0].premake"),
            "tables[0].premake: must be at least 1 (got 0)"
        );
        invalid_key(&table("premake = -2"), "tables[0].premake");
        invalid_key(
            &table("max_expire_per_run = 0"),
            "tables[0].max_expire_per_run",
        );
        let msg = invalid_key(
            &table("premake = 3\nretention = \"2 months\""),
            "tables[0].retention",
        );
        assert!(msg.contains("premake"), "{msg}");
        invalid_key(
            &table("interval = \"week\"\npremake = 5\nretention = \"4 weeks\""),
            "tables[0].retention",
        );
        load(&table(
            "interval = \"day\"\npremake = 3\nretention = \"3 days\"",
        ))
        .unwrap();
        invalid_key(&table("retention = \"forever\""), "tables[0].retention");
        invalid_key(&table("interval = \"year\""), "tables[0].interval");
        invalid_key(
            &table("retention_mode = \"truncate\""),
            "tables[0].retention_mode",
        );
        let msg = invalid_key(
            &table("retention_mode = \"archive\"\narchive_schema = \"public\""),
            "tables[0].archive_schema",
        );
        assert!(msg.contains("must differ"), "{msg}");
        load(&table(
            "retention_mode = \"detach\"\narchive_schema = \"public\"",
        ))
        .unwrap();
        invalid_key("[[tables]]\nschema = \"x\"\n", "tables[0].name");
        invalid_key("tables = []\n", "tables");
        let dup = format!("{}{}", table(""), table(""));
        let msg = invalid_key(&dup, "tables[1].name");
        assert!(
            msg.contains("public.events") && msg.contains("tables[0]"),
            "{msg}"
        );
        load(&format!("{}{}", table(""), table("schema = \"other\""))).unwrap();
    }

    #[test]
    fn identifier_validation() {
        let msg = invalid_key(
            &table("").replace("events", "events; drop table x"),
            "tables[0].name",
        );
        assert!(
            msg.contains("\"events; drop table x\" is not a valid identifier"),
            "{msg}"
        );
        invalid_key(&table("schema = \"Public\""), "tables[0].schema");
        invalid_key(&table("column = \"event-ts\""), "tables[0].column");
        invalid_key(&table("archive_schema = \"\""), "tables[0].archive_schema");
        invalid_key(
            &table("[tables.vector_index]\ncolumn = \"1emb\""),
            "tables[0].vector_index.column",
        );
        invalid_key(
            &table("[tables.vector_index]\nopclass = \"a b\""),
            "tables[0].vector_index.opclass",
        );
        invalid_key(
            &table("[tables.vector_index]\ncolumn = \"event_timestamp\""),
            "tables[0].vector_index.column",
        );
        // The name must leave room for the partition suffix.
        let name55 = "a".repeat(55); // + "_YYYY_MM" (8) = 63: fits monthly
        load(&format!("[[tables]]\nname = \"{name55}\"\n")).unwrap();
        let msg = invalid_key(
            &format!("[[tables]]\nname = \"{name55}\"\ninterval = \"day\"\n"),
            "tables[0].name",
        );
        assert!(
            msg.contains("66 bytes") && msg.contains("at most 52"),
            "{msg}"
        );
        let name56 = "a".repeat(56);
        invalid_key(
            &format!("[[tables]]\nname = \"{name56}\"\n"),
            "tables[0].name",
        );
        invalid_key(
            &format!("[[tables]]\nname = \"{}\"\n", "a".repeat(64)),
            "tables[0].name",
        );
    }

    #[test]
    fn cron_validation() {
        let msg = invalid_key(
            "[schedule]\nmaintenance = \"0 2 * * *\"\n",
            "schedule.maintenance",
        );
        assert!(
            msg.contains("exactly 6") && msg.contains("\"0 0 2 * * *\""),
            "{msg}"
        );
        invalid_key(
            "[schedule]\nmaintenance = \"0 0 2 * * * 2030\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"@daily\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"0 0 25 * * *\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"a b c d e f\"\n",
            "schedule.maintenance",
        );
        invalid_key("[schedule]\nmaintenance = \"\"\n", "schedule.maintenance");
        for ok in [
            "0 0 2 * * *",
            "*/30 * * * * *",
            "0 0 3 * * Mon-Fri",
            "0 15 1 1 * *",
        ] {
            validate_cron(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn duration_validation() {
        for key in [
            "database.lock_timeout",
            "database.statement_timeout",
            "database.connect_timeout",
            "database.ddl_backoff",
            "schedule.stats_interval",
            "probe.interval",
            "probe.statement_timeout",
        ] {
            let (section, k) = key.split_once('.').unwrap();
            for bad in ["0s", "2", "abc", "1.5s", "3 fortnights", "-1s"] {
                invalid_key(&format!("[{section}]\n{k} = \"{bad}\"\n"), key);
            }
        }
        let msg = invalid_key(
            "[database]\nlock_timeout = \"0s\"\n",
            "database.lock_timeout",
        );
        assert!(msg.contains("greater than zero"), "{msg}");
        invalid_key(
            "[database]\nlock_timeout = \"25d\"\n",
            "database.lock_timeout",
        );
        let msg = invalid_key(
            "[database]\nlock_timeout = \"1h\"\nstatement_timeout = \"1min\"\n",
            "database.lock_timeout",
        );
        assert!(msg.contains("statement_timeout"), "{msg}");
    }

    #[test]
    fn parse_duration_units() {
        let ok = [
            ("500ms", 500),
            ("2s", 2_000),
            ("2 s", 2_000),
            (" 5min ", 300_000),
            ("5m", 300_000),
            ("30min", 1_800_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("2 seconds", 2_000),
            ("0ms", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for bad in [
            "",
            "s",
            "2",
            "1.5s",
            "2 x",
            "-1s",
            "99999999999999999999d",
            "1h30min",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        for (d, s) in [
            (500, "500ms"),
            (2_000, "2s"),
            (1_800_000, "30min"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (1_500, "1500ms"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(d)), s);
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(d));
        }
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

    #[test]
    fn vector_index_validation() {
        let vi = |s: &str| table(&format!("[tables.vector_index]\n{s}"));
        let k = |s: &str| format!("tables[0].vector_index.{s}");
        invalid_key(&vi("method = \"flat\""), &k("method"));
        invalid_key(&vi("lists = 0"), &k("lists"));
        invalid_key(&vi("lists = \"many\""), &k("lists"));
        invalid_key(&vi("lists = 40000"), &k("lists"));
        invalid_key(&vi("lists = 1.5"), &k("lists"));
        assert_eq!(
            load(&vi("lists = \"AUTO\"")).unwrap().tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .lists,
            ListsSetting::Auto
        );
        assert_eq!(
            load(&vi("lists = \"50\"")).unwrap().tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .lists,
            ListsSetting::Fixed(50)
        );
        let msg = invalid_key(
            &vi("rebuild_growth_factor = 1.0"),
            &k("rebuild_growth_factor"),
        );
        assert!(msg.contains("greater than 1"), "{msg}");
        invalid_key(
            &vi("rebuild_growth_factor = 0.5"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(
            &vi("rebuild_growth_factor = nan"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(
            &vi("rebuild_growth_factor = inf"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(&vi("min_rows = -1"), &k("min_rows"));
        invalid_key(&vi("min_rows = 0"), &k("min_rows")); // ivfflat needs data
        invalid_key(&vi("m = 1"), &k("m"));
        invalid_key(&vi("ef_construction = 20"), &k("ef_construction")); // < 2 × 16
        for bad in ["2G", "2gb", "lots", "512kB", "0MB", "3TB", "GB"] {
            invalid_key(
                &vi(&format!("max_maintenance_work_mem = \"{bad}\"")),
                &k("max_maintenance_work_mem"),
            );
        }
        let c = load(&vi("max_maintenance_work_mem = \"64 MB\"")).unwrap();
        assert_eq!(
            c.tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .max_maintenance_work_mem,
            "64MB"
        );
        let c = load(&vi("lists = 500\nmin_rows = 100")).unwrap();
        assert!(
            c.warnings().iter().any(|w| w.contains("min_rows")),
            "{:?}",
            c.warnings()
        );
        // Defaults inside an explicitly given section.
        let c = load(&vi("")).unwrap();
        let v = c.tables[0].vector_index.as_ref().unwrap();
        assert_eq!(
            v,
            Config::default().tables[0].vector_index.as_ref().unwrap()
        );
    }

    #[test]
    fn database_url_precedence() {
        let file = "[database]\nurl = \"postgres://file@h/db\"\n";
        let dir =
            std::env::temp_dir().join(format!("partwarden-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("url");
        std::fs::write(&secret, "  postgres://secret:pw@h/db\n").unwrap();
        let secret_s = secret.display().to_string();
        let file_with_url_file = format!("[database]\nurl_file = \"{secret_s}\"\n");
        let both_in_file =
            format!("[database]\nurl = \"postgres://file@h/db\"\nurl_file = \"{secret_s}\"\n");

        let url = |toml: Option<&str>, e: &[(&str, &str)]| {
            let c = Config::from_sources(toml, &env(e)).unwrap();
            let u = c.database_url().unwrap().expose().to_owned();
            (u, c.database.url_source.unwrap(), c.warnings())
        };

        let (u, s, _) = url(Some(file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://file@h/db", UrlSource::FileUrl)
        );
        let (u, s, w) = url(Some(file), &[("DATABASE_URL", "postgres://env@h/db")]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://env@h/db", UrlSource::DatabaseUrlEnv)
        );
        assert!(
            w.iter().any(|w| w.contains("ignored: database.url")),
            "{w:?}"
        );
        let (u, s, _) = url(
            Some(file),
            &[
                ("DATABASE_URL", "postgres://env@h/db"),
                ("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db"),
            ],
        );
        assert_eq!(
            (u.as_str(), s),
            ("postgres://env@h/db", UrlSource::DatabaseUrlEnv)
        );
        let (u, s, _) = url(
            Some(file),
            &[("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db")],
        );
        assert_eq!((u.as_str(), s), ("postgres://pw@h/db", UrlSource::EnvUrl));
        // The environment's url_file beats the file's url.
        let (u, s, _) = url(Some(file), &[("PARTWARDEN__DATABASE__URL_FILE", &secret_s)]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://secret:pw@h/db", UrlSource::EnvUrlFile)
        );
        // ...but not the environment's url.
        let (u, s, _) = url(
            None,
            &[
                ("PARTWARDEN__DATABASE__URL_FILE", &secret_s),
                ("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db"),
            ],
        );
        assert_eq!((u.as_str(), s), ("postgres://pw@h/db", UrlSource::EnvUrl));
        let (u, s, _) = url(Some(&file_with_url_file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://secret:pw@h/db", UrlSource::FileUrlFile)
        );
        // In the file, url beats url_file.
        let (u, s, w) = url(Some(&both_in_file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://file@h/db", UrlSource::FileUrl)
        );
        assert!(
            w.iter().any(|w| w.contains("ignored: database.url_file")),
            "{w:?}"
        );
        // Empty DATABASE_URL counts as unset.
        let (u, _, _) = url(Some(file), &[("DATABASE_URL", "")]);
        assert_eq!(u, "postgres://file@h/db");

        // An unusable url_file is not fatal at load, only when the URL is needed.
        let missing = format!(
            "[database]\nurl_file = \"{}\"\n",
            dir.join("missing").display()
        );
        let c = load(&missing).unwrap();
        let err = c.database_url().unwrap_err();
        assert_eq!(err.key(), Some("database.url_file"));
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.starts_with("database.url_file: cannot read")),
            "{:?}",
            c.warnings()
        );
        // ...and not consulted at all when DATABASE_URL is set.
        let c = Config::from_sources(Some(&missing), &env(&[("DATABASE_URL", "postgres://h/db")]))
            .unwrap();
        assert_eq!(c.database_url().unwrap().expose(), "postgres://h/db");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let c = load(&format!("[database]\nurl_file = \"{}\"\n", empty.display())).unwrap();
        assert!(c
            .database_url()
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_urls_rejected_without_leaking() {
        let err = Config::from_sources(None, &env(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]))
            .unwrap_err();
        assert_eq!(err.key(), Some("DATABASE_URL"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load("[database]\nurl = \"host=h password=hunter2\"\n").unwrap_err();
        assert_eq!(err.key(), Some("database.url"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load("[database]\nurl = \"postgres://u:hunter2@h/db x\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // A URL put into the wrong key is not echoed either.
        let err = Config::from_sources(
            None,
            &env(&[(
                "PARTWARDEN__DATABASE__MAX_CONNECTIONS",
                "postgres://u:hunter2@h/db",
            )]),
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("database.max_connections"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn password_redacted() {
        let c = Config::from_sources(
            Some("[database]\nurl = \"postgres://app:hunter2@db.internal:5432/app?sslmode=require\"\n"),
            &[],
        )
        .unwrap();
        let url = c.database_url().unwrap();
        assert_eq!(
            url.expose(),
            "postgres://app:hunter2@db.internal:5432/app?sslmode=require"
        );
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.internal:5432/app?sslmode=require"
        );
        assert!(url.has_password());
        for shown in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.database),
            format!("{url}"),
            format!("{url:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(format!("{c:?}").contains("postgres://app:***@db.internal:5432/app"));
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("contains a password")));
        let cases = [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgres://h:5432/db", "postgres://h:5432/db"),
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=p&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgres://u@h/db?sslpassword=p",
                "postgres://u@h/db?sslpassword=***",
            ),
        ];
        for (raw, red) in cases {
            let u = DatabaseUrl::new(raw).unwrap();
            assert_eq!(u.redacted(), red, "{raw}");
            assert_eq!(u.has_password(), raw != red, "{raw}");
        }
        assert_eq!(
            redact_urls("bad line: url = \"postgres://u:p@h/db\" here"),
            "bad line: url = \"postgres://u:***@h/db\" here"
        );
        // Not a URL sqlx could connect with either ("pa" would be the port): refused when
        // the configuration is loaded, the password not shown; in free text, hidden whole.
        let err = DatabaseUrl::new("postgres://u:pa/ss@h/db").unwrap_err();
        assert!(err.contains("not a valid URL") && err.contains("percent-encoded"), "{err}");
        assert!(!err.contains("pa/ss") && !err.contains("ss@h"), "{err}");
        assert_eq!(redact_urls("x 'postgres://u:pa/ss@h/db' y"), "x 'postgres://***' y");
        let err = Config::from_sources(Some("[database]\nurl = \"postgres://u:pa/ss@h/db\"\n"), &[])
            .unwrap_err();
        assert_eq!(err.key(), Some("database.url"));
        assert!(!err.to_string().contains("pa/ss"), "{err}");
    }

    #[test]
    fn enum_parsing() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(
            "archive".parse::<RetentionMode>().unwrap(),
            RetentionMode::Archive
        );
        assert_eq!("hnsw".parse::<VectorMethod>().unwrap(), VectorMethod::Hnsw);
        assert!("nope"
            .parse::<RetentionMode>()
            .unwrap_err()
            .contains("drop, detach, archive"));
        assert_eq!(ListsSetting::Fixed(7).to_string(), "7");
        assert_eq!(parse_memory_kb("2GB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_memory_kb("1024kB").unwrap(), 1024);
    }
}
