//! Readiness between statistics refreshes: a `SELECT 1` every 2 s, so `/readyz` follows
//! the database within seconds whatever `stats_interval` is.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use super::shared::Shared;

pub(super) async fn heartbeat_loop(
    shared: Arc<Shared>,
    pool: PgPool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        if !shared.db_up() {
            continue; // the statistics loop polls every second while it is down
        }
        let ok = tokio::time::timeout(Duration::from_secs(2), async {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await
        })
        .await;
        let failed = match ok {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => format!("heartbeat: {e}"),
            Err(_) => "heartbeat: no answer to SELECT 1 within 2s".to_string(),
        };
        // The statistics loop takes over from here, polling every second; its direct
        // connection says why the database cannot be reached.
        shared.set_db_down(failed);
        shared.refresh.notify_one();
    }
}
