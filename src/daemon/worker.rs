//! The maintenance worker: the one task that runs maintenance, so runs never overlap. It
//! runs once at start (when the database is reachable and this replica leads), on the
//! triggers of [`super::schedule`], and after a failed run with backoff.
//!
//! Leadership is a PostgreSQL advisory lock held on one dedicated connection: exactly one
//! replica maintains a database; the others only report, and try every few seconds to
//! become the leader. If that connection dies, the lock is released by the server and
//! another replica takes over. Each run also takes the run lock on that connection, for
//! the run only ([`crate::engine::advisory`]): `partwarden maintain` runs between the
//! daemon's runs, and a trigger that comes while one is under way waits for it.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, info_span, warn, Instrument};

use super::shared::{locked, Shared};
use crate::engine::advisory::describe_run_lock_holder;
use crate::engine::manager::{run_maintenance, LeaderLock, RunOptions, TableRun};
use crate::engine::state;

/// The worker's state between its one-second ticks.
struct Worker {
    shared: Arc<Shared>,
    pool: PgPool,
    lock: Option<LeaderLock>,
    /// The trigger of the run waiting for the lock and the database.
    pending: Option<&'static str>,
    /// The pending run found the run lock taken by another session (a `partwarden
    /// maintain`) and waits for it.
    waiting: bool,
    /// Another session held the run lock at the last look: when it lets go, what it
    /// changed is read into the statistics at once.
    held_elsewhere: bool,
    /// Failed runs in a row, for the backoff.
    failures: u32,
    retry_at: Option<Instant>,
}

/// The one task that runs maintenance, so runs never overlap.
pub(super) async fn maintenance_worker(
    shared: Arc<Shared>,
    pool: PgPool,
    mut triggers: mpsc::Receiver<&'static str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut worker = Worker {
        shared,
        pool,
        lock: None,
        pending: Some("start"),
        waiting: false,
        held_elsewhere: false,
        failures: 0,
        retry_at: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        worker.keep_leadership(ticks.is_multiple_of(5)).await;
        worker.queue_due_retry();
        if worker.run_pending().await.is_break() {
            break;
        }
        tokio::select! {
            t = triggers.recv() => match t {
                Some(reason) => worker.trigger(reason),
                None => break,
            },
            _ = tick.tick() => { ticks += 1; }
            _ = shutdown.changed() => break,
        }
    }
    worker.release().await;
}

impl Worker {
    fn leads(&self) -> bool {
        self.lock.as_ref().is_some_and(LeaderLock::leads)
    }

    /// A trigger while the pending run waits for another session's run: that run does the
    /// work, and the waiting one follows it, so this one is skipped and counted — as one
    /// that comes during the daemon's own run is ([`super::schedule`]).
    fn trigger(&mut self, reason: &'static str) {
        if self.waiting && self.leads() {
            warn!(
                trigger = reason,
                "maintenance skipped: a run is already waiting for the one under way elsewhere"
            );
            self.shared.count_run_for_all_tables("skipped");
        } else {
            self.pending = Some(reason);
        }
    }

    /// Every few seconds (`periodic`) checks that the lock's session is alive, or tries to
    /// take the lock; at once when a run is due and the lock is not held.
    async fn keep_leadership(&mut self, periodic: bool) {
        let due = periodic || (self.lock.is_none() && self.pending.is_some());
        if due && self.shared.db_up() {
            if self.lock.is_some() {
                self.watch_run_lock().await;
            } else {
                match LeaderLock::try_acquire(&self.pool).await {
                    Ok(l) => self.lock = l,
                    Err(e) => warn!("leadership lock: {e}"),
                }
            }
            self.confirm_leadership().await;
        }
        self.shared.set_leader(self.leads());
    }

    /// Looks whether another session holds the run lock; a failure means the lock's
    /// session is gone. When a run elsewhere has just ended, refreshes the statistics.
    async fn watch_run_lock(&mut self) {
        let Some(l) = self.lock.as_mut() else {
            return;
        };
        match l.run_lock_held_elsewhere().await {
            Ok(held) => {
                if self.held_elsewhere && !held {
                    info!(
                        "the maintenance run under way elsewhere has ended; refreshing statistics"
                    );
                    self.shared.refresh.notify_one();
                }
                self.held_elsewhere = held;
            }
            Err(e) => {
                warn!("lost the leadership lock's connection: {e}");
                self.lose_leadership();
            }
        }
    }

    /// A replica that has just taken leadership leads once the run lock has been free:
    /// until then an older daemon may hold it for good, and that one still leads.
    async fn confirm_leadership(&mut self) {
        let Some(l) = self.lock.as_mut() else {
            return;
        };
        if let Err(e) = l.confirm().await {
            warn!("leadership lock: {e}");
            self.lose_leadership();
        }
    }

    fn lose_leadership(&mut self) {
        self.lock = None;
        self.waiting = false;
        self.held_elsewhere = false;
    }

    fn queue_due_retry(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.pending.get_or_insert("retry");
        }
    }

    /// Runs the pending trigger when this replica leads, the database is up and no other
    /// run holds the run lock. Breaks when shutdown began during the run.
    async fn run_pending(&mut self) -> ControlFlow<()> {
        let Some(reason) = self.pending else {
            return ControlFlow::Continue(());
        };
        if !self.shared.db_up() {
            return ControlFlow::Continue(());
        }
        let Some(mut held) = self.lock.take() else {
            return ControlFlow::Continue(());
        };
        match held.try_begin_run().await {
            Ok(true) => self.shared.set_leader(held.leads()),
            Ok(false) => {
                self.wait_for_run_elsewhere(&mut held, reason).await;
                self.lock = Some(held);
                return ControlFlow::Continue(());
            }
            Err(e) => {
                warn!("lost the leadership lock's connection: {e}");
                self.lose_leadership();
                self.shared.set_leader(false);
                return ControlFlow::Continue(());
            }
        }
        if std::mem::take(&mut self.waiting) {
            info!(
                trigger = reason,
                "the run under way elsewhere has ended; maintenance starts"
            );
        }
        self.pending = None;
        let (ok, back) = one_run(&self.shared, &self.pool, held, reason).await;
        self.lock = back;
        self.shared.set_leader(self.leads());
        if self.shared.stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        self.schedule_retry(ok);
        self.shared.refresh.notify_one();
        ControlFlow::Continue(())
    }

    /// The pending run stays pending (tried again every second); says once who is in the
    /// way.
    async fn wait_for_run_elsewhere(&mut self, held: &mut LeaderLock, reason: &'static str) {
        self.held_elsewhere = true;
        if std::mem::replace(&mut self.waiting, true) {
            return;
        }
        let holder = match describe_run_lock_holder(held.conn()).await {
            Ok(Some(h)) => h,
            Ok(None) => "a session that let go just now".into(),
            Err(e) => format!("a session the database did not name ({e})"),
        };
        info!(
            trigger = reason,
            "maintenance waits for the run under way elsewhere to end: the run lock is taken by {holder}"
        );
    }

    fn schedule_retry(&mut self, run_ok: bool) {
        if run_ok {
            self.failures = 0;
            return;
        }
        self.failures += 1;
        // 1 min doubling, jittered, the wait under 1 h.
        let delay = crate::backoff::nth_delay(
            Duration::from_secs(60),
            Duration::from_secs(30 * 60),
            self.failures,
        );
        warn!("maintenance will be retried in {}s", delay.as_secs());
        self.retry_at = Some(Instant::now() + delay);
    }

    async fn release(self) {
        if let Some(l) = self.lock {
            let _ = l.release().await;
        }
        self.shared.set_leader(false);
    }
}

/// One maintenance run, supervised: it runs in a task of its own that owns the lock's
/// connection. If it panics, that is a failed run like any other (counted, retried with
/// backoff), the lock's connection is dropped with the task — the server releases both
/// advisory locks, so this replica stops claiming leadership until it takes the lock
/// again — and the worker goes on. Returns whether the run succeeded, and the lock when
/// it is still held.
async fn one_run(
    shared: &Arc<Shared>,
    pool: &PgPool,
    lock: LeaderLock,
    reason: &'static str,
) -> (bool, Option<LeaderLock>) {
    shared.running.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let task = tokio::spawn(run_and_record(shared.clone(), pool.clone(), lock, reason));
    *locked(&shared.current_run) = Some(task.abort_handle());
    let joined = task.await;
    locked(&shared.current_run).take();
    let (ok, lock) = match joined {
        Ok(done) => done,
        Err(e) => {
            let why = if e.is_panic() {
                "panicked"
            } else {
                "was abandoned"
            };
            error!(
                trigger = reason,
                "maintenance run {why}; counted as failed, the maintenance lock is released"
            );
            shared.count_run_for_all_tables("failure");
            (false, None)
        }
    };
    shared
        .metrics
        .observe_run_duration(started.elapsed().as_secs_f64());
    shared.running.store(false, Ordering::Relaxed);
    // The run read every table's snapshot at once (~150 MiB at 30,000 partitions): without
    // this its memory stayed resident until the next statistics refresh.
    crate::memory::release_freed();
    (ok, lock)
}

/// The run, its record, and the run lock let go; the lock comes back unless its session
/// failed doing that (dropping it ends the session, which releases both locks).
async fn run_and_record(
    shared: Arc<Shared>,
    pool: PgPool,
    mut lock: LeaderLock,
    reason: &'static str,
) -> (bool, Option<LeaderLock>) {
    let opts = RunOptions {
        now: None,
        dry_run: false,
        backfill: false,
        only_table: None,
        stop: Some(shared.stop.clone()),
    };
    let span = info_span!("maintenance", trigger = reason);
    let result = run_maintenance(&pool, lock.conn(), &shared.config, &opts)
        .instrument(span)
        .await;
    let ok = match result {
        Ok(report) => {
            let mut all_ok = true;
            for t in &report.tables {
                all_ok &= record_table_run(&shared, lock.conn(), t).await;
            }
            all_ok
        }
        Err(e) => {
            warn!("maintenance failed: {e}");
            shared.count_run_for_all_tables("failure");
            false
        }
    };
    match lock.end_run().await {
        Ok(()) => (ok, Some(lock)),
        Err(e) => {
            warn!("releasing the run lock: {e}; leadership is given up with its connection");
            (ok, None)
        }
    }
}

/// One table's part of a run into the metrics, `partwarden_state` (so the other replicas
/// and the next start know the last success), the log and `/status`. Returns whether it
/// succeeded.
async fn record_table_run(shared: &Shared, conn: &mut PgConnection, t: &TableRun) -> bool {
    let success = t.succeeded();
    shared
        .metrics
        .count_run(&t.table, if success { "success" } else { "failure" });
    if success {
        shared.metrics.set_last_success(&t.table, t.started_at);
    }
    if let Some(r) = &t.report {
        shared.metrics.observe_exports(&t.table, &r.outcomes);
    }
    let json = serde_json::to_value(t).unwrap_or_default();
    if let Err(e) = state::record_run(conn, &t.table, success, t.started_at, &json).await {
        warn!(table = %t.table, "recording the run in partwarden_state: {e}");
    }
    let actions = t.report.as_ref().map(|r| r.outcomes.len()).unwrap_or(0);
    match &t.error {
        Some(e) => warn!(table = %t.table, "maintenance failed: {e}"),
        None if success => info!(table = %t.table, actions, "maintenance done"),
        None => {
            warn!(table = %t.table, actions, "maintenance finished with failed actions")
        }
    }
    locked(&shared.last_runs).insert(t.table.clone(), t.clone());
    success
}
