//! The executor: runs a [`Plan`]'s actions online, each in its own short transaction (or
//! none, where PostgreSQL forbids one), on one connection.
//!
//! Online means no application query waits behind partwarden for long:
//! * every statement runs under `lock_timeout` (set on every session, see `db.rs`);
//! * a lock that blocks the application (ACCESS EXCLUSIVE on a partition or the parent,
//!   SHARE on the parent) is taken explicitly, never behind a long holder, and waited for
//!   at most `lock_wait` (see `locks.rs`);
//! * a step that finds its locks taken, or times out on one, is retried with jittered
//!   exponential backoff, at most `ddl_attempts` times; then the action fails, the next
//!   one runs, and the next maintenance run tries again.
//!
//! Nothing is lost or forgotten: an action that cannot finish in one transaction records
//! itself in `partwarden_journal` first (see `journal.rs`), so a later run finishes it.
//!
//! * New partitions (`create.rs`): a standalone table `LIKE` the parent with a CHECK
//!   matching its bounds, then — with writers held by a SHARE lock on the parent when a
//!   default partition exists — the range's rows moved out of the default partition,
//!   `ATTACH PARTITION`, RLS, commit.
//! * Expiry (`expire.rs`): RLS repaired, then with a default partition one transaction
//!   (DETACH, then DROP / keep / SET SCHEMA); without one `DETACH … CONCURRENTLY` between
//!   journal entries.
//! * Indexes (`index.rs`) and vector indexes (`vector.rs`): built `CONCURRENTLY`.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Executor, PgConnection};
use tracing::{info, info_span, warn, Instrument};

use crate::catalog::{Journaled, TableSnapshot};
use crate::config::TableConfig;
use crate::diagnose::server_message as db_message;
use crate::ident::{quote_ident, Ident};
use crate::plan::{Action, Plan, PlannedAction};
use locks::LockError;

pub mod census;
pub use export::ExportSummary;
mod create;
mod expire;
mod export;
mod index;
pub(crate) mod journal;
pub(crate) mod locks;
mod restore;
mod rls;
mod vector;

/// How DDL waits for locks, and how often it is retried when it cannot get them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    /// The longest wait in the lock queue for a lock that blocks the application.
    pub lock_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            lock_wait: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// Wait before attempt `n + 1`: in `[b·2^(n-1), 2·b·2^(n-1))`, b = `backoff`, at
    /// most 30 s.
    fn delay(&self, n: u32) -> Duration {
        crate::backoff::nth_delay(self.backoff, Duration::from_secs(15), n)
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
    /// What an expiry in export mode wrote to the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
}

impl ActionOutcome {
    pub fn ok(&self) -> bool {
        self.status == Status::Done
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum StepError {
    /// A lock was taken by someone else, waiting for one hit its timeout, or a deadlock
    /// was broken: try again later.
    Retryable(String),
    Fatal(String),
    /// Refused for want of privilege (42501): explained with who owns what, read after
    /// the step's transaction is gone.
    Refused(sqlx::Error),
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string());
        match code.as_deref() {
            // lock_not_available (lock_timeout), deadlock_detected, serialization_failure
            Some("55P03") | Some("40P01") | Some("40001") => StepError::Retryable(db_message(&e)),
            Some("42501") => StepError::Refused(e),
            _ => StepError::Fatal(db_message(&e)),
        }
    }
}

impl From<LockError> for StepError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Busy(why) => StepError::Retryable(why),
            LockError::Database(e) => e.into(),
        }
    }
}

/// The refusals of one plan already explained, and by which action: the same refusal of
/// the next actions (every one needs ownership of the table) points back to it instead of
/// repeating the whole explanation in every outcome and log line.
#[derive(Default)]
struct Explained(Vec<(String, String)>);

impl Explained {
    /// A refusal explained (the role, what it must own or be granted); the server's words
    /// alone when partwarden cannot say more.
    async fn explain(
        &mut self,
        conn: &mut PgConnection,
        step: &Step<'_>,
        planned: &PlannedAction,
        e: &sqlx::Error,
    ) -> String {
        let server = db_message(e);
        if let Some((_, first)) = self.0.iter().find(|(s, _)| *s == server) {
            return format!("{server}: as explained at `{first}` above");
        }
        let schema = Some(step.table.schema.as_str());
        let text = match crate::catalog::privilege::explain_refusal(conn, e, schema).await {
            Ok(Some(explained)) => explained.to_string(),
            Ok(None) => server.clone(),
            Err(lookup) => format!(
                "{server} (who owns what could not be read: {})",
                db_message(&lookup)
            ),
        };
        self.0.push((server, planned.action.to_string()));
        text
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
    if !plan.actions.is_empty() {
        if let Err(e) = crate::apply::journal::ensure_table(conn).await {
            warn!("partwarden_journal: {}", db_message(&e));
        }
    }
    // Once one expiry fails, the others wait for the next run: with a default partition
    // each is a plain DETACH that queues for ACCESS EXCLUSIVE on the parent, so trying
    // them back to back would stall inserts for one lock_timeout after another; without
    // one, PostgreSQL allows a single pending DETACH CONCURRENTLY per table.
    let mut expiry_deferred: Option<String> = None;
    let mut explained = Explained::default();
    for planned in &plan.actions {
        if let Some(detail) = skip_reason(planned, stop, expiry_deferred.as_deref()) {
            outcomes.push(skipped(planned, detail));
            continue;
        }
        let span = info_span!(
            "action",
            action = planned.action.kind(),
            partition = planned.action.partition()
        );
        let step = Step {
            table,
            cutoff: plan.cutoff,
            snap: snapshot,
            names: Names::new(table),
            lock_wait: retry.lock_wait,
            monitor: ctx.monitor,
            exported: std::sync::Mutex::new(None),
        };
        let outcome = run_with_retries(conn, &step, planned, retry, stop, &mut explained)
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

/// Why `planned` is not started: shutdown, or an earlier expiry of this run failed.
fn skip_reason(
    planned: &PlannedAction,
    stop: Option<&StopFlag>,
    expiry_deferred: Option<&str>,
) -> Option<String> {
    if stopping(stop) {
        Some("not started: shutting down".to_string())
    } else if let (Action::ExpirePartition { .. }, Some(why)) = (&planned.action, expiry_deferred) {
        Some(format!("deferred to the next run: {why}"))
    } else {
        None
    }
}

fn skipped(planned: &PlannedAction, detail: String) -> ActionOutcome {
    ActionOutcome {
        planned: planned.clone(),
        status: Status::Skipped,
        detail,
        attempts: 0,
        seconds: 0.0,
        export: None,
    }
}

async fn run_with_retries(
    conn: &mut PgConnection,
    step: &Step<'_>,
    planned: &PlannedAction,
    retry: &RetryPolicy,
    stop: Option<&StopFlag>,
    explained: &mut Explained,
) -> ActionOutcome {
    let started = Instant::now();
    let attempts = retry.attempts.max(1);
    let mut n = 0;
    let (status, detail) = loop {
        n += 1;
        match run_once(conn, step, &planned.action).await {
            Ok(detail) => {
                info!(attempt = n, "{}: {detail}", planned.action);
                break (Status::Done, detail);
            }
            Err(StepError::Retryable(e)) if n < attempts && !stopping(stop) => {
                let delay = retry.delay(n);
                warn!(
                    attempt = n,
                    "{}: {e}; retrying in {:.1}s",
                    planned.action,
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
            }
            Err(StepError::Retryable(e)) => {
                let msg = format!("gave up after {n} attempt(s): {e}");
                warn!("{}: {msg}", planned.action);
                break (Status::Failed, msg);
            }
            Err(StepError::Fatal(msg)) => {
                warn!(attempt = n, "{}: {msg}", planned.action);
                break (Status::Failed, msg);
            }
            Err(StepError::Refused(e)) => {
                let msg = explained.explain(conn, step, planned, &e).await;
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
        export: step.take_export(),
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
    /// A relation in the table's schema.
    fn rel(&self, name: &str) -> String {
        format!("{}.{}", self.schema, quote_ident(name))
    }
}

/// What every step of one action needs.
struct Step<'a> {
    table: &'a TableConfig,
    /// The plan's retention cutoff.
    cutoff: chrono::DateTime<chrono::Utc>,
    snap: &'a TableSnapshot,
    names: Names,
    lock_wait: Duration,
    monitor: Option<&'a sqlx::PgPool>,
    /// Set by an export that completed (the step's result is text).
    exported: std::sync::Mutex<Option<ExportSummary>>,
}

impl Step<'_> {
    /// The table's label in `partwarden_journal`.
    fn label(&self) -> String {
        self.table.label()
    }

    fn record_export(&self, summary: ExportSummary) {
        if let Ok(mut e) = self.exported.lock() {
            *e = Some(summary);
        }
    }

    fn take_export(&self) -> Option<ExportSummary> {
        self.exported.lock().ok().and_then(|mut e| e.take())
    }
}

async fn run_once(
    conn: &mut PgConnection,
    step: &Step<'_>,
    action: &Action,
) -> Result<String, StepError> {
    match action {
        Action::FinalizeDetach { partition } => {
            expire::finalize_detach(conn, step, partition).await
        }
        Action::CreateDefaultPartition { partition } => {
            create::default_partition(conn, step, partition).await
        }
        Action::CreatePartition { partition, bounds } => {
            Ident::new(partition.clone()).map_err(|e| StepError::Fatal(e.to_string()))?;
            create::partition(conn, step, partition, bounds).await
        }
        Action::ExpirePartition {
            partition,
            bounds,
            mode,
            ..
        } => expire::expire(conn, step, partition, *bounds, *mode).await,
        Action::FinishExpiry { partition, .. } => {
            expire::finish(conn, step, journaled_expiry(step, partition)?).await
        }
        Action::SyncRls { partition } => {
            rls::sync_locked(conn, step, &step.names.rel(partition)).await
        }
        Action::SyncRetiredRls { schema, name, .. } => {
            let rel = format!("{}.{}", quote_ident(schema), quote_ident(name));
            rls::sync_locked(conn, step, &rel).await
        }
        Action::BuildIndex {
            partition,
            parent_index,
            index,
        } => index::build(conn, step, partition, parent_index, index).await,
        Action::RepairIndex { index, .. } => index::repair(conn, step, index).await,
        Action::DropIndex { index, .. } => index::drop(conn, step, index).await,
        Action::BuildVectorIndex { .. } => vector::build(conn, step, action).await,
        Action::AdoptVectorIndex { index, comment, .. } => {
            vector::adopt(conn, step, index, comment).await
        }
        Action::RestorePartition {
            partition,
            bounds,
            run_id,
            hold_until,
            ..
        } => {
            Ident::new(partition.clone()).map_err(|e| StepError::Fatal(e.to_string()))?;
            restore::restore(conn, step, partition, bounds, run_id, *hold_until).await
        }
        Action::ForgetJournalEntry { entry, object, .. } => {
            crate::apply::journal::remove(conn, &step.label(), entry, object).await?;
            Ok("removed from partwarden_journal".into())
        }
    }
}

/// The journal entry of the interrupted expiry of `partition`.
fn journaled_expiry<'s>(step: &Step<'s>, partition: &str) -> Result<&'s Journaled, StepError> {
    step.snap
        .journal
        .iter()
        .map(|e| &e.what)
        .find(|w| matches!(w, Journaled::Expire { partition: p, .. } if p == partition))
        .ok_or_else(|| StepError::Fatal(format!("no journal entry for {partition}")))
}

/// The standalone table that becomes a partition: same columns, defaults, NOT NULL and
/// CHECK constraints as the parent (ATTACH requires them); indexes come with ATTACH.
/// `with_indexes`: the parent's indexes too (for a table loaded before it is attached).
fn create_like_sql(n: &Names, rel: &str, with_indexes: bool) -> String {
    format!(
        "CREATE TABLE {rel} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE \
         INCLUDING COMPRESSION INCLUDING GENERATED{})",
        n.parent,
        if with_indexes {
            " INCLUDING INDEXES"
        } else {
            ""
        }
    )
}
