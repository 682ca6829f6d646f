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
            // The catalog read's estimated cost (subplans per partition) is far over
            // jit_optimize_above_cost at 30,000 partitions, and a server built with LLVM
            // (Debian's) then compiles ~200 functions before the first row: 2 of the 3.5 s
            // of a no-op. Nothing partwarden runs scans enough rows to gain from JIT.
            ("jit", "off".to_string()),
        ]))
}

/// A pool with the session settings above. Does not connect until first use.
pub fn pool(url: &str, s: &SessionSettings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(s.max_connections.max(1))
        .acquire_timeout(s.connect_timeout)
        .after_connect(|conn, _meta| {
            Box::pin(async move { session_settings_at_connect(conn).await })
        })
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
    let mut conn = match tokio::time::timeout(timeout, PgConnection::connect_with(opts)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(failed(connect_reason(&e))),
        Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
    };
    let version = match conn.server_version_num() {
        Some(num) => ServerVersion::from_num(num),
        // The server reported no version sqlx could read at startup: ask.
        None => {
            let text: Result<String, _> =
                sqlx::query_scalar("SELECT current_setting('server_version_num')")
                    .fetch_one(&mut conn)
                    .await;
            let text = text.map_err(|e| failed(connect_reason(&e)))?;
            ServerVersion::parse_num(&text).ok_or_else(|| {
                failed(format!(
                    "the server's version is unreadable (server_version_num = {text:?})"
                ))
            })?
        }
    };
    if let Err(e) = version.check(&target(opts)) {
        let _ = conn.close().await;
        return Err(e);
    }
    Ok(conn)
}

/// The oldest PostgreSQL partwarden supports: 14, for `DETACH PARTITION … CONCURRENTLY`
/// (expiry without a default partition) and `client_connection_check_interval` (a killed
/// partwarden's backend abandons its statement).
pub const MIN_SERVER_MAJOR: u32 = 14;

/// A server's version, as `server_version_num` gives it (`150018` is 15.18, `90624` is
/// 9.6.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    num: u32,
}

impl ServerVersion {
    pub fn from_num(num: u32) -> ServerVersion {
        ServerVersion { num }
    }

    /// `server_version_num` as the server prints it.
    pub fn parse_num(text: &str) -> Option<ServerVersion> {
        let t = text.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse()
            .ok()
            .filter(|n| *n > 0)
            .map(ServerVersion::from_num)
    }

    /// The major version: 15 for 15.18; 9 for 9.6 (before 10 a major had two parts, and
    /// all of them are older than anything supported).
    pub fn major(self) -> u32 {
        self.num / 10_000
    }

    /// Refused when older than [`MIN_SERVER_MAJOR`]; `target` says where the server is.
    pub fn check(self, target: &str) -> Result<(), Error> {
        if self.major() >= MIN_SERVER_MAJOR {
            return Ok(());
        }
        Err(Error::UnsupportedServer {
            target: target.to_string(),
            version: self.to_string(),
            minimum: MIN_SERVER_MAJOR,
        })
    }
}

impl std::fmt::Display for ServerVersion {
    /// `15.18`; `9.6.24` before PostgreSQL 10.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.num;
        if n >= 100_000 {
            write!(f, "{}.{}", n / 10_000, n % 10_000)
        } else {
            write!(f, "{}.{}.{}", n / 10_000, n / 100 % 100, n % 100)
        }
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

/// Settings a startup option cannot carry, in one round trip when a connection opens.
///
/// A backend whose client is gone (killed, cut off) would otherwise run its statement to
/// the end — a long move or index build, holding the maintenance lock and its DDL locks —
/// and only notice when it tries to answer. `client_connection_check_interval` (PostgreSQL
/// 14 and later; not a startup option older servers would reject) makes it check the
/// socket every second while it works and abandon the statement.
///
/// On a Citus coordinator, a transaction that runs DDL on a distributed table after
/// touching its shards over several connections per node (a DETACH, then CREATE SCHEMA or
/// SET SCHEMA; a move, then ATTACH) is refused ("there was a parallel operation on a
/// distributed table in the transaction"): `citus.multi_shard_modify_mode = sequential`
/// (one connection per node) is Citus's own remedy. A DDL fans out over each node's shards
/// one after the other; docs/citus.md gives what that costs.
async fn session_settings_at_connect(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT CASE WHEN current_setting('server_version_num')::int >= 140000
                     THEN set_config('client_connection_check_interval', '1000', false) END,
                CASE WHEN to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
                     THEN set_config('citus.multi_shard_modify_mode', 'sequential', false) END",
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
    fn server_versions_are_read_and_older_than_14_refused() {
        let v = |t: &str| ServerVersion::parse_num(t);
        assert_eq!(
            v("150018").map(|v| (v.major(), v.to_string())),
            Some((15, "15.18".into()))
        );
        assert_eq!(v("180006").map(|v| v.to_string()), Some("18.6".into()));
        assert_eq!(v("140000").map(|v| v.to_string()), Some("14.0".into()));
        assert_eq!(
            v("130014").map(|v| (v.major(), v.to_string())),
            Some((13, "13.14".into()))
        );
        assert_eq!(
            v("90624").map(|v| (v.major(), v.to_string())),
            Some((9, "9.6.24".into()))
        );
        assert_eq!(v(" 170002\n").map(|v| v.major()), Some(17));
        for bad in ["", "15.4", "abc", "-150000", "0", "99999999999"] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
        // What sqlx reads from the startup message is the same number.
        assert_eq!(
            ServerVersion::from_num(150018),
            ServerVersion::parse_num("150018").unwrap()
        );

        for ok in [140000, 140013, 150018, 180006, 190000] {
            assert!(ServerVersion::from_num(ok).check("db:5432").is_ok(), "{ok}");
        }
        let e = ServerVersion::from_num(130014)
            .check("db.example:5432")
            .unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedServer { minimum: 14, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "db.example:5432 runs PostgreSQL 13.14, which partwarden does not support: it needs \
             PostgreSQL 14 or later (for DETACH PARTITION … CONCURRENTLY and \
             client_connection_check_interval). Upgrade the server to PostgreSQL 14 or later, \
             or point partwarden at one that is"
        );
        assert!(!e.is_usage(), "a runtime failure: exit 1");
        let e = ServerVersion::from_num(90624).check("db:5432").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("db:5432 runs PostgreSQL 9.6.24, "),
            "{e}"
        );
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
