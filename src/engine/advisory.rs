//! The two advisory locks partwarden takes, each on a dedicated session (taken out of the
//! pool: advisory locks belong to a session):
//!
//! * the **run lock** ([`MAINTENANCE_LOCK_KEY`]): held by whoever runs maintenance, for
//!   the run only — the daemon's runs and `partwarden maintain` — so runs never overlap;
//! * **leadership** ([`LEADER_LOCK_KEY`]): held by the one daemon replica that runs the
//!   scheduled maintenance, for as long as it leads ([`LeaderLock`]). Its runs take the run
//!   lock on the same session, which is how a busy `maintain` can tell the daemon's run
//!   from any other holder.
//!
//! Daemons from before the two were separate held the run lock all the time they led. A
//! new `maintain` next to such a daemon is refused as before, and a new daemon does not
//! claim leadership while the run lock has not been free once ([`LeaderLock::leads`]), so
//! a rolling upgrade never has two replicas maintaining.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::error::Error;

/// Key of the run lock (sqlx's migrator uses a different one, derived from the database
/// name). It is the key the leader used to hold all the time, so an older daemon and a
/// newer `maintain` still exclude each other.
pub const MAINTENANCE_LOCK_KEY: i64 = 0x7061_7274_7761_7264; // "partward"

/// Key of the daemon's leadership lock.
pub const LEADER_LOCK_KEY: i64 = 0x7061_7274_6c65_6164; // "partlead"

/// Takes `key` on a new pooled session; only a session that got it leaves the pool for
/// good (`None` when another session holds it).
async fn try_lock_session(pool: &PgPool, key: i64) -> Result<Option<PgConnection>, Error> {
    let mut conn = pool.acquire().await?;
    let got = try_lock(&mut conn, key).await?;
    Ok(got.then(|| conn.detach()))
}

async fn try_lock(conn: &mut PgConnection, key: i64) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await?)
}

async fn unlock(conn: &mut PgConnection, key: i64) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Holds the run lock on one dedicated connection for as long as it lives: what
/// `partwarden maintain` runs under.
pub struct MaintenanceLock {
    conn: PgConnection,
}

impl MaintenanceLock {
    /// `None` when another session holds it.
    pub async fn try_acquire(pool: &PgPool) -> Result<Option<MaintenanceLock>, Error> {
        let conn = try_lock_session(pool, MAINTENANCE_LOCK_KEY).await?;
        Ok(conn.map(|conn| MaintenanceLock { conn }))
    }

    /// Tries for up to `patience` (every 250 ms): a run in progress elsewhere may be about
    /// to finish, and the backend of a killed run lets go within about a second.
    pub async fn acquire_within(
        pool: &PgPool,
        patience: Duration,
    ) -> Result<Option<MaintenanceLock>, Error> {
        let until = Instant::now() + patience;
        loop {
            if let Some(lock) = MaintenanceLock::try_acquire(pool).await? {
                return Ok(Some(lock));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Is the session (and so the lock) still there?
    pub async fn alive(&mut self) -> bool {
        sqlx::query("SELECT 1")
            .execute(&mut self.conn)
            .await
            .is_ok()
    }

    pub async fn release(mut self) -> Result<(), Error> {
        unlock(&mut self.conn, MAINTENANCE_LOCK_KEY).await?;
        let _ = self.conn.close().await;
        Ok(())
    }
}

/// A daemon replica's leadership: [`LEADER_LOCK_KEY`] held on one dedicated connection
/// for as long as it lives. Its runs take the run lock on this connection for the run only
/// ([`LeaderLock::try_begin_run`], [`LeaderLock::end_run`]).
pub struct LeaderLock {
    conn: PgConnection,
    /// The run lock was free at least once since leadership was taken: no daemon from
    /// before the split holds it for good.
    confirmed: bool,
    /// The run lock is held on this session (a run is under way).
    running: bool,
}

impl LeaderLock {
    /// `None` when another replica leads.
    pub async fn try_acquire(pool: &PgPool) -> Result<Option<LeaderLock>, Error> {
        let conn = try_lock_session(pool, LEADER_LOCK_KEY).await?;
        Ok(conn.map(|conn| LeaderLock {
            conn,
            confirmed: false,
            running: false,
        }))
    }

    /// Whether this replica is the one that maintains: it holds leadership and has seen
    /// the run lock free since (an older daemon holding it for good still leads).
    pub fn leads(&self) -> bool {
        self.confirmed
    }

    /// Takes the run lock for a run; `false` when another session holds it (a
    /// `partwarden maintain`, an older daemon, or a session outside partwarden).
    pub async fn try_begin_run(&mut self) -> Result<bool, Error> {
        if self.running {
            return Ok(true);
        }
        self.running = try_lock(&mut self.conn, MAINTENANCE_LOCK_KEY).await?;
        self.confirmed |= self.running;
        Ok(self.running)
    }

    /// Lets go of the run lock after a run.
    pub async fn end_run(&mut self) -> Result<(), Error> {
        if self.running {
            unlock(&mut self.conn, MAINTENANCE_LOCK_KEY).await?;
            self.running = false;
        }
        Ok(())
    }

    /// Takes and lets go of the run lock once, unless that already happened: leadership
    /// counts only once no older daemon holds the run lock. Returns [`LeaderLock::leads`].
    pub async fn confirm(&mut self) -> Result<bool, Error> {
        if !self.confirmed && self.try_begin_run().await? {
            self.end_run().await?;
        }
        Ok(self.confirmed)
    }

    /// Whether another session holds the run lock now (from `pg_locks`: trying the lock
    /// would take it for a moment, and a `maintain --wait 0` could hit that moment). An
    /// error means this session, and so leadership, is gone.
    pub async fn run_lock_held_elsewhere(&mut self) -> Result<bool, Error> {
        Ok(sqlx::query_scalar(RUN_LOCK_TAKEN_QUERY)
            .bind(MAINTENANCE_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await?)
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub async fn release(mut self) -> Result<(), Error> {
        self.end_run().await?;
        unlock(&mut self.conn, LEADER_LOCK_KEY).await?;
        let _ = self.conn.close().await;
        Ok(())
    }
}

/// The session holding the run lock, other than the caller's.
struct Holder {
    pid: i32,
    leader: bool,
    application_name: Option<String>,
    user: Option<String>,
    client: Option<String>,
    backend_start: Option<chrono::DateTime<chrono::Utc>>,
}

/// A bigint advisory key appears in `pg_locks` as classid (high half), objid (low half)
/// and objsubid 1; `database` is the current one.
const RUN_LOCK_TAKEN_QUERY: &str = "
    SELECT EXISTS (SELECT 1 FROM pg_locks
                    WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND objsubid = 1
                      AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid)";

/// The same, with who it is and whether that session also leads.
const HOLDER_QUERY: &str = "
    SELECT l.pid, EXISTS (SELECT 1 FROM pg_locks o
                           WHERE o.pid = l.pid AND o.locktype = 'advisory' AND o.granted
                             AND o.database = l.database AND o.objsubid = 1
                             AND o.classid = ($2::bigint >> 32)::oid
                             AND o.objid = ($2::bigint & 4294967295)::oid) AS leader,
           a.application_name::text, a.usename::text, host(a.client_addr), a.backend_start
      FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.objsubid = 1
       AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid
     LIMIT 1";

async fn run_lock_holder(conn: &mut PgConnection) -> Result<Option<Holder>, Error> {
    type Row = (
        i32,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let row: Option<Row> = sqlx::query_as(HOLDER_QUERY)
        .bind(MAINTENANCE_LOCK_KEY)
        .bind(LEADER_LOCK_KEY)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(
        |(pid, leader, application_name, user, client, backend_start)| Holder {
            pid,
            leader,
            application_name,
            user,
            client,
            backend_start,
        },
    ))
}

/// Who holds the run lock, for an operator ("taken by …"): the daemon's run (the holder
/// also leads), or a session that could be any of the others. `None` when nobody does (any
/// more).
pub async fn describe_run_lock_holder(conn: &mut PgConnection) -> Result<Option<String>, Error> {
    let Some(h) = run_lock_holder(conn).await? else {
        return Ok(None);
    };
    let mut session = format!("pid {}", h.pid);
    // pg_stat_activity hides these for another role's sessions without pg_read_all_stats.
    if let Some(app) = h.application_name.filter(|a| !a.is_empty()) {
        session.push_str(&format!(", application_name '{app}'"));
    }
    if let Some(user) = h.user {
        session.push_str(&format!(", user {user}"));
    }
    if let Some(client) = h.client {
        session.push_str(&format!(", from {client}"));
    }
    if let Some(since) = h.backend_start {
        let since = since.format("%Y-%m-%d %H:%M:%S UTC");
        session.push_str(&format!(", connected since {since}"));
    }
    Ok(Some(if h.leader {
        format!("the daemon's maintenance run ({session}; the leading replica)")
    } else {
        format!(
            "{session}: another `partwarden maintain`, a partwarden daemon from before the \
             run lock was separate from leadership (it holds the lock for as long as it \
             leads), or a session outside partwarden"
        )
    }))
}
