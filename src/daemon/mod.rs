//! `partwarden run`: the long-running sidecar.
//!
//! Tasks, all in one process:
//! * HTTP (`/`, `/metrics`, `/healthz`, `/readyz`, `/status`) from memory (`shared`) — up
//!   before, and whatever happens to, the database;
//! * statistics (`stats`): a catalog snapshot per table refreshes the gauges, with a
//!   `heartbeat` in between so readiness follows the database;
//! * the maintenance `worker`: the one task that runs maintenance, and holds leadership —
//!   exactly one replica maintains a database; the others only report;
//! * triggers (`schedule`): the cron schedule, and SIGHUP to run maintenance now;
//! * the `probe` (optional): a read-only query timed into a histogram;
//! * SIGTERM/SIGINT: stop between actions, give the action under way a few seconds, exit 0.

mod heartbeat;

mod packed;
mod probe;
mod schedule;
mod shared;
mod stats;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::engine::db;
pub use crate::memory::{use_one_allocator_arena, BulkWork};
use crate::telemetry::http::{self, Endpoints};
use shared::{locked, Shared};

/// How long an in-flight action gets to finish after SIGTERM before it is abandoned
/// (its connection closed: the server rolls its transaction back).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (pool, listener) = connect_and_listen(&config).await?;
    let shared = Arc::new(Shared::new(config));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let reporters = Reporters::spawn(listener, &shared, &pool, &shutdown_rx);

    // Cron triggers go through a channel to the one maintenance worker.
    let (trigger_tx, trigger_rx) = mpsc::channel::<&'static str>(1);
    let mut scheduler = schedule::start_cron(&shared, &trigger_tx).await?;
    let mut worker = tokio::spawn(worker::maintenance_worker(
        shared.clone(),
        pool.clone(),
        trigger_rx,
        shutdown_rx.clone(),
    ));
    #[cfg(unix)]
    schedule::spawn_sighup(&shared, &trigger_tx);

    // The worker survives a panicking run (see `worker::one_run`); if it dies anyway the
    // daemon cannot maintain any more, and says so by exiting non-zero (the orchestrator
    // restarts it).
    let worker_died = tokio::select! {
        _ = wait_for_signal() => None,
        r = &mut worker => Some(r),
    };
    if let Some(r) = worker_died {
        let why = worker_end(r);
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
    stop_worker(&shared, worker).await;
    reporters.stop().await;
    pool.close().await;
    info!("stopped");
    Ok(())
}

/// The pool (lazy: the database may be down, HTTP must come up anyway) and the HTTP
/// listener.
async fn connect_and_listen(config: &Config) -> anyhow::Result<(PgPool, TcpListener)> {
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
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
    info!(%listen, url = %url, tables = config.tables.len(), "partwarden starting");
    Ok((pool, listener))
}

/// The tasks that only report: HTTP, statistics, heartbeat, probe.
struct Reporters {
    http: JoinHandle<()>,
    stats: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    probe: Option<JoinHandle<()>>,
}

impl Reporters {
    fn spawn(
        listener: TcpListener,
        shared: &Arc<Shared>,
        pool: &PgPool,
        shutdown: &watch::Receiver<bool>,
    ) -> Reporters {
        let endpoints = shared.clone() as Arc<dyn Endpoints>;
        let http = tokio::spawn(http::serve(listener, endpoints, shutdown.clone()));
        let stats = tokio::spawn(stats::stats_loop(
            shared.clone(),
            pool.clone(),
            shutdown.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat::heartbeat_loop(
            shared.clone(),
            pool.clone(),
            shutdown.clone(),
        ));
        let probe = shared.config.probe.enabled.then(|| {
            tokio::spawn(probe::probe_loop(
                shared.clone(),
                pool.clone(),
                shutdown.clone(),
            ))
        });
        Reporters {
            http,
            stats,
            heartbeat,
            probe,
        }
    }

    /// After maintenance: HTTP gets a second to finish the requests under way; the loops
    /// have nothing worth finishing.
    async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.http).await;
        self.stats.abort();
        self.heartbeat.abort();
        if let Some(p) = self.probe {
            p.abort();
        }
    }
}

fn worker_end(r: Result<(), JoinError>) -> String {
    match r {
        Err(e) if e.is_panic() => "panicked".to_string(),
        Err(e) => e.to_string(),
        Ok(()) => "stopped".to_string(),
    }
}

/// Gives the worker [`SHUTDOWN_GRACE`] to stop between actions, then abandons the run.
async fn stop_worker(shared: &Shared, mut worker: JoinHandle<()>) {
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut worker)
        .await
        .is_err()
    {
        warn!(
            "maintenance did not stop within {SHUTDOWN_GRACE:?}; abandoning it: the server rolls back the \
             transaction it had open, and the next run finishes what earlier steps committed (partwarden_journal)"
        );
        if let Some(run) = locked(&shared.current_run).take() {
            run.abort();
        }
        worker.abort();
    }
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
