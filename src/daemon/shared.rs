//! The state the daemon's tasks share, and what HTTP serves from it: the endpoints read
//! only this memory, so they answer whatever happens to the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::apply::StopFlag;
use crate::config::Config;
use crate::engine::manager::TableRun;
use crate::telemetry::http::Endpoints;
use crate::telemetry::metrics::Metrics;

/// State shared by the tasks and served over HTTP.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) metrics: Metrics,
    pub(super) db_up: AtomicBool,
    pub(super) leader: AtomicBool,
    pub(super) running: AtomicBool,
    pub(super) stop: StopFlag,
    pub(super) last_runs: Mutex<BTreeMap<String, TableRun>>,
    pub(super) tables_status: Mutex<BTreeMap<String, serde_json::Value>>,
    /// Wakes the statistics loop before its interval is up.
    pub(super) refresh: Notify,
    /// The maintenance run under way, so shutdown can abandon it after the grace period.
    pub(super) current_run: Mutex<Option<tokio::task::AbortHandle>>,
}

/// A poisoned lock still holds usable data: a panicking run must not take `/status` down
/// with it.
pub(super) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn new(config: Config) -> Shared {
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

    pub(super) fn db_up(&self) -> bool {
        self.db_up.load(Ordering::Relaxed)
    }

    pub(super) fn set_db_up(&self, up: bool) {
        if self.db_up.swap(up, Ordering::Relaxed) != up {
            if up {
                info!("database reachable");
            } else {
                warn!("database unreachable");
            }
        }
        self.metrics.set_database_up(up);
    }

    pub(super) fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::Relaxed) != leader {
            info!(leader, "leadership changed");
        }
        self.metrics.set_leader(leader);
    }

    /// A run that did not get to report per table (skipped, or failed before or outside
    /// the tables) counts against every configured table.
    pub(super) fn count_run_for_all_tables(&self, result: &'static str) {
        for t in &self.config.tables {
            self.metrics.count_run(&t.label(), result);
        }
    }
}

impl Endpoints for Shared {
    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn ready(&self) -> Result<(), String> {
        if self.db_up() {
            Ok(())
        } else {
            Err("database unreachable".into())
        }
    }

    fn status_json(&self) -> String {
        let runs = locked(&self.last_runs).clone();
        let tables = locked(&self.tables_status).clone();
        let doc = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "database_up": self.db_up(),
            "leader": self.leader.load(Ordering::Relaxed),
            "maintenance_running": self.running.load(Ordering::Relaxed),
            "last_runs": runs,
            "tables": tables,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
    }
}
