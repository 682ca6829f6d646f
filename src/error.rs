//! The library's error type. The binary maps it to exit codes: configuration and usage
//! problems are 2, database and DDL failures are 1.
//!
//! A message says what to do when partwarden can tell ([`crate::diagnose`]), and names the
//! table it is about once: [`Error::detail`] leaves the table out, for a context that
//! names it already (a table's row in a report, a log line with a `table` field).

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// No connection could be opened: where to (host:port or the socket, never the
    /// password) and the server's or the network's own reason, which a pool would hide
    /// behind "pool timed out".
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The server is older than partwarden supports ([`crate::engine::db::MIN_SERVER_MAJOR`]):
    /// where it is, the version it runs and the minimum.
    #[error(
        "{target} runs PostgreSQL {version}, which partwarden does not support: it needs \
         PostgreSQL {minimum} or later (for DETACH PARTITION … CONCURRENTLY and \
         client_connection_check_interval). Upgrade the server to PostgreSQL {minimum} or \
         later, or point partwarden at one that is"
    )]
    UnsupportedServer {
        target: String,
        version: String,
        minimum: u32,
    },
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `migrate` cannot make or distribute the schema on this Citus node: why, and what to do.
    #[error("citus: {0}")]
    Citus(String),
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
    /// configuration error, naming the key `tables[TABLE].SETTING`.
    #[error("tables[{table}].{setting}: {message}")]
    Policy {
        table: String,
        setting: String,
        message: String,
    },
    /// An object partwarden's migrations create is missing: they have not been applied.
    /// Not a configuration error: the configuration is right, the database is not ready.
    #[error("{object} {}", not_migrated(.database))]
    NotMigrated {
        object: String,
        database: Option<String>,
    },
    /// The maintenance role was refused for want of ownership (SQLSTATE 42501): the
    /// relations it must own and does not, with their owners.
    #[error("{refused}: {}", not_owner(.role, .not_owned))]
    NotOwner {
        refused: String,
        role: String,
        /// (qualified relation, its owner), parent first.
        not_owned: Vec<(String, String)>,
    },
    /// The maintenance role may not create in (or use) a schema it needs (SQLSTATE 42501):
    /// the table's, for new partitions; the archive schema, for `retention_mode = "archive"`.
    #[error(
        "{refused}: partwarden connects as role {role}, which needs USAGE and CREATE on schema \
         {schema} (owned by {owner}); as a superuser or {owner}: GRANT USAGE, CREATE ON \
         SCHEMA {schema} TO {role};"
    )]
    SchemaPrivilege {
        refused: String,
        role: String,
        schema: String,
        owner: String,
    },
    /// A migration creates an extension this role may not create (not a trusted one).
    #[error(
        "migration {version} needs extension {extension:?}{}, which role {role} may not \
         create: it is not a trusted extension. A superuser must run `CREATE EXTENSION \
         {extension};` once in database {database:?}, then `partwarden migrate` again. \
         (The server said: {refused})",
        about_extension(.extension)
    )]
    ExtensionNotCreated {
        version: i64,
        extension: String,
        role: String,
        database: String,
        refused: String,
    },
    /// A migration needs an extension the server does not have installed.
    #[error(
        "migration {version} needs extension {extension:?}{}, which is not installed on the \
         PostgreSQL {server_major} server of database {database:?}: install it there first{}; \
         then a superuser runs `CREATE EXTENSION {extension};` once in database \
         {database:?}, and `partwarden migrate` again. (The server said: {refused})",
        about_extension(.extension),
        how_to_install(.extension, *.server_major)
    )]
    ExtensionNotInstalled {
        version: i64,
        extension: String,
        database: String,
        server_major: i32,
        refused: String,
    },
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

/// A missing object of partwarden's migrations means they have not run: every `?` on a
/// database error says so, wherever the error comes from.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        match crate::diagnose::missing_migrated_object(&e) {
            Some(object) => Error::NotMigrated {
                object,
                database: None,
            },
            None => Error::Database(e),
        }
    }
}

impl Error {
    /// True when the problem is in what the operator wrote (config, flags), not at run time.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Policy { .. })
    }

    /// The message for a context that already names `table` (a table's line in a report,
    /// a log event with a `table` field): the same words without the table's name.
    pub fn detail(&self, table: &str) -> String {
        match self {
            Error::Catalog { table: t, message } if t == table => message.clone(),
            Error::Ddl {
                table: t,
                action,
                message,
            } if t == table => format!("{action}: {message}"),
            Error::Policy {
                table: t,
                setting,
                message,
            } if t == table => format!("{setting}: {message}"),
            Error::NotMigrated { object, database } if object == table => not_migrated(database),
            other => other.to_string(),
        }
    }
}

fn not_migrated(database: &Option<String>) -> String {
    let db = match database {
        Some(d) => format!("database {d:?}"),
        None => "the database".to_string(),
    };
    format!("does not exist: {db} is not migrated; run `partwarden migrate`")
}

/// How many refused relations a message lists (and turns into statements).
const LISTED: usize = 5;

fn not_owner(role: &str, not_owned: &[(String, String)]) -> String {
    let mut out = format!(
        "partwarden connects as role {role}, which must own every table it maintains (the \
         partitioned table, each partition, the default partition; docs/operations.md, \
         \"Database privileges\")"
    );
    if not_owned.is_empty() {
        return out;
    }
    let owned: Vec<String> = not_owned
        .iter()
        .take(LISTED)
        .map(|(rel, owner)| format!("{rel} (owner {owner})"))
        .collect();
    let statements: Vec<String> = not_owned
        .iter()
        .take(LISTED)
        .map(|(rel, _)| format!("ALTER TABLE {rel} OWNER TO {role};"))
        .collect();
    let more = match not_owned.len().saturating_sub(LISTED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    out.push_str(&format!(
        ", and it does not own {}{more}. As a superuser or their owner: {}{}",
        owned.join(", "),
        statements.join(" "),
        if more.is_empty() { "" } else { " …" }
    ));
    out
}

fn about_extension(extension: &str) -> &'static str {
    if extension == "vector" {
        " (pgvector)"
    } else {
        ""
    }
}

fn how_to_install(extension: &str, server_major: i32) -> String {
    if extension == "vector" {
        format!(
            " (the pgvector package for PostgreSQL {server_major}, e.g. Debian's \
             postgresql-{server_major}-pgvector, or an image that has it, e.g. \
             pgvector/pgvector:pg{server_major}; on a managed service, enable pgvector)"
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    const T: &str = "public.events";

    /// Every error about a table names it once, and not at all for a context that does.
    #[test]
    fn a_table_is_named_once() {
        let errors = [
            Error::Catalog {
                table: T.into(),
                message: "unexpected catalog shape".into(),
            },
            Error::Ddl {
                table: T.into(),
                action: "create events_2026_12".into(),
                message: "lock timeout".into(),
            },
            Error::Policy {
                table: T.into(),
                setting: "column".into(),
                message: "not partitioned by column \"ts\"".into(),
            },
            Error::NotMigrated {
                object: T.into(),
                database: Some("app".into()),
            },
        ];
        for e in errors {
            assert_eq!(e.to_string().matches(T).count(), 1, "{e}");
            assert!(!e.detail(T).contains(T), "{}", e.detail(T));
        }
    }
}
