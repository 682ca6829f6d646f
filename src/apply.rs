//! The executor: runs a [`Plan`]'s actions online, each in its own short transaction (or
//! none, where PostgreSQL forbids one), on one connection.
//!
//! Online means no statement ever waits in the lock queue longer than `lock_timeout`
//! (set on every partwarden session, see `db.rs`): a waiting DDL would make every later
//! query on the table wait behind it. A step that times out on its lock is retried with
//! jittered exponential backoff, at most `ddl_attempts` times; then the action fails,
//! the next one runs, and the next maintenance run tries again.
//!
//! * New partitions: a standalone table `LIKE` the parent, a CHECK constraint matching the
//!   bounds (so ATTACH needs no validation scan), `ATTACH PARTITION` (SHARE UPDATE
//!   EXCLUSIVE on the parent, not the ACCESS EXCLUSIVE of `CREATE TABLE … PARTITION OF`),
//!   then the CHECK is dropped. Rows of that range waiting in the default partition are
//!   moved in the same transaction, with counts checked.
//! * Expiry: `DETACH PARTITION … CONCURRENTLY` when the table has no default partition
//!   (PostgreSQL refuses it otherwise); with a default partition a plain DETACH under the
//!   same bounded lock wait. Then drop, keep, or move to the archive schema.
//! * Indexes: `CREATE INDEX CONCURRENTLY` on the partition and `ALTER INDEX … ATTACH
//!   PARTITION`; an INVALID index is rebuilt with `REINDEX INDEX CONCURRENTLY`.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection};
use tracing::{info, info_span, warn, Instrument};

use crate::calendar::sql_literal;
use crate::catalog::{Policy, TableSnapshot};
use crate::config::{RetentionMode, TableConfig};
use crate::ident::{quote_ident, Ident};
use crate::plan::{Action, Plan, PlannedAction};

/// Retry policy for DDL that hits `lock_timeout`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n + 1`: base · 2^(n-1), ±50 % jitter, at most 30 s.
    fn delay(&self, n: u32) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1 << (n.saturating_sub(1)).min(10))
            .min(Duration::from_secs(30));
        let jitter = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            % 1000;
        base.mul_f64(0.5 + jitter as f64 / 1000.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Failed,
    /// Not started: the process is shutting down.
    Skipped,
}

/// Set to stop a run between actions (shutdown): the action under way finishes (or its
/// retries stop), the rest are skipped and left for the next run.
pub type StopFlag = std::sync::Arc<std::sync::atomic::AtomicBool>;

fn stopping(stop: Option<&StopFlag>) -> bool {
    stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
}

/// What happened to one planned action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    #[serde(flatten)]
    pub planned: PlannedAction,
    pub status: Status,
    /// What was done, or the error.
    pub detail: String,
    pub attempts: u32,
    pub seconds: f64,
}

impl ActionOutcome {
    pub fn ok(&self) -> bool {
        self.status == Status::Done
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum StepError {
    /// Waiting for a lock hit lock_timeout (or a deadlock was broken): try again later.
    Retryable(sqlx::Error),
    Fatal(String),
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string());
        match code.as_deref() {
            // lock_not_available (lock_timeout), deadlock_detected, serialization_failure
            Some("55P03") | Some("40P01") | Some("40001") => StepError::Retryable(e),
            _ => StepError::Fatal(db_message(&e)),
        }
    }
}

fn db_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// How a plan is executed.
#[derive(Clone, Copy)]
pub struct ApplyContext<'a> {
    pub retry: &'a RetryPolicy,
    /// Stop between actions when set.
    pub stop: Option<&'a StopFlag>,
    /// A pool for a second connection that reports the progress of long index builds.
    pub monitor: Option<&'a sqlx::PgPool>,
}

/// Runs every action of `plan` in order; one failing does not stop the others.
pub async fn apply_plan(
    conn: &mut PgConnection,
    table: &TableConfig,
    snapshot: &TableSnapshot,
    plan: &Plan,
    ctx: ApplyContext<'_>,
) -> Vec<ActionOutcome> {
    let (retry, stop) = (ctx.retry, ctx.stop);
    let mut outcomes = Vec::with_capacity(plan.actions.len());
    // Once one expiry fails, the others wait for the next run: with a default partition
    // each is a plain DETACH that queues for ACCESS EXCLUSIVE on the parent, so trying
    // them back to back would stall inserts for one lock_timeout after another; without
    // one, PostgreSQL allows a single pending DETACH CONCURRENTLY per table.
    let mut expiry_deferred: Option<String> = None;
    for planned in &plan.actions {
        let skip = if stopping(stop) {
            Some("not started: shutting down".to_string())
        } else if let (Action::ExpirePartition { .. }, Some(why)) =
            (&planned.action, &expiry_deferred)
        {
            Some(format!("deferred to the next run: {why}"))
        } else {
            None
        };
        if let Some(detail) = skip {
            outcomes.push(ActionOutcome {
                planned: planned.clone(),
                status: Status::Skipped,
                detail,
                attempts: 0,
                seconds: 0.0,
            });
            continue;
        }
        let span = info_span!(
            "action",
            action = planned.action.kind(),
            partition = planned.action.partition()
        );
        let outcome = run_with_retries(conn, table, snapshot, planned, retry, stop, ctx.monitor)
            .instrument(span)
            .await;
        if let (Action::ExpirePartition { partition, .. }, Status::Failed) =
            (&planned.action, &outcome.status)
        {
            expiry_deferred = Some(format!("expiring {partition} failed ({})", outcome.detail));
        }
        outcomes.push(outcome);
    }
    outcomes
}

async fn run_with_retries(
    conn: &mut PgConnection,
    table: &TableConfig,
    snapshot: &TableSnapshot,
    planned: &PlannedAction,
    retry: &RetryPolicy,
    stop: Option<&StopFlag>,
    monitor: Option<&sqlx::PgPool>,
) -> ActionOutcome {
    let started = Instant::now();
    let attempts = retry.attempts.max(1);
    let mut n = 0;
    let (status, detail) = loop {
        n += 1;
        match run_once(conn, table, snapshot, &planned.action, monitor).await {
            Ok(detail) => {
                info!(attempt = n, "{}: {detail}", planned.action);
                break (Status::Done, detail);
            }
            Err(StepError::Retryable(e)) if n < attempts && !stopping(stop) => {
                let delay = retry.delay(n);
                warn!(
                    attempt = n,
                    "{}: {}; retrying in {:.1}s",
                    planned.action,
                    db_message(&e),
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
            }
            Err(StepError::Retryable(e)) => {
                let msg = format!("gave up after {n} attempt(s): {}", db_message(&e));
                warn!("{}: {msg}", planned.action);
                break (Status::Failed, msg);
            }
            Err(StepError::Fatal(msg)) => {
                warn!(attempt = n, "{}: {msg}", planned.action);
                break (Status::Failed, msg);
            }
        }
    };
    ActionOutcome {
        planned: planned.clone(),
        status,
        detail,
        attempts: n,
        seconds: started.elapsed().as_secs_f64(),
    }
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sql).await.map(|_| ())
}

/// Names used in the DDL of one table, quoted once.
struct Names {
    schema: String,
    parent: String,
    column: String,
}

impl Names {
    fn new(table: &TableConfig) -> Names {
        Names {
            schema: table.schema.quoted(),
            parent: table.qualified_name(),
            column: table.column.quoted(),
        }
    }
    fn rel(&self, name: &str) -> String {
        format!("{}.{}", self.schema, quote_ident(name))
    }
}

async fn run_once(
    conn: &mut PgConnection,
    table: &TableConfig,
    snap: &TableSnapshot,
    action: &Action,
    monitor: Option<&sqlx::PgPool>,
) -> Result<String, StepError> {
    let n = Names::new(table);
    match action {
        Action::FinalizeDetach { partition } => {
            exec(
                conn,
                format!(
                    "ALTER TABLE {} DETACH PARTITION {} FINALIZE",
                    n.parent,
                    n.rel(partition)
                )
                .as_str(),
            )
            .await?;
            Ok("detach finalized".into())
        }
        Action::CreateDefaultPartition { partition } => {
            create_default_partition(conn, &n, snap, partition).await
        }
        Action::CreatePartition { partition, bounds } => {
            Ident::new(partition.clone()).map_err(|e| StepError::Fatal(e.to_string()))?;
            create_partition(conn, &n, snap, partition, bounds).await
        }
        Action::ExpirePartition {
            partition, mode, ..
        } => expire_partition(conn, table, &n, snap, partition, *mode).await,
        Action::SyncRls { partition } => {
            let mut tx = conn.begin().await?;
            let changes = sync_rls(&mut tx, &n.rel(partition), snap, partition).await?;
            tx.commit().await?;
            Ok(format!("{changes} change(s)"))
        }
        Action::BuildIndex {
            partition,
            parent_index,
            index,
        } => build_index(conn, &n, snap, partition, parent_index, index).await,
        Action::BuildVectorIndex { .. } => {
            build_vector_index(conn, table, &n, action, monitor).await
        }
        Action::DropIndex { index, .. } => {
            exec(
                conn,
                &format!("DROP INDEX CONCURRENTLY IF EXISTS {}", n.rel(index)),
            )
            .await?;
            Ok("dropped concurrently".into())
        }
        Action::RepairIndex { index, .. } => {
            exec(
                conn,
                format!("REINDEX INDEX CONCURRENTLY {}", n.rel(index)).as_str(),
            )
            .await?;
            Ok("rebuilt concurrently".into())
        }
    }
}

/// The standalone table that becomes a partition: same columns, defaults, NOT NULL and
/// CHECK constraints as the parent (ATTACH requires them); indexes come with ATTACH.
fn create_like_sql(n: &Names, rel: &str) -> String {
    format!(
        "CREATE TABLE {rel} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE \
         INCLUDING COMPRESSION INCLUDING GENERATED)",
        n.parent
    )
}

async fn create_default_partition(
    conn: &mut PgConnection,
    n: &Names,
    snap: &TableSnapshot,
    partition: &str,
) -> Result<String, StepError> {
    let rel = n.rel(partition);
    let mut tx = conn.begin().await?;
    exec(&mut tx, create_like_sql(n, &rel).as_str()).await?;
    exec(
        &mut tx,
        format!("ALTER TABLE {} ATTACH PARTITION {rel} DEFAULT", n.parent).as_str(),
    )
    .await?;
    sync_rls(&mut tx, &rel, snap, partition).await?;
    tx.commit().await?;
    Ok("created and attached as DEFAULT".into())
}

async fn create_partition(
    conn: &mut PgConnection,
    n: &Names,
    snap: &TableSnapshot,
    partition: &str,
    bounds: &crate::calendar::PartitionBounds,
) -> Result<String, StepError> {
    let rel = n.rel(partition);
    let (from, to) = (sql_literal(bounds.from), sql_literal(bounds.to));
    let col = &n.column;
    let taken: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&rel)
        .fetch_one(&mut *conn)
        .await?;
    if taken {
        return Err(StepError::Fatal(format!(
            "a relation named {partition} already exists but is not a partition of {} (detached earlier?): \
             attach, rename or drop it so this range can get its partition",
            snap.label()
        )));
    }
    let mut tx = conn.begin().await?;
    exec(&mut tx, create_like_sql(n, &rel).as_str()).await?;
    // Proves the bounds to ATTACH, which then skips scanning the new table.
    exec(
        &mut tx,
        format!(
            "ALTER TABLE {rel} ADD CONSTRAINT partwarden_partition_bound \
             CHECK ({col} IS NOT NULL AND {col} >= '{from}' AND {col} < '{to}')"
        )
        .as_str(),
    )
    .await?;

    let mut moved = 0i64;
    if let Some(default) = &snap.default_partition {
        let drel = n.rel(&default.name);
        // FORCE ROW LEVEL SECURITY hides every row from the owner when no tenant is set.
        // Lift it for this transaction only: the ALTER holds an ACCESS EXCLUSIVE lock on
        // the default partition until commit, so no other session sees it unforced. (ATTACH
        // below needs that lock anyway to scan the default partition.)
        let forced: bool = sqlx::query_scalar(
            "SELECT relforcerowsecurity FROM pg_class WHERE oid = $1::bigint::oid",
        )
        .bind(default.oid)
        .fetch_one(&mut *tx)
        .await?;
        if forced {
            exec(
                &mut tx,
                format!("ALTER TABLE {drel} NO FORCE ROW LEVEL SECURITY").as_str(),
            )
            .await?;
        }
        let cols = snap.columns.join(", ");
        let (deleted, inserted): (i64, i64) = sqlx::query_as(&format!(
            "WITH moved AS (DELETE FROM {drel} WHERE {col} >= $1 AND {col} < $2 RETURNING {cols}),
                  ins AS (INSERT INTO {rel} ({cols}) SELECT {cols} FROM moved RETURNING 1)
             SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM ins)"
        ))
        .bind(bounds.from)
        .bind(bounds.to)
        .fetch_one(&mut *tx)
        .await?;
        let landed: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {rel}"))
            .fetch_one(&mut *tx)
            .await?;
        if deleted != inserted || inserted != landed {
            // Dropping the transaction rolls everything back: no row is lost.
            return Err(StepError::Fatal(format!(
                "row counts disagree while moving rows out of {}: {deleted} deleted, {inserted} inserted, \
                 {landed} in {partition}; rolled back",
                default.name
            )));
        }
        moved = inserted;
        if forced {
            exec(
                &mut tx,
                format!("ALTER TABLE {drel} FORCE ROW LEVEL SECURITY").as_str(),
            )
            .await?;
        }
    }

    exec(
        &mut tx,
        format!(
            "ALTER TABLE {} ATTACH PARTITION {rel} FOR VALUES FROM ('{from}') TO ('{to}')",
            n.parent
        )
        .as_str(),
    )
    .await?;
    exec(
        &mut tx,
        format!("ALTER TABLE {rel} DROP CONSTRAINT partwarden_partition_bound").as_str(),
    )
    .await?;
    // Rows are in before RLS is forced (the owner could not insert them afterwards).
    sync_rls(&mut tx, &rel, snap, partition).await?;
    tx.commit().await?;
    if moved > 0 {
        // Keep the default partition's row estimate (a metric and an alert) truthful.
        // Best effort: the partition is done; a failed ANALYZE only leaves the estimate stale.
        if let Some(default) = &snap.default_partition {
            if let Err(e) = exec(conn, &format!("ANALYZE {}", n.rel(&default.name))).await {
                warn!("ANALYZE {}: {}", default.name, db_message(&e));
            }
        }
    }
    Ok(if moved > 0 {
        format!("created and attached; moved {moved} row(s) from the default partition")
    } else {
        "created and attached".into()
    })
}

async fn expire_partition(
    conn: &mut PgConnection,
    table: &TableConfig,
    n: &Names,
    snap: &TableSnapshot,
    partition: &str,
    mode: RetentionMode,
) -> Result<String, StepError> {
    let rel = n.rel(partition);
    // A previous attempt's DETACH CONCURRENTLY may have got as far as "detach pending".
    let state: Option<bool> = sqlx::query_scalar(
        "SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = to_regclass($1) AND i.inhparent = $2::bigint::oid",
    )
    .bind(&rel)
    .bind(snap.oid)
    .fetch_optional(&mut *conn)
    .await?;
    match state {
        Some(true) => {
            exec(
                conn,
                format!("ALTER TABLE {} DETACH PARTITION {rel} FINALIZE", n.parent).as_str(),
            )
            .await?;
        }
        Some(false) if snap.default_partition.is_none() => {
            // Not allowed in a transaction block: runs on its own.
            exec(
                conn,
                format!(
                    "ALTER TABLE {} DETACH PARTITION {rel} CONCURRENTLY",
                    n.parent
                )
                .as_str(),
            )
            .await?;
        }
        Some(false) => {
            exec(
                conn,
                format!("ALTER TABLE {} DETACH PARTITION {rel}", n.parent).as_str(),
            )
            .await?;
        }
        None => {} // already detached by an earlier attempt
    }
    match mode {
        RetentionMode::Drop => {
            exec(conn, format!("DROP TABLE IF EXISTS {rel}").as_str()).await?;
            Ok("detached and dropped".into())
        }
        RetentionMode::Detach => Ok("detached; the table is kept".into()),
        RetentionMode::Archive => {
            let archive = table.archive_schema.quoted();
            let mut tx = conn.begin().await?;
            // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
            // is there: a pre-created archive schema must be enough.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(table.archive_schema.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            if !exists {
                exec(&mut tx, format!("CREATE SCHEMA {archive}").as_str()).await?;
            }
            exec(
                &mut tx,
                format!("ALTER TABLE {rel} SET SCHEMA {archive}").as_str(),
            )
            .await?;
            tx.commit().await?;
            Ok(format!(
                "detached and moved to schema {}",
                table.archive_schema
            ))
        }
    }
}

/// Gives `rel` the parent's row-level security: enabled, forced, and exactly its policies.
/// Returns the number of changes.
async fn sync_rls(
    conn: &mut PgConnection,
    rel: &str,
    snap: &TableSnapshot,
    partition: &str,
) -> Result<u32, StepError> {
    let current = snap.find(partition);
    let (enabled, forced) = match current {
        Some(p) => (p.rls_enabled, p.rls_forced),
        None => (false, false), // created in this transaction
    };
    let existing: Vec<Policy> = current.map(|p| p.policies.clone()).unwrap_or_default();
    let mut changes = 0;
    if snap.rls_enabled && !enabled {
        exec(
            conn,
            format!("ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY").as_str(),
        )
        .await?;
        changes += 1;
    }
    if snap.rls_forced && !forced {
        exec(
            conn,
            format!("ALTER TABLE {rel} FORCE ROW LEVEL SECURITY").as_str(),
        )
        .await?;
        changes += 1;
    }
    for c in &existing {
        if !snap.policies.iter().any(|p| p == c) {
            exec(
                conn,
                format!("DROP POLICY {} ON {rel}", quote_ident(&c.name)).as_str(),
            )
            .await?;
            changes += 1;
        }
    }
    for p in &snap.policies {
        if !existing.iter().any(|c| c == p) {
            exec(conn, create_policy_sql(p, rel).as_str()).await?;
            changes += 1;
        }
    }
    Ok(changes)
}

fn create_policy_sql(p: &Policy, rel: &str) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {rel} AS {} FOR {} TO {}",
        quote_ident(&p.name),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd,
        if p.roles.is_empty() {
            "PUBLIC".to_string()
        } else {
            p.roles.join(", ")
        }
    );
    if let Some(q) = &p.qual {
        sql.push_str(&format!(" USING ({q})"));
    }
    if let Some(w) = &p.with_check {
        sql.push_str(&format!(" WITH CHECK ({w})"));
    }
    sql
}

async fn build_index(
    conn: &mut PgConnection,
    n: &Names,
    snap: &TableSnapshot,
    partition: &str,
    parent_index: &str,
    index: &str,
) -> Result<String, StepError> {
    let pi = snap
        .parent_indexes
        .iter()
        .find(|i| i.name == parent_index)
        .ok_or_else(|| StepError::Fatal(format!("parent index {parent_index} is gone")))?;
    // `CREATE INDEX name ON ONLY parent USING …`: keep what follows USING.
    let using = pi
        .definition
        .split_once(" USING ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            StepError::Fatal(format!(
                "cannot read the definition of {parent_index}: {}",
                pi.definition
            ))
        })?;
    let rel = n.rel(partition);
    let idx = n.rel(index);
    // A previous attempt may have left the index behind, valid (then only attach it) or
    // INVALID (drop it first: REINDEX cannot fix a half-built index that was never valid
    // any better than a fresh build).
    let existing: Option<bool> = sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1) AND i.indrelid = to_regclass($2)",
    )
    .bind(&idx)
    .bind(&rel)
    .fetch_optional(&mut *conn)
    .await?;
    if existing == Some(false) {
        exec(
            conn,
            format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}").as_str(),
        )
        .await?;
    }
    if existing != Some(true) {
        let unique = if pi.is_unique { "UNIQUE " } else { "" };
        exec(
            conn,
            format!(
                "CREATE {unique}INDEX CONCURRENTLY {} ON {rel} USING {using}",
                quote_ident(index)
            )
            .as_str(),
        )
        .await?;
    }
    exec(
        conn,
        format!("ALTER INDEX {} ATTACH PARTITION {idx}", n.rel(parent_index)).as_str(),
    )
    .await?;
    Ok("built concurrently and attached".into())
}

/// Builds a partition's vector index concurrently (the partition stays readable and
/// writable), records how it was built in its comment, and only then drops the index it
/// replaces: the partition is never without a usable index.
async fn build_vector_index(
    conn: &mut PgConnection,
    table: &TableConfig,
    n: &Names,
    action: &Action,
    monitor: Option<&sqlx::PgPool>,
) -> Result<String, StepError> {
    let Action::BuildVectorIndex {
        partition,
        index,
        method,
        lists,
        rows,
        closed,
        generation,
        replaces,
    } = action
    else {
        unreachable!("called for BuildVectorIndex")
    };
    let policy = table
        .vector_index
        .as_ref()
        .ok_or_else(|| StepError::Fatal("the table has no vector_index policy".into()))?;
    let dims = crate::vector::validate_policy(conn, table)
        .await
        .map_err(|e| StepError::Fatal(e.to_string()))?
        .unwrap_or(0);
    let rel = n.rel(partition);
    let idx = n.rel(index);
    // An earlier attempt may have left this index INVALID: drop it first.
    let existing: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
            .bind(&idx)
            .fetch_optional(&mut *conn)
            .await?;
    if existing == Some(false) {
        exec(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}")).await?;
    }
    let with = match method {
        crate::config::VectorMethod::Ivfflat => format!("lists = {}", lists.unwrap_or(1)),
        crate::config::VectorMethod::Hnsw => format!(
            "m = {}, ef_construction = {}",
            policy.m, policy.ef_construction
        ),
    };
    let mwm = crate::vector::maintenance_work_mem_kb(policy, *rows, *lists, dims);
    if existing != Some(true) {
        exec(conn, &format!("SET maintenance_work_mem = '{mwm}kB'")).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        let watcher = monitor
            .cloned()
            .map(|pool| tokio::spawn(report_progress(pool, pid, index.clone())));
        let sql = format!(
            "CREATE INDEX CONCURRENTLY {} ON {rel} USING {} ({} {}) WITH ({with})",
            quote_ident(index),
            method.as_str(),
            policy.column.quoted(),
            policy.opclass.quoted()
        );
        let built = exec(conn, &sql).await;
        if let Some(w) = watcher {
            w.abort();
        }
        let _ = exec(conn, "RESET maintenance_work_mem").await;
        built?;
    }
    let record = crate::vector::BuildRecord {
        method: *method,
        lists: *lists,
        rows: *rows,
        closed: *closed,
        generation: *generation,
    };
    exec(
        conn,
        &format!("COMMENT ON INDEX {idx} IS '{}'", record.comment()),
    )
    .await?;
    let mut detail = format!(
        "built concurrently ({with}, maintenance_work_mem {} MB)",
        mwm / 1024
    );
    if let Some(old) = replaces {
        exec(
            conn,
            &format!("DROP INDEX CONCURRENTLY IF EXISTS {}", n.rel(old)),
        )
        .await?;
        detail.push_str(&format!("; dropped {old}"));
    }
    Ok(detail)
}

/// Logs a long index build's phase and progress every 10 s.
async fn report_progress(pool: sqlx::PgPool, pid: i32, index: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let row: Result<Option<(String, Option<f64>)>, _> = sqlx::query_as(
            "SELECT phase, round(100.0 * CASE WHEN blocks_total > 0 THEN blocks_done::numeric / blocks_total
                                              WHEN tuples_total > 0 THEN tuples_done::numeric / tuples_total END, 1)::float8
               FROM pg_stat_progress_create_index WHERE pid = $1",
        )
        .bind(pid)
        .fetch_optional(&pool)
        .await;
        match row {
            Ok(Some((phase, pct))) => match pct {
                Some(p) => info!(index = %index, "building: {phase}, {p}%"),
                None => info!(index = %index, "building: {phase}"),
            },
            Ok(None) => return,
            Err(_) => {}
        }
    }
}
