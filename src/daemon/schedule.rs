//! What asks the maintenance worker for a run besides its own start and retries: the cron
//! schedule (tokio-cron-scheduler, UTC) and SIGHUP (operators, and the end-to-end alert
//! test). Triggers go through a channel of one to the one worker, so runs never overlap:
//! a trigger that arrives while a run is going is counted as skipped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::warn;

use super::shared::Shared;

/// Starts the scheduler with the `schedule.maintenance` job.
pub(super) async fn start_cron(
    shared: &Arc<Shared>,
    triggers: &mpsc::Sender<&'static str>,
) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    let cron = shared.config.schedule.maintenance.clone();
    let shared = shared.clone();
    let tx = triggers.clone();
    let job = Job::new_async_tz(cron.as_str(), Utc, move |_, _| {
        let shared = shared.clone();
        let tx = tx.clone();
        Box::pin(async move {
            if shared.running.load(Ordering::Relaxed) || tx.try_send("cron").is_err() {
                warn!("scheduled maintenance skipped: the previous run is still going");
                shared.count_run_for_all_tables("skipped");
            }
        })
    })
    .context("schedule.maintenance")?;
    scheduler.add(job).await.context("scheduling maintenance")?;
    scheduler.start().await.context("starting the scheduler")?;
    Ok(scheduler)
}

/// SIGHUP: run maintenance now.
#[cfg(unix)]
pub(super) fn spawn_sighup(shared: &Arc<Shared>, triggers: &mpsc::Sender<&'static str>) {
    let tx = triggers.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: maintenance requested");
            if tx.try_send("sighup").is_err() {
                shared.count_run_for_all_tables("skipped");
            }
        }
    });
}
