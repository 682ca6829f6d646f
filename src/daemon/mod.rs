//! `partwarden run`: the long-running sidecar.
//!
//! Tasks, all in one process:
//! * HTTP (`/metrics`, `/healthz`, `/readyz`, `/status`) from memory — up before, and
//!   whatever happens to, the database;
//! * statistics: every `stats_interval` (every second while the database is unreachable,
//!   so readiness follows it closely) a catalog snapshot per table refreshes the gauges,
//!   and a replica that is not the leader tries to become it;
//! * maintenance worker: once at start (when the database is reachable and this replica
//!   leads), on the cron schedule (tokio-cron-scheduler, UTC), and after a failed run with
//!   backoff. Runs never overlap: a trigger that arrives while a run is going is counted
//!   as skipped;
//! * probe (optional): a read-only date-range query timed into a histogram, never while
//!   maintenance runs;
//! * SIGHUP: run maintenance now;
//! * SIGTERM/SIGINT: stop between actions, give the action under way a few seconds, exit 0.
//!
//! Leadership is a PostgreSQL advisory lock held on one dedicated connection: exactly one
//! replica maintains a database; the others only report. If that connection dies, the
//! lock is released by the server and another replica takes over.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{error, info, info_span, warn, Instrument};

use crate::apply::StopFlag;
use crate::catalog;
use crate::config::Config;
use crate::telemetry::http::{self, Endpoints};
use crate::engine::manager::{run_maintenance, MaintenanceLock, RunOptions, TableRun};
use crate::telemetry::metrics::{Metrics, TableGauges};
use crate::engine::{db, state};
use crate::plan::health;

/// How long an in-flight action gets to finish after SIGTERM before it is abandoned
/// (its connection closed: the server rolls its transaction back).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

/// State shared by the tasks and served over HTTP.
pub struct Shared {
    pub config: Config,
    pub metrics: Metrics,
    db_up: AtomicBool,
    leader: AtomicBool,
    running: AtomicBool,
    stop: StopFlag,
    last_runs: Mutex<BTreeMap<String, TableRun>>,
    tables_status: Mutex<BTreeMap<String, serde_json::Value>>,
    refresh: Notify,
    /// The maintenance run under way, so shutdown can abandon it after the grace period.
    current_run: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let metrics = Metrics::default();
        for t in &config.tables {
            metrics.register_table(&t.label());
        }
        Shared {
            config,
            metrics,
            db_up: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            running: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            last_runs: Mutex::new(BTreeMap::new()),
            tables_status: Mutex::new(BTreeMap::new()),
            refresh: Notify::new(),
            current_run: Mutex::new(None),
        }
    }

    fn set_db_up(&self, up: bool) {
        if self.db_up.swap(up, Ordering::Relaxed) != up {
            if up {
                info!("database reachable");
            } else {
                warn!("database unreachable");
            }
        }
        self.metrics.set_database_up(up);
    }

    fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::Relaxed) != leader {
            info!(leader, "leadership changed");
        }
        self.metrics.set_leader(leader);
    }
}

impl Endpoints for Shared {
    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn ready(&self) -> Result<(), String> {
        if self.db_up.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("database unreachable".into())
        }
    }

    fn status_json(&self) -> String {
        let runs = self
            .last_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let tables = self
            .tables_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let doc = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "database_up": self.db_up.load(Ordering::Relaxed),
            "leader": self.leader.load(Ordering::Relaxed),
            "maintenance_running": self.running.load(Ordering::Relaxed),
            "last_runs": runs,
            "tables": tables,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let url = config
        .database_url()
        .context("the daemon needs a database URL")?
        .clone();
    let settings = db::SessionSettings::from(&config.database);
    let pool = db::pool(url.expose(), &settings).context("database URL")?;
    // Each HTTP connection is a file descriptor: use what the hard limit allows (the soft
    // limit is often 1024) before the first client arrives.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        warn!("cannot raise the open-files limit: {e}");
    }
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
    info!(%listen, url = %url, tables = config.tables.len(), "partwarden starting");

    let shared = Arc::new(Shared::new(config));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let http_task = tokio::spawn(http::serve(
        listener,
        shared.clone() as Arc<dyn Endpoints>,
        shutdown_rx.clone(),
    ));
    let stats_task = tokio::spawn(stats_loop(
        shared.clone(),
        pool.clone(),
        shutdown_rx.clone(),
    ));
    let heartbeat_task = tokio::spawn(heartbeat_loop(
        shared.clone(),
        pool.clone(),
        shutdown_rx.clone(),
    ));
    let probe_task = shared.config.probe.enabled.then(|| {
        tokio::spawn(probe_loop(
            shared.clone(),
            pool.clone(),
            shutdown_rx.clone(),
        ))
    });

    // Cron triggers go through a channel to the one maintenance worker.
    let (trigger_tx, trigger_rx) = mpsc::channel::<&'static str>(1);
    let mut scheduler = tokio_cron_scheduler::JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    {
        let cron = shared.config.schedule.maintenance.clone();
        let shared = shared.clone();
        let tx = trigger_tx.clone();
        let job = tokio_cron_scheduler::Job::new_async_tz(cron.as_str(), Utc, move |_, _| {
            let shared = shared.clone();
            let tx = tx.clone();
            Box::pin(async move {
                if shared.running.load(Ordering::Relaxed) || tx.try_send("cron").is_err() {
                    warn!("scheduled maintenance skipped: the previous run is still going");
                    for t in &shared.config.tables {
                        shared.metrics.count_run(&t.label(), "skipped");
                    }
                }
            })
        })
        .context("schedule.maintenance")?;
        scheduler.add(job).await.context("scheduling maintenance")?;
        scheduler.start().await.context("starting the scheduler")?;
    }
    let mut worker = tokio::spawn(maintenance_worker(
        shared.clone(),
        pool.clone(),
        trigger_rx,
        shutdown_rx.clone(),
    ));

    // SIGHUP: run maintenance now (operators, and the end-to-end alert test).
    #[cfg(unix)]
    {
        let tx = trigger_tx.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                info!("SIGHUP: maintenance requested");
                if tx.try_send("sighup").is_err() {
                    for t in &shared.config.tables {
                        shared.metrics.count_run(&t.label(), "skipped");
                    }
                }
            }
        });
    }
    // The worker survives a panicking run (see `one_run`); if it dies anyway the daemon
    // cannot maintain any more, and says so by exiting non-zero (the orchestrator restarts it).
    let worker_died = tokio::select! {
        _ = wait_for_signal() => None,
        r = &mut worker => Some(r),
    };
    if let Some(r) = worker_died {
        let why = match r {
            Err(e) if e.is_panic() => "panicked".to_string(),
            Err(e) => e.to_string(),
            Ok(()) => "stopped".to_string(),
        };
        error!("the maintenance worker {why}; exiting so the daemon is restarted");
        shared.set_leader(false);
        let _ = shutdown_tx.send(true);
        let _ = scheduler.shutdown().await;
        pool.close().await;
        anyhow::bail!("the maintenance worker {why}");
    }
    info!("shutting down");
    shared.stop.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let _ = scheduler.shutdown().await;
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut worker)
        .await
        .is_err()
    {
        warn!(
            "maintenance did not stop within {SHUTDOWN_GRACE:?}; abandoning it: the server rolls back the \
             transaction it had open, and the next run finishes what earlier steps committed (partwarden_journal)"
        );
        if let Some(run) = shared
            .current_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            run.abort();
        }
        worker.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), http_task).await;
    stats_task.abort();
    heartbeat_task.abort();
    if let Some(p) = probe_task {
        p.abort();
    }
    pool.close().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Refreshes the catalog-derived gauges; every second while the database is down.
async fn stats_loop(shared: Arc<Shared>, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let mut state_table_ready = false;
    loop {
        let up = refresh_stats(&shared, &pool, &mut state_table_ready).await;
        let wait = if up {
            shared.config.schedule.stats_interval
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.refresh.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn refresh_stats(shared: &Shared, pool: &PgPool, state_table_ready: &mut bool) -> bool {
    let mut conn = match acquire_for_health(shared, pool).await {
        Ok(c) => c,
        Err(e) => {
            if shared.db_up.load(Ordering::Relaxed) {
                warn!("statistics: {e}");
            }
            shared.set_db_up(false);
            return false;
        }
    };
    let now = Utc::now();
    for table in &shared.config.tables {
        let label = table.label();
        match catalog::read_table(&mut conn, table).await {
            Ok(snap) => {
                shared
                    .metrics
                    .set_table(&label, TableGauges::from_snapshot(table, &snap, now));
                let coverage = health::coverage(&snap, now);
                let json = serde_json::json!({
                    "table": label,
                    "partitions": health::all_stats(&snap),
                    "future_partitions": coverage.future_partitions,
                    "covered_until": coverage.covered_until,
                    "estimated_rows": snap.rows_estimate(),
                    "read_at": now,
                });
                shared
                    .tables_status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(label, json);
            }
            Err(crate::error::Error::Database(e)) => {
                warn!(table = %label, "statistics: {e}");
                shared.set_db_up(false);
                return false;
            }
            Err(e) => {
                warn!(table = %label, "statistics: {e}");
                shared.metrics.clear_table(&label);
                shared
                    .tables_status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        label.clone(),
                        serde_json::json!({ "table": label, "error": e.to_string() }),
                    );
            }
        }
    }
    // Last successes recorded by any replica, so a restart or a failover keeps them.
    if !*state_table_ready {
        match state::ensure_table(&mut conn).await {
            Ok(()) => *state_table_ready = true,
            Err(e) => warn!("state table partwarden_state: {e}"),
        }
    }
    if *state_table_ready {
        if let Ok(map) = state::last_successes(&mut conn).await {
            for (table, at) in map {
                if shared.config.tables.iter().any(|t| t.label() == table) {
                    shared.metrics.set_last_success(&table, at);
                }
            }
        }
    }
    shared.metrics.publish();
    shared.set_db_up(true);
    true
}

/// A pooled connection, quickly. While the database is down, each attempt is cut after
/// a second and the next one starts afresh: sqlx's own retries back off to
/// acquire_timeout/5 apart, which would delay readiness by seconds after the database
/// returns.
async fn acquire_for_health(
    shared: &Shared,
    pool: &PgPool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, String> {
    if shared.db_up.load(Ordering::Relaxed) {
        return pool.acquire().await.map_err(|e| e.to_string());
    }
    match tokio::time::timeout(Duration::from_secs(1), pool.acquire()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no connection within 1s".into()),
    }
}

/// Readiness between statistics refreshes: a `SELECT 1` every 2 s, so `/readyz` follows
/// the database within seconds whatever `stats_interval` is.
async fn heartbeat_loop(shared: Arc<Shared>, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        if !shared.db_up.load(Ordering::Relaxed) {
            continue; // the statistics loop polls every second while it is down
        }
        let ok = tokio::time::timeout(Duration::from_secs(2), async {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await
        })
        .await;
        if !matches!(ok, Ok(Ok(_))) {
            shared.set_db_up(false);
            shared.refresh.notify_one();
        }
    }
}

/// The one task that runs maintenance, so runs never overlap.
async fn maintenance_worker(
    shared: Arc<Shared>,
    pool: PgPool,
    mut triggers: mpsc::Receiver<&'static str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lock: Option<MaintenanceLock> = None;
    let mut pending: Option<&'static str> = Some("start");
    let mut failures: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        // Leadership: every few seconds check that the lock's session is alive, or try to
        // take the lock (at once when a run is due).
        let due = ticks % 5 == 0 || (lock.is_none() && pending.is_some());
        if due && shared.db_up.load(Ordering::Relaxed) {
            let lost = match lock.as_mut() {
                Some(l) => !l.alive().await,
                None => false,
            };
            if lost {
                warn!("lost the maintenance lock's connection");
                lock = None;
            } else if lock.is_none() {
                match MaintenanceLock::try_acquire(&pool).await {
                    Ok(l) => lock = l,
                    Err(e) => warn!("maintenance lock: {e}"),
                }
            }
        }
        shared.set_leader(lock.is_some());
        if retry_at.is_some_and(|t| Instant::now() >= t) {
            retry_at = None;
            pending.get_or_insert("retry");
        }
        if let (Some(reason), true) = (pending, lock.is_some()) {
            if shared.db_up.load(Ordering::Relaxed) {
                pending = None;
                let held = lock.take().expect("checked");
                let (ok, back) = one_run(&shared, &pool, held, reason).await;
                lock = back;
                shared.set_leader(lock.is_some());
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                if ok {
                    failures = 0;
                } else {
                    failures += 1;
                    // 1 min doubling, jittered, the wait under 1 h.
                    let delay = crate::backoff::nth_delay(
                        Duration::from_secs(60),
                        Duration::from_secs(30 * 60),
                        failures,
                    );
                    warn!("maintenance will be retried in {}s", delay.as_secs());
                    retry_at = Some(Instant::now() + delay);
                }
                shared.refresh.notify_one();
            }
        }
        tokio::select! {
            t = triggers.recv() => match t {
                Some(reason) => { pending = Some(reason); }
                None => break,
            },
            _ = tick.tick() => { ticks += 1; }
            _ = shutdown.changed() => break,
        }
    }
    if let Some(l) = lock {
        let _ = l.release().await;
    }
    shared.set_leader(false);
}

/// One maintenance run, supervised: it runs in a task of its own that owns the lock's
/// connection. If it panics, that is a failed run like any other (counted, retried with
/// backoff), the lock's connection is dropped with the task — the server releases the
/// advisory lock, so this replica stops claiming leadership until it takes the lock
/// again — and the worker goes on. Returns whether the run succeeded, and the lock when
/// it is still held.
async fn one_run(
    shared: &Arc<Shared>,
    pool: &PgPool,
    lock: MaintenanceLock,
    reason: &'static str,
) -> (bool, Option<MaintenanceLock>) {
    shared.running.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let task = tokio::spawn(run_and_record(shared.clone(), pool.clone(), lock, reason));
    *shared.current_run.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    let joined = task.await;
    shared
        .current_run
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let (ok, lock) = match joined {
        Ok((ok, lock)) => (ok, Some(lock)),
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
            for t in &shared.config.tables {
                shared.metrics.count_run(&t.label(), "failure");
            }
            (false, None)
        }
    };
    shared
        .metrics
        .observe_run_duration(started.elapsed().as_secs_f64());
    shared.running.store(false, Ordering::Relaxed);
    (ok, lock)
}

async fn run_and_record(
    shared: Arc<Shared>,
    pool: PgPool,
    mut lock: MaintenanceLock,
    reason: &'static str,
) -> (bool, MaintenanceLock) {
    let opts = RunOptions {
        now: None,
        dry_run: false,
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
                let success = t.succeeded();
                all_ok &= success;
                shared
                    .metrics
                    .count_run(&t.table, if success { "success" } else { "failure" });
                if success {
                    shared.metrics.set_last_success(&t.table, t.started_at);
                }
                let json = serde_json::to_value(t).unwrap_or_default();
                if let Err(e) =
                    state::record_run(lock.conn(), &t.table, success, t.started_at, &json).await
                {
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
                shared
                    .last_runs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(t.table.clone(), t.clone());
            }
            all_ok
        }
        Err(e) => {
            warn!("maintenance failed: {e}");
            for t in &shared.config.tables {
                shared.metrics.count_run(&t.label(), "failure");
            }
            false
        }
    };
    (ok, lock)
}

/// The default probe: one tenant's events of the last 7 days, aggregated — what a
/// dashboard does, and what partition pruning and the (tenant, time) index must keep fast.
fn default_probe_sql(table: &crate::config::TableConfig) -> String {
    format!(
        "SELECT count(*), count(DISTINCT event_name) FROM {} WHERE tenant_id = $1::uuid AND {} >= now() - interval '7 days'",
        table.qualified_name(),
        table.column.quoted()
    )
}

async fn probe_loop(shared: Arc<Shared>, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    let cfg = shared.config.probe.clone();
    let tenant = cfg
        .tenant_id
        .clone()
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = shutdown.changed() => return,
        }
        if shared.running.load(Ordering::Relaxed) || !shared.db_up.load(Ordering::Relaxed) {
            continue;
        }
        let tables: Vec<_> = match &cfg.query {
            Some(_) => shared.config.tables.iter().take(1).collect(),
            None => shared.config.tables.iter().collect(),
        };
        for table in tables {
            let sql = cfg
                .query
                .clone()
                .unwrap_or_else(|| default_probe_sql(table));
            let started = Instant::now();
            let result: Result<(), sqlx::Error> = async {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
                sqlx::query("SELECT set_config('statement_timeout', $1, true), set_config('app.current_tenant_id', $2, true)")
                    .bind(db::pg_millis(cfg.statement_timeout))
                    .bind(&tenant)
                    .execute(&mut *tx)
                    .await?;
                let q = sqlx::query(&sql);
                let q = if cfg.query.is_none() { q.bind(&tenant) } else { q };
                q.fetch_all(&mut *tx).await?;
                tx.rollback().await?;
                Ok(())
            }
            .await;
            let secs = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => shared.metrics.observe_probe(&table.label(), secs),
                Err(e) => {
                    // A timeout is a very slow query: record it at the timeout.
                    warn!(table = %table.label(), "probe query: {e}");
                    if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("57014") {
                        shared.metrics.observe_probe(&table.label(), secs);
                    }
                }
            }
        }
    }
}
