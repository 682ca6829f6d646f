//! Prometheus metrics, kept in memory and rendered in the text exposition format.
//!
//! Gauges derived from the catalog are replaced wholesale at every refresh, so the series
//! of a dropped partition disappear at the next refresh instead of lingering with their
//! last value (the trap of label-keyed registries, DESIGN.md §11). `/metrics` renders from
//! memory and never touches the database. Every family has HELP and TYPE, as
//! `promtool check metrics` requires.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::catalog::TableSnapshot;
use crate::config::TableConfig;
use crate::status;

/// Buckets for maintenance runs (seconds): DDL is fast, index builds are not.
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
];
/// Buckets for the date-range probe query (seconds); 0.5 is the alert threshold.
pub const PROBE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What one catalog snapshot says, as metric values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableGauges {
    pub partitions: usize,
    pub future_partitions: usize,
    pub future_coverage_seconds: i64,
    pub interval_seconds: i64,
    pub default_partition_rows: u64,
    pub indexes_missing: usize,
    pub indexes_invalid: usize,
    pub rls_drift: usize,
    pub vector_indexes_missing: usize,
    pub vector_indexes_invalid: usize,
    /// (partition, total bytes, estimated rows), default partition included.
    pub per_partition: Vec<(String, i64, u64)>,
    /// (partition, bytes) of each valid vector index.
    pub vector_index_bytes: Vec<(String, i64)>,
}

impl TableGauges {
    pub fn from_snapshot(
        table: &TableConfig,
        snap: &TableSnapshot,
        now: DateTime<Utc>,
    ) -> TableGauges {
        let cov = status::coverage(snap, now);
        let stats = status::all_stats(snap);
        let (missing, invalid) = status::index_health(snap);
        let vector = crate::vector::health(table, snap);
        TableGauges {
            partitions: snap.partitions.len(),
            future_partitions: cov.future_partitions,
            future_coverage_seconds: cov.seconds_ahead,
            interval_seconds: table.interval.nominal_seconds(),
            default_partition_rows: snap
                .default_partition
                .as_ref()
                .map(|d| d.rows())
                .unwrap_or(0),
            indexes_missing: missing,
            indexes_invalid: invalid,
            rls_drift: stats.iter().filter(|s| !s.rls_ok).count() + retired_rls_drift(snap),
            vector_indexes_missing: vector.missing,
            vector_indexes_invalid: vector.invalid,
            per_partition: stats
                .iter()
                .map(|s| (s.partition_name.clone(), s.size_bytes, s.row_count as u64))
                .collect(),
            vector_index_bytes: vector.sizes,
        }
    }
}

/// Tables retention detached or archived (journal: retired) whose row-level security
/// differs from the parent's: as exposed as a partition with drift.
fn retired_rls_drift(snap: &TableSnapshot) -> usize {
    let parent = snap.rls();
    snap.journal
        .iter()
        .filter(|e| e.state == "retired")
        .filter_map(|e| e.relation.as_ref())
        .filter(|r| !crate::rls::changes(&parent, &r.rls()).is_empty())
        .count()
}

#[derive(Debug)]
struct State {
    tables: BTreeMap<String, TableGauges>,
    runs_total: BTreeMap<(String, &'static str), u64>,
    last_success: BTreeMap<String, f64>,
    maintenance_duration: Histogram,
    probe: BTreeMap<String, Histogram>,
    database_up: bool,
    leader: bool,
}

/// The process's metrics. Cheap to update, rendered on demand.
#[derive(Debug)]
pub struct Metrics {
    version: String,
    state: Mutex<State>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(env!("CARGO_PKG_VERSION"))
    }
}

/// Run results counted in `partwarden_maintenance_runs_total`.
pub const RESULTS: [&str; 3] = ["success", "failure", "skipped"];

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        Metrics {
            version: version.to_string(),
            state: Mutex::new(State {
                tables: BTreeMap::new(),
                runs_total: BTreeMap::new(),
                last_success: BTreeMap::new(),
                maintenance_duration: Histogram::new(DURATION_BUCKETS),
                probe: BTreeMap::new(),
                database_up: false,
                leader: false,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Replaces one table's catalog-derived gauges.
    pub fn set_table(&self, table: &str, gauges: TableGauges) {
        self.with(|s| {
            s.tables.insert(table.to_string(), gauges);
        });
    }

    /// Forgets a table's catalog-derived gauges (its snapshot could not be read).
    pub fn clear_table(&self, table: &str) {
        self.with(|s| {
            s.tables.remove(table);
        });
    }

    pub fn table(&self, table: &str) -> Option<TableGauges> {
        self.with(|s| s.tables.get(table).cloned())
    }

    /// Makes the run counters of `table` exist at 0 (so rate() and alerts see them).
    pub fn register_table(&self, table: &str) {
        self.with(|s| {
            for r in RESULTS {
                s.runs_total.entry((table.to_string(), r)).or_insert(0);
            }
        });
    }

    pub fn count_run(&self, table: &str, result: &'static str) {
        self.with(|s| *s.runs_total.entry((table.to_string(), result)).or_insert(0) += 1);
    }

    pub fn runs(&self, table: &str, result: &'static str) -> u64 {
        self.with(|s| {
            s.runs_total
                .get(&(table.to_string(), result))
                .copied()
                .unwrap_or(0)
        })
    }

    pub fn set_last_success(&self, table: &str, at: DateTime<Utc>) {
        let secs = at.timestamp_millis() as f64 / 1000.0;
        self.with(|s| {
            let e = s.last_success.entry(table.to_string()).or_insert(secs);
            *e = e.max(secs);
        });
    }

    pub fn observe_run_duration(&self, seconds: f64) {
        self.with(|s| s.maintenance_duration.observe(seconds));
    }

    pub fn observe_probe(&self, table: &str, seconds: f64) {
        self.with(|s| {
            s.probe
                .entry(table.to_string())
                .or_insert_with(|| Histogram::new(PROBE_BUCKETS))
                .observe(seconds)
        });
    }

    pub fn set_database_up(&self, up: bool) {
        self.with(|s| s.database_up = up);
    }

    pub fn set_leader(&self, leader: bool) {
        self.with(|s| s.leader = leader);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        self.with(|s| render_state(&self.version, s))
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_state(version: &str, s: &State) -> String {
    let mut out = String::with_capacity(4096);
    type Get = fn(&TableGauges) -> f64;
    let per_table: [(&str, &str, Get); 10] = [
        (
            "partwarden_partitions",
            "Range partitions of the table (the default partition is not counted).",
            |g| g.partitions as f64,
        ),
        (
            "partwarden_future_partitions",
            "Partitions whose lower bound is after now.",
            |g| g.future_partitions as f64,
        ),
        (
            "partwarden_future_coverage_seconds",
            "How far ahead of now inserts land in contiguous partitions (0: now has no partition).",
            |g| g.future_coverage_seconds as f64,
        ),
        (
            "partwarden_interval_seconds",
            "Nominal length of one partition interval (month = 28 days), for coverage alerts.",
            |g| g.interval_seconds as f64,
        ),
        (
            "partwarden_default_partition_rows",
            "Estimated rows in the default partition (rows no partition covers).",
            |g| g.default_partition_rows as f64,
        ),
        (
            "partwarden_indexes_missing",
            "Parent indexes missing on partitions.",
            |g| g.indexes_missing as f64,
        ),
        (
            "partwarden_indexes_invalid",
            "Partition indexes left INVALID (failed or cancelled concurrent builds).",
            |g| g.indexes_invalid as f64,
        ),
        (
            "partwarden_partitions_rls_drift",
            "Partitions, and tables retention detached or archived, whose row-level security differs from the parent's.",
            |g| g.rls_drift as f64,
        ),
        (
            "partwarden_vector_indexes_missing",
            "Partitions with enough rows for a vector index but no valid one.",
            |g| g.vector_indexes_missing as f64,
        ),
        (
            "partwarden_vector_indexes_invalid",
            "INVALID vector indexes on partitions.",
            |g| g.vector_indexes_invalid as f64,
        ),
    ];
    for (name, help, get) in per_table {
        family(&mut out, name, "gauge", help);
        for (table, g) in &s.tables {
            let _ = writeln!(out, "{name}{{table=\"{}\"}} {}", esc(table), get(g));
        }
    }
    type PerPartition = fn(&TableGauges) -> Vec<(&str, f64)>;
    let per_partition: [(&str, &str, PerPartition); 3] = [
        (
            "partwarden_partition_size_bytes",
            "Total size of a partition with its indexes and TOAST (pg_total_relation_size).",
            |g| {
                g.per_partition
                    .iter()
                    .map(|(p, bytes, _)| (p.as_str(), *bytes as f64))
                    .collect()
            },
        ),
        (
            "partwarden_partition_rows",
            "Estimated rows of a partition (pg_class.reltuples; 0 until first analyzed).",
            |g| {
                g.per_partition
                    .iter()
                    .map(|(p, _, rows)| (p.as_str(), *rows as f64))
                    .collect()
            },
        ),
        (
            "partwarden_vector_index_size_bytes",
            "Size of a partition's valid vector index.",
            |g| {
                g.vector_index_bytes
                    .iter()
                    .map(|(p, bytes)| (p.as_str(), *bytes as f64))
                    .collect()
            },
        ),
    ];
    for (name, help, get) in per_partition {
        family(&mut out, name, "gauge", help);
        for (table, g) in &s.tables {
            for (p, v) in get(g) {
                let _ = writeln!(
                    out,
                    "{name}{{table=\"{}\",partition=\"{}\"}} {v}",
                    esc(table),
                    esc(p)
                );
            }
        }
    }
    family(&mut out, "partwarden_maintenance_last_success_timestamp_seconds", "gauge", "When maintenance last succeeded for the table (Unix time; kept in the database across restarts).");
    for (table, ts) in &s.last_success {
        let _ = writeln!(
            out,
            "partwarden_maintenance_last_success_timestamp_seconds{{table=\"{}\"}} {ts}",
            esc(table)
        );
    }
    family(
        &mut out,
        "partwarden_maintenance_runs_total",
        "counter",
        "Maintenance runs per table by result (success, failure, skipped).",
    );
    for ((table, result), n) in &s.runs_total {
        let _ = writeln!(
            out,
            "partwarden_maintenance_runs_total{{table=\"{}\",result=\"{result}\"}} {n}",
            esc(table)
        );
    }
    family(
        &mut out,
        "partwarden_maintenance_duration_seconds",
        "histogram",
        "Duration of whole maintenance runs.",
    );
    s.maintenance_duration
        .render(&mut out, "partwarden_maintenance_duration_seconds", "");
    family(
        &mut out,
        "partwarden_probe_query_duration_seconds",
        "histogram",
        "Latency of the configured date-range probe query.",
    );
    for (table, h) in &s.probe {
        h.render(
            &mut out,
            "partwarden_probe_query_duration_seconds",
            &format!("table=\"{}\"", esc(table)),
        );
    }
    family(
        &mut out,
        "partwarden_database_up",
        "gauge",
        "1 when the last attempt to reach the database succeeded.",
    );
    let _ = writeln!(out, "partwarden_database_up {}", u8::from(s.database_up));
    family(
        &mut out,
        "partwarden_leader",
        "gauge",
        "1 when this replica holds the maintenance advisory lock.",
    );
    let _ = writeln!(out, "partwarden_leader {}", u8::from(s.leader));
    family(
        &mut out,
        "partwarden_build_info",
        "gauge",
        "Always 1; the version is in the label.",
    );
    let _ = writeln!(
        out,
        "partwarden_build_info{{version=\"{}\"}} 1",
        esc(version)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_partitions_disappear_and_labels_are_escaped() {
        let m = Metrics::new("0.0.0-test");
        let mut g = TableGauges {
            partitions: 2,
            ..Default::default()
        };
        g.per_partition = vec![("p_2026_01".into(), 10, 1), ("p_2026_02".into(), 20, 2)];
        m.set_table("public.t", g.clone());
        assert!(m.render().contains(
            "partwarden_partition_size_bytes{table=\"public.t\",partition=\"p_2026_01\"} 10"
        ));
        g.per_partition.remove(0);
        m.set_table("public.t", g);
        let out = m.render();
        assert!(!out.contains("p_2026_01"), "{out}");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// A retired table (detached or archived by retention) with RLS drift counts in
    /// `partwarden_partitions_rls_drift` like a partition with drift.
    #[test]
    fn retired_tables_with_drift_count_as_drift() {
        use crate::catalog::{JournalEntry, JournalRelation, Journaled};
        let cfg =
            crate::config::Config::from_sources(Some("[[tables]]\nname = \"t\"\n"), &[]).unwrap();
        let table = &cfg.tables[0];
        let retired = |forced: bool| JournalEntry {
            what: Journaled::Expire {
                partition: "t_2024_01".into(),
                oid: 1,
                bounds: table.interval.bounds_containing(Utc::now()),
                mode: crate::config::RetentionMode::Archive,
            },
            state: "retired".into(),
            started_at: Utc::now(),
            relation: Some(JournalRelation {
                schema: "partwarden_archive".into(),
                name: "t_2024_01".into(),
                attached: false,
                detach_pending: false,
                rls_enabled: true,
                rls_forced: forced,
                policies: None,
            }),
        };
        let mut snap = crate::catalog::TableSnapshot {
            schema: "public".into(),
            name: "t".into(),
            oid: 1,
            key_column: "event_timestamp".into(),
            key_type: "timestamp with time zone".into(),
            columns: vec![],
            rls_enabled: true,
            rls_forced: true,
            policies: vec![],
            parent_indexes: vec![],
            partitions: vec![],
            default_partition: None,
            in_recovery: false,
            journal: vec![retired(true)],
        };
        assert_eq!(
            TableGauges::from_snapshot(table, &snap, Utc::now()).rls_drift,
            0
        );
        snap.journal = vec![retired(false)];
        assert_eq!(
            TableGauges::from_snapshot(table, &snap, Utc::now()).rls_drift,
            1
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(3.0);
        let mut out = String::new();
        h.render(&mut out, "x", "table=\"t\"");
        assert!(out.contains("x_bucket{table=\"t\",le=\"1\"} 1"), "{out}");
        assert!(out.contains("x_bucket{table=\"t\",le=\"2\"} 2"), "{out}");
        assert!(out.contains("x_bucket{table=\"t\",le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count{table=\"t\"} 3"), "{out}");
    }

    #[test]
    fn every_family_has_help_and_type() {
        let m = Metrics::default();
        m.register_table("public.t");
        let out = m.render();
        let helps = out.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = out.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert!(helps >= 20, "{out}");
    }
}
