//! Connections. Every session partwarden opens reads and writes timestamps in UTC with ISO
//! dates (the catalog prints partition bounds in the session's TimeZone and DateStyle), and
//! runs under the configured lock_timeout and statement_timeout, so no DDL can wait
//! unboundedly in the lock queue.

pub use crate::apply::locks::pg_millis;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::error::Error;

/// What a connection needs beyond the URL.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_connections: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(30 * 60),
            connect_timeout: Duration::from_secs(10),
            max_connections: 4,
        }
    }
}

pub fn connect_options(url: &str, s: &SessionSettings) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("partwarden")
        // sqlx would warn, with the whole statement, about anything over 1 s: the catalog
        // query of a large table, every index build. Those are timed where they matter
        // (histograms, the run's report); the driver's note is for debugging only.
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
        .options([
            ("TimeZone", "UTC".to_string()),
            ("DateStyle", "ISO".to_string()),
            ("lock_timeout", pg_millis(s.lock_timeout)),
            ("statement_timeout", pg_millis(s.statement_timeout)),
        ]))
}

/// A pool with the session settings above. Does not connect until first use.
pub fn pool(url: &str, s: &SessionSettings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(s.max_connections.max(1))
        .acquire_timeout(s.connect_timeout)
        .after_connect(|conn, _meta| Box::pin(async move { abandon_when_client_dies(conn).await }))
        .connect_lazy_with(connect_options(url, s)?))
}

/// A pool as [`pool`] makes, once its server has answered one direct connection (see
/// [`connect_once`]): a command line verb says at once why it cannot connect.
pub async fn checked_pool(url: &str, s: &SessionSettings) -> Result<PgPool, Error> {
    let pool = pool(url, s)?;
    let probe = connect_once(&pool.connect_options(), s.connect_timeout).await?;
    // Only the answer mattered; the pool opens its own connections.
    let _ = probe.close().await;
    Ok(pool)
}

/// One connection straight to the server, not through a pool, within `timeout`. sqlx's
/// pool retries a refused connection until its acquire timeout and then reports only
/// "pool timed out"; this fails at once with the server's or the network's reason (wrong
/// password, connection refused, unknown host) and where it tried to connect.
pub async fn connect_once(
    opts: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, Error> {
    let failed = |reason| Error::Connect {
        target: target(opts),
        reason,
    };
    match tokio::time::timeout(timeout, PgConnection::connect_with(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(failed(connect_reason(&e))),
        Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
    }
}

/// Where `opts` connects: host:port, or the Unix socket. The options also hold the
/// password, so messages name the target through this, never through `Debug`.
pub fn target(opts: &PgConnectOptions) -> String {
    let (host, port) = (opts.get_host(), opts.get_port());
    match opts.get_socket() {
        Some(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
        None if host.starts_with('/') => format!("{host}/.s.PGSQL.{port}"),
        // The URL form keeps its brackets; `?host=::1` has none.
        None if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{port}"),
        None => format!("{host}:{port}"),
    }
}

/// The cause without sqlx's category prefix ("error communicating with database: "), and
/// with the SQLSTATE when the server refused: the operator searches for either.
fn connect_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// A backend whose client is gone (killed, cut off) would otherwise run its statement to
/// the end — a long move or index build, holding the maintenance lock and its DDL locks —
/// and only notice when it tries to answer. `client_connection_check_interval` (PostgreSQL
/// 14 and later; not a startup option older servers would reject) makes it check the
/// socket every second while it works and abandon the statement.
async fn abandon_when_client_dies(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('client_connection_check_interval', '1000', false)
          WHERE current_setting('server_version_num')::int >= 140000",
    )
    .execute(conn)
    .await
    .map(|_| ())
}

impl From<&crate::config::DatabaseConfig> for SessionSettings {
    fn from(c: &crate::config::DatabaseConfig) -> Self {
        SessionSettings {
            lock_timeout: c.lock_timeout,
            statement_timeout: c.statement_timeout,
            connect_timeout: c.connect_timeout,
            max_connections: c.max_connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(url: &str) -> String {
        target(&connect_options(url, &SessionSettings::default()).unwrap())
    }

    #[test]
    fn the_target_names_host_and_port_or_the_socket_and_never_the_password() {
        assert_eq!(
            target_of("postgres://u:s3cret@db.example:6543/app"),
            "db.example:6543"
        );
        assert_eq!(
            target_of("postgres://u:s3cret@db.example/app"),
            "db.example:5432"
        );
        assert_eq!(
            target_of("postgres://u:s3cret@[::1]:5433/app"),
            "[::1]:5433"
        );
        assert_eq!(
            target_of("postgres://u:s3cret@localhost:5433/app?host=/run/postgresql"),
            "/run/postgresql/.s.PGSQL.5433"
        );
    }
}
