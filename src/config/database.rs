//! `[database]`: the connection, the timeouts of maintenance sessions, DDL retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::fields::{duration_at, int_at, MAX_PG_TIMEOUT_MS};
use super::url::DatabaseUrl;
use super::url_source::{resolve_url, UrlProblem, UrlSource};
use super::values::format_duration;

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    /// The URL, if any source set one (see the module docs for precedence). Use
    /// [`Config::database_url`](super::Config::database_url) to get it or a proper error.
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
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

pub(super) fn database_config(
    raw: RawDatabase,
    env: &[(String, String)],
    env_keys: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(DatabaseConfig, UrlProblem), ConfigError> {
    let mut database = settings_except_url(&raw)?;
    check_timeout_order(&database)?;
    let resolved = resolve_url(raw.url, raw.url_file, env, env_keys, warnings)?;
    database.url = resolved.url;
    database.url_source = resolved.source;
    database.url_file = resolved.url_file;
    Ok((database, resolved.problem))
}

/// Every `[database]` setting but the URL, which [`resolve_url`] supplies.
fn settings_except_url(raw: &RawDatabase) -> Result<DatabaseConfig, ConfigError> {
    let max_connections = int_at(
        "database.max_connections",
        raw.max_connections,
        4u32,
        1,
        100,
    )?;
    let lock_timeout = duration_at(
        "database.lock_timeout",
        raw.lock_timeout.clone(),
        Duration::from_secs(2),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let statement_timeout = duration_at(
        "database.statement_timeout",
        raw.statement_timeout.clone(),
        Duration::from_secs(30 * 60),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let connect_timeout = duration_at(
        "database.connect_timeout",
        raw.connect_timeout.clone(),
        Duration::from_secs(10),
        None,
    )?;
    let ddl_attempts = int_at("database.ddl_attempts", raw.ddl_attempts, 5u32, 1, 100)?;
    let ddl_backoff = duration_at(
        "database.ddl_backoff",
        raw.ddl_backoff.clone(),
        Duration::from_secs(1),
        None,
    )?;
    let lock_wait = duration_at(
        "database.lock_wait",
        raw.lock_wait.clone(),
        Duration::from_millis(50),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    Ok(DatabaseConfig {
        url: None,
        url_source: None,
        url_file: None,
        max_connections,
        lock_timeout,
        lock_wait,
        statement_timeout,
        connect_timeout,
        ddl_attempts,
        ddl_backoff,
    })
}

/// A lock is only waited for within the lock timeout, and a DDL statement waits for its
/// lock within its statement timeout: a longer inner limit could never take effect.
fn check_timeout_order(database: &DatabaseConfig) -> Result<(), ConfigError> {
    let DatabaseConfig {
        lock_wait,
        lock_timeout,
        statement_timeout,
        ..
    } = *database;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::invalid_key;

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
}
