//! What the page shows, read from the JSON documents of `/status` and `status --json`.
//!
//! The page is read from those documents rather than from the library's types so that it
//! shows exactly what `/status` says, and so that it reads them tolerantly: a key that is
//! missing or `null` is shown as unknown, never as 0 (a never-analyzed partition's row
//! count is unknown, whichever way the document says so).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One page: a header and a block per table.
#[derive(Debug, Clone, PartialEq)]
pub struct PageDoc {
    pub origin: Origin,
    /// The instant the page is drawn for: the "now" marker.
    pub now: DateTime<Utc>,
    pub tables: Vec<PageTable>,
}

/// Who drew the page, and what only that one knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The daemon's `/`: its view of the database and of leadership.
    Daemon {
        database_up: bool,
        database_error: Option<String>,
        unreachable_since: Option<DateTime<Utc>>,
        leader: bool,
        maintenance_running: bool,
    },
    /// `partwarden status --html`: it read the database just now.
    Cli,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageTable {
    /// `schema.name`.
    pub label: String,
    /// Why the table's statistics could not be read.
    pub error: Option<String>,
    /// `None` until the table has been read once.
    pub read_at: Option<DateTime<Utc>>,
    pub interval: Option<String>,
    pub premake: Option<u64>,
    pub retention: Option<String>,
    pub retention_cutoff: Option<DateTime<Utc>>,
    pub covered_until: Option<DateTime<Utc>>,
    /// Range partitions by lower bound, and the default partition (wherever it is listed).
    pub partitions: Vec<PagePartition>,
    pub default_rows: DefaultRows,
    pub actions: Actions,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultRows {
    /// The table has no default partition.
    NoDefault,
    /// `None`: not counted yet (never analyzed).
    Rows(Option<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagePartition {
    pub name: String,
    pub schema: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `None`: unknown (never analyzed).
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub size_pretty: String,
    pub is_default: bool,
    pub detach_pending: bool,
    pub indexes_expected: u64,
    pub indexes_valid: u64,
    pub indexes_invalid: u64,
    pub indexes_building: u64,
    pub rls_ok: bool,
}

/// The actions section of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Actions {
    /// The daemon has not run maintenance on the table since it started.
    NoRunYet,
    /// The daemon's last run on the table.
    LastRun {
        started_at: Option<DateTime<Utc>>,
        seconds: Option<f64>,
        /// The run failed before or outside its actions.
        error: Option<String>,
        rows: Vec<ActionRow>,
        /// The plan's notes: what needs no action, or what partwarden will not do.
        notes: Vec<String>,
    },
    /// What maintenance would do now (the CLI keeps no record of the daemon's runs).
    Pending {
        rows: Vec<ActionRow>,
        notes: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub kind: String,
    pub partition: String,
    /// done, failed, skipped; pending for a planned action.
    pub status: String,
    /// What was done or the error; for a planned action, why it is planned.
    pub detail: String,
}

impl PageDoc {
    /// The daemon's page from its `/status` document: a block per configured table (in the
    /// configuration's order), then any other table the document names.
    pub fn from_daemon_status(status: &Value, configured: &[String], now: DateTime<Utc>) -> Self {
        let database = &status["database"];
        let origin = Origin::Daemon {
            database_up: database["up"]
                .as_bool()
                .or_else(|| status["database_up"].as_bool())
                .unwrap_or(false),
            database_error: text(&database["error"]),
            unreachable_since: instant(&database["unreachable_since"]),
            leader: status["leader"].as_bool().unwrap_or(false),
            maintenance_running: status["maintenance_running"].as_bool().unwrap_or(false),
        };
        let mut labels: Vec<String> = configured.to_vec();
        for map in [&status["tables"], &status["last_runs"]] {
            for key in map.as_object().into_iter().flat_map(|m| m.keys()) {
                if !labels.contains(key) {
                    labels.push(key.clone());
                }
            }
        }
        let tables = labels
            .iter()
            .map(|label| {
                let run = &status["last_runs"][label.as_str()];
                let actions = if run.is_object() {
                    Actions::from_last_run(run)
                } else {
                    Actions::NoRunYet
                };
                PageTable::from_status_entry(label, &status["tables"][label.as_str()], actions)
            })
            .collect();
        PageDoc {
            origin,
            now,
            tables,
        }
    }
}

impl PageTable {
    /// A table from its entry in `/status`'s `tables` or `status --json`'s `tables`
    /// (`Null` when it has not been read yet).
    pub fn from_status_entry(label: &str, entry: &Value, actions: Actions) -> Self {
        let partitions: Vec<PagePartition> = entry["partitions"]
            .as_array()
            .map(|a| a.iter().map(PagePartition::from_json).collect())
            .unwrap_or_default();
        let default_rows = match partitions.iter().find(|p| p.is_default) {
            None => DefaultRows::NoDefault,
            // A count the partition's own entry calls unknown stays unknown.
            Some(d) => DefaultRows::Rows(
                d.rows
                    .and_then(|r| count(&entry["default_partition_rows"]).or(Some(r))),
            ),
        };
        PageTable {
            label: text(&entry["table"]).unwrap_or_else(|| label.to_string()),
            error: text(&entry["error"]),
            read_at: instant(&entry["read_at"]),
            interval: text(&entry["interval"]),
            premake: entry["premake"].as_u64(),
            retention: text(&entry["retention"]),
            retention_cutoff: instant(&entry["retention_cutoff"]),
            covered_until: instant(&entry["covered_until"]),
            partitions,
            default_rows,
            actions,
        }
    }
}

impl PagePartition {
    fn from_json(p: &Value) -> Self {
        let rows = if p["rows_known"].as_bool() == Some(false) {
            None
        } else {
            count(&p["row_count"])
        };
        PagePartition {
            name: text(&p["partition_name"]).unwrap_or_default(),
            schema: text(&p["schema"]).unwrap_or_default(),
            from: instant(&p["range_start"]),
            to: instant(&p["range_end"]),
            rows,
            bytes: p["size_bytes"].as_i64(),
            size_pretty: text(&p["size_pretty"]).unwrap_or_default(),
            is_default: p["is_default"].as_bool().unwrap_or(false),
            detach_pending: p["detach_pending"].as_bool().unwrap_or(false),
            indexes_expected: p["indexes_expected"].as_u64().unwrap_or(0),
            indexes_valid: p["indexes_valid"].as_u64().unwrap_or(0),
            indexes_invalid: p["indexes_invalid"].as_u64().unwrap_or(0),
            indexes_building: p["indexes_building"].as_u64().unwrap_or(0),
            rls_ok: p["rls_ok"].as_bool().unwrap_or(true),
        }
    }

    /// Range partitions whose interval contains `now`.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.from.is_some_and(|f| f <= now) && self.to.is_some_and(|t| now < t)
    }
}

impl Actions {
    /// From one of `/status`'s `last_runs`: a `TableRun`.
    pub fn from_last_run(run: &Value) -> Self {
        Actions::LastRun {
            started_at: instant(&run["started_at"]),
            seconds: run["seconds"].as_f64(),
            error: text(&run["error"]),
            rows: action_rows(&run["report"]["outcomes"], None, "detail"),
            notes: texts(&run["report"]["plan"]["notes"]),
        }
    }

    /// From `status --json`'s `pending_actions` (planned actions).
    pub fn from_pending(entry: &Value) -> Self {
        Actions::Pending {
            rows: action_rows(&entry["pending_actions"], Some("pending"), "reason"),
            notes: texts(&entry["notes"]),
        }
    }
}

/// Outcomes (their own status) or planned actions (`status` given); the detail is the
/// `detail` key's text.
fn action_rows(list: &Value, status: Option<&str>, detail: &str) -> Vec<ActionRow> {
    let row = |o: &Value| ActionRow {
        kind: text(&o["kind"]).unwrap_or_default(),
        partition: text(&o["partition"]).unwrap_or_default(),
        status: status.map_or_else(|| text(&o["status"]).unwrap_or_default(), String::from),
        detail: text(&o[detail]).unwrap_or_default(),
    };
    list.as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default()
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
}

/// A row count: `null`, a missing key or a negative number (PostgreSQL's reltuples of a
/// never-analyzed table is -1) is unknown.
fn count(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f.round() as i64))
        .filter(|n| *n >= 0)
}
