//! Strong locks taken without ever queueing behind the application.
//!
//! A DDL statement that *waits* for a lock is queued ahead of every later request for a
//! conflicting lock: while an ALTER waits behind a reader that holds the table for 10 s,
//! every insert waits behind the ALTER. `lock_timeout` bounds that stall, but each attempt
//! is still an outage of `lock_timeout`, and retries multiply it.
//!
//! So before asking for a lock that blocks the application, partwarden looks at
//! `pg_locks`: when another session holds (or waits for) a conflicting lock and its
//! transaction has been open longer than `wait`, the attempt is not made at all (the
//! action is retried later, holding nothing). Otherwise it asks with `lock_timeout =
//! wait` (a few dozen milliseconds): long enough for the short transactions of a busy
//! application to finish, short enough that the queue it forms is never noticed. The
//! locks are taken explicitly at the point of the transaction where the DDL needs them,
//! so each statement that follows already holds what it needs, and the whole transaction
//! runs under the short wait. GitLab's `with_lock_retries` retries with short timeouts
//! too; it still queues blindly behind a long holder on every attempt.

use std::time::Duration;

use sqlx::PgConnection;

/// The lock modes partwarden takes explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Blocks writes (ROW EXCLUSIVE) but not reads: holds writers *before* they route a
    /// row to a partition.
    Share,
    AccessExclusive,
}

impl LockMode {
    fn sql(self) -> &'static str {
        match self {
            LockMode::Share => "SHARE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The `pg_locks.mode` values this mode conflicts with (PostgreSQL's conflict table).
    fn conflicts(self) -> &'static [&'static str] {
        match self {
            LockMode::Share => &[
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock",
            ],
            LockMode::AccessExclusive => &[
                "AccessShareLock",
                "RowShareLock",
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock",
            ],
        }
    }
}

/// One lock to take: `relation` is a quoted, qualified name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub relation: String,
    pub mode: LockMode,
    /// An index cannot be named in `LOCK TABLE`: it is only checked for conflicting
    /// holders, and the DDL statement itself then takes the lock under the short wait.
    pub index: bool,
}

impl LockRequest {
    pub fn table(relation: impl Into<String>, mode: LockMode) -> LockRequest {
        LockRequest {
            relation: relation.into(),
            mode,
            index: false,
        }
    }

    pub fn index(relation: impl Into<String>) -> LockRequest {
        LockRequest {
            relation: relation.into(),
            mode: LockMode::AccessExclusive,
            index: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another session holds a conflicting lock: not even tried.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Takes `locks` in order inside the transaction open on `conn`, and leaves that
/// transaction's `lock_timeout` at `wait`. All of them are checked for long holders
/// before the first is taken (nothing is held while looking). On [`LockError::Busy`] or a
/// lock timeout the caller rolls the transaction back (releasing what was taken) and
/// tries again later.
pub async fn take(
    conn: &mut PgConnection,
    locks: &[LockRequest],
    wait: Duration,
) -> Result<(), LockError> {
    check_clear(conn, locks, wait).await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(pg_millis(wait))
        .execute(&mut *conn)
        .await?;
    for lock in locks.iter().filter(|l| !l.index) {
        let sql = format!(
            "LOCK TABLE ONLY {} IN {} MODE",
            lock.relation,
            lock.mode.sql()
        );
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Fails with [`LockError::Busy`] when a session is in the way of one of `locks`: it
/// holds or waits for a conflicting lock in the same transaction now and `wait` later.
/// (Two looks at `pg_locks`, which every role may read: how long another role's
/// transaction has been open is hidden from a role without `pg_read_all_stats`.) Also
/// used on its own before a statement that cannot run in a transaction (`DETACH …
/// CONCURRENTLY`), which then runs under the session's `lock_timeout`.
pub async fn check_clear(
    conn: &mut PgConnection,
    locks: &[LockRequest],
    wait: Duration,
) -> Result<(), LockError> {
    let mut first = Vec::new();
    for lock in locks {
        first.extend(holders(conn, lock).await?);
    }
    if first.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(wait).await;
    for lock in locks {
        for h in holders(conn, lock).await? {
            if first.iter().any(|f| f.same_transaction(&h)) {
                return Err(LockError::Busy(h.describe(&lock.relation)));
            }
        }
    }
    Ok(())
}

/// A session holding or waiting for a lock that conflicts with ours.
#[derive(Debug, sqlx::FromRow)]
struct Holder {
    pid: Option<i32>,
    virtualtransaction: Option<String>,
    mode: String,
    granted: bool,
    /// Visible only with the privileges to see the other session's activity.
    xact_secs: Option<f64>,
    query: Option<String>,
}

impl Holder {
    fn same_transaction(&self, other: &Holder) -> bool {
        self.pid == other.pid && self.virtualtransaction == other.virtualtransaction
    }

    fn describe(&self, relation: &str) -> String {
        let who = match self.pid {
            Some(pid) => format!("pid {pid}"),
            None => "a prepared transaction".to_string(),
        };
        let how = if self.granted { "holds" } else { "waits for" };
        let since = self
            .xact_secs
            .map(|s| format!(", transaction open {s:.1}s"))
            .unwrap_or_default();
        let what = self
            .query
            .as_deref()
            .filter(|q| !q.starts_with('<'))
            .map(|q| format!(": {q}"))
            .unwrap_or_default();
        format!(
            "{who} {how} {} on {relation}{since}{what}; not queueing behind it",
            self.mode
        )
    }
}

async fn holders(conn: &mut PgConnection, lock: &LockRequest) -> Result<Vec<Holder>, sqlx::Error> {
    let modes: Vec<String> = lock
        .mode
        .conflicts()
        .iter()
        .map(|m| m.to_string())
        .collect();
    sqlx::query_as(
        "SELECT l.pid, l.virtualtransaction, l.mode, l.granted,
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_secs,
                left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query
           FROM pg_locks l
           LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'relation'
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.relation = to_regclass($1)
            AND l.pid IS DISTINCT FROM pg_backend_pid()
            AND l.mode = ANY($2)",
    )
    .bind(&lock.relation)
    .bind(&modes)
    .fetch_all(&mut *conn)
    .await
}

/// Milliseconds, as PostgreSQL's GUCs take them.
pub fn pg_millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}
