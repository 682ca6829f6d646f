//! The state the daemon's tasks share, and what HTTP serves from it: the endpoints read
//! only this memory, so they answer whatever happens to the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::packed::PackedJson;
use crate::apply::StopFlag;
use crate::backoff::nth_delay;
use crate::config::Config;
use crate::engine::manager::TableRun;
use crate::telemetry::http::Endpoints;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::page;

/// State shared by the tasks and served over HTTP.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) metrics: Metrics,
    pub(super) db_up: AtomicBool,
    /// Why the database is unreachable, while it is.
    pub(super) outage: Mutex<Outage>,
    pub(super) leader: AtomicBool,
    pub(super) running: AtomicBool,
    pub(super) stop: StopFlag,
    pub(super) last_runs: Mutex<BTreeMap<String, TableRun>>,
    /// Each table's `/status` entry, packed: at 30,000 partitions they are megabytes.
    pub(super) tables_status: Mutex<BTreeMap<String, PackedJson>>,
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
            outage: Mutex::new(Outage::default()),
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

    pub(super) fn set_db_up(&self) {
        *locked(&self.outage) = Outage::default();
        if !self.db_up.swap(true, Ordering::Relaxed) {
            info!("database reachable");
        }
        self.metrics.set_database_up(true);
    }

    /// The database did not answer, for `reason` (the server's or the network's words,
    /// never the password).
    pub(super) fn set_db_down(&self, reason: String) {
        self.record_down(Down::Unreachable, reason);
    }

    /// The server answered, but runs a version partwarden does not support: not ready,
    /// and nothing is maintained, until it is upgraded (or the URL changed).
    pub(super) fn set_db_unsupported(&self, reason: String) {
        self.record_down(Down::Unsupported, reason);
    }

    fn record_down(&self, down: Down, reason: String) {
        self.db_up.store(false, Ordering::Relaxed);
        self.metrics.set_database_up(false);
        let mut outage = locked(&self.outage);
        outage.down = down;
        let what = down.word();
        match outage.record(&reason, Instant::now(), Utc::now()) {
            Some(Logged::First) => warn!("database {what}: {reason}"),
            Some(Logged::Again { for_secs }) => {
                warn!("database still {what} ({for_secs}s): {reason}")
            }
            None => {}
        }
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
            return Ok(());
        }
        let outage = locked(&self.outage);
        let what = outage.down.word();
        match &outage.reason {
            Some(reason) => Err(format!("database {what}: {reason}")),
            None => Err(format!("database {what}")),
        }
    }

    fn status_json(&self) -> String {
        serde_json::to_string_pretty(&self.status_doc()).unwrap_or_else(|_| "{}".into())
    }

    fn status_page(&self) -> String {
        let configured: Vec<String> = self.config.tables.iter().map(|t| t.label()).collect();
        page::render(&page::PageDoc::from_daemon_status(
            &self.status_doc(),
            &configured,
            Utc::now(),
        ))
    }
}

impl Shared {
    /// `/status`, which the page is drawn from too: the two agree by construction.
    fn status_doc(&self) -> serde_json::Value {
        let runs = locked(&self.last_runs).clone();
        let tables: BTreeMap<String, serde_json::Value> = {
            let packed = locked(&self.tables_status);
            packed
                .iter()
                .map(|(k, v)| {
                    let entry = v.unpack().unwrap_or_else(|e| {
                        serde_json::json!({ "table": k, "error": format!("status entry unreadable: {e}") })
                    });
                    (k.clone(), entry)
                })
                .collect()
        };
        let up = self.db_up();
        let (error, since) = {
            let o = locked(&self.outage);
            (o.reason.clone(), o.since)
        };
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "database_up": up,
            "database": { "up": up, "error": error, "unreachable_since": since },
            "leader": self.leader.load(Ordering::Relaxed),
            "maintenance_running": self.running.load(Ordering::Relaxed),
            "last_runs": runs,
            "tables": tables,
        })
    }
}

/// The first repeat of an unchanged reason is logged after 5–10 s, then at doubling
/// intervals up to 5–10 min: a daemon left pointing at a wrong address says why within
/// seconds without writing a line every second for days.
const LOG_FIRST: Duration = Duration::from_secs(5);
const LOG_CAP: Duration = Duration::from_secs(5 * 60);

/// Why the database cannot be used: it does not answer, or it runs a PostgreSQL older
/// than partwarden supports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Down {
    #[default]
    Unreachable,
    Unsupported,
}

impl Down {
    fn word(self) -> &'static str {
        match self {
            Down::Unreachable => "unreachable",
            Down::Unsupported => "unsupported",
        }
    }
}

/// Why the database cannot be reached, and when that was last logged.
#[derive(Debug, Default)]
pub(super) struct Outage {
    down: Down,
    reason: Option<String>,
    /// When the first reason of this outage was recorded.
    since: Option<DateTime<Utc>>,
    /// How often the current reason was logged again.
    repeats: u32,
    next_log: Option<Instant>,
}

/// What [`Outage::record`] decided to log.
#[derive(Debug, PartialEq)]
enum Logged {
    /// A new reason (the first, or a different one).
    First,
    /// The same reason, whose backoff is up.
    Again { for_secs: i64 },
}

impl Outage {
    /// Records one failed attempt; says whether (and how) to log it.
    fn record(&mut self, reason: &str, now: Instant, wall: DateTime<Utc>) -> Option<Logged> {
        let since = *self.since.get_or_insert(wall);
        if self.reason.as_deref() != Some(reason) {
            self.reason = Some(reason.to_string());
            self.repeats = 0;
            self.next_log = Some(now + nth_delay(LOG_FIRST, LOG_CAP, 1));
            return Some(Logged::First);
        }
        if self.next_log.is_some_and(|t| now < t) {
            return None;
        }
        self.repeats += 1;
        self.next_log = Some(now + nth_delay(LOG_FIRST, LOG_CAP, self.repeats + 1));
        Some(Logged::Again {
            for_secs: (wall - since).num_seconds(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_logged_at_once_when_new_or_changed_then_only_with_backoff() {
        let (t0, w0) = (Instant::now(), Utc::now());
        let at = |s: u64| {
            (
                t0 + Duration::from_secs(s),
                w0 + chrono::Duration::seconds(s as i64),
            )
        };
        let mut o = Outage::default();
        let refused = "cannot connect to 127.0.0.1:1: Connection refused";
        let (t, w) = at(0);
        assert_eq!(o.record(refused, t, w), Some(Logged::First));
        // Every second for the next 4 s: within the first backoff (5–10 s).
        for s in 1..5 {
            let (t, w) = at(s);
            assert_eq!(o.record(refused, t, w), None, "second {s}");
        }
        let (t, w) = at(10);
        assert_eq!(
            o.record(refused, t, w),
            Some(Logged::Again { for_secs: 10 })
        );
        // The second repeat waits 10–20 s.
        let (t, w) = at(19);
        assert_eq!(o.record(refused, t, w), None);
        // A different reason is news: logged at once, and its backoff starts over.
        let (t, w) = at(20);
        assert_eq!(o.record("auth failed", t, w), Some(Logged::First));
        let (t, w) = at(21);
        assert_eq!(o.record("auth failed", t, w), None);
        assert_eq!(o.since, Some(w0), "the outage began at the first reason");
    }
}
