//! The library's error type. The binary maps it to exit codes: configuration and usage
//! problems are 2, database and DDL failures are 1.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No connection could be opened: where to (host:port or the socket, never the
    /// password) and the server's or the network's own reason, which a pool would hide
    /// behind "pool timed out".
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database is not shaped the way the configuration says (not partitioned, wrong
    /// partition key, missing table…).
    #[error("{table}: {message}")]
    Catalog { table: String, message: String },
    /// A DDL step failed (after its retries, when the failure was a lock timeout).
    #[error("{table}: {action}: {message}")]
    Ddl {
        table: String,
        action: String,
        message: String,
    },
    /// The configuration does not fit the database (a table that does not exist or is not
    /// range-partitioned on the configured timestamptz column, a vector policy naming a
    /// column that is not a vector, an operator class that does not exist): a
    /// configuration error, naming the key.
    #[error("{key}: {message}")]
    Policy { key: String, message: String },
    /// A maintenance run is under way elsewhere: the run lock stayed taken for as long as
    /// the caller waited. `holder` says who has it ("by …").
    #[error(
        "another maintenance run is under way: the run lock (advisory lock {key}) was still \
         taken after waiting {waited:?}, by {holder}. Try again later, or wait longer (--wait)"
    )]
    Busy {
        key: i64,
        waited: std::time::Duration,
        holder: String,
    },
}

impl Error {
    /// True when the problem is in what the operator wrote (config, flags), not at run time.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Policy { .. })
    }
}
