//! Connections. Every session partwarden opens reads and writes timestamps in UTC with ISO
//! dates (the catalog prints partition bounds in the session's TimeZone and DateStyle), and
//! runs under the configured lock_timeout and statement_timeout, so no DDL can wait
//! unboundedly in the lock queue.

pub use crate::apply::locks::pg_millis;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

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
