//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! Two recorders, rendered one after the other on `/metrics` (from memory; the database
//! is never touched):
//! * the **live** recorder: run counters, the duration and probe histograms (real
//!   histograms, buckets below), the last successful run, `partwarden_database_up`,
//!   `partwarden_leader`, `partwarden_build_info`;
//! * the **catalog snapshot**: every gauge derived from the catalog (partitions, coverage,
//!   sizes, rows, index and RLS health). It is rebuilt from nothing each time a refresh
//!   publishes new snapshots, so the series of a dropped partition disappear at the next
//!   refresh instead of lingering with their last value (the trap of label-keyed
//!   registries, DESIGN.md §11); while the database is down no refresh publishes, so the
//!   last known gauges stay (with `partwarden_database_up 0` beside them). A refresh
//!   stages each table's gauges and publishes them together at its end: a scrape during a
//!   refresh gets the last published text (at 60,000 series a render takes ~0.5 s and tens
//!   of MiB, which every scrape during a refresh paid when each staged table cleared it),
//!   and the render runs outside the lock scrapes take. A scrape costs a copy.
//!
//! Every family is described (HELP) and typed (TYPE), as `promtool check metrics` wants.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::catalog::TableSnapshot;
use crate::config::TableConfig;
use crate::plan::health;

/// Buckets for maintenance runs (seconds): DDL is fast, index builds are not.
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
];
/// Buckets for the date-range probe query (seconds); 0.5 is the alert threshold.
pub const PROBE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const RUN_DURATION: &str = "partwarden_maintenance_duration_seconds";
const PROBE_DURATION: &str = "partwarden_probe_query_duration_seconds";
const EXPORT_DURATION: &str = "partwarden_export_duration_seconds";

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
    /// Sums over the partitions, default included: bytes, and estimated rows.
    pub table_bytes: i64,
    pub table_rows: u64,
    /// (partition, total bytes, estimated rows), default partition included.
    pub per_partition: Vec<(String, i64, u64)>,
    /// (partition, bytes) of each valid vector index.
    pub vector_index_bytes: Vec<(String, i64)>,
    /// Export mode: partitions past retention not yet exported (attached, or detached
    /// and journaled), and how far past the cutoff the oldest one's upper bound is.
    pub export_pending: usize,
    pub export_waiting_seconds: i64,
}

impl TableGauges {
    /// Without the series per partition (`http.per_partition_metrics = false`).
    pub fn per_table_only(mut self) -> TableGauges {
        self.per_partition = Vec::new();
        self.vector_index_bytes = Vec::new();
        self
    }

    pub fn from_snapshot(
        table: &TableConfig,
        snap: &TableSnapshot,
        now: DateTime<Utc>,
    ) -> TableGauges {
        let cov = health::coverage(snap, now);
        let stats = health::all_stats(snap);
        let (missing, invalid) = health::index_health(snap);
        let vector = crate::plan::vector::health(table, snap);
        let (export_pending, export_waiting_seconds) = export_backlog(table, snap, now);
        TableGauges {
            export_pending,
            export_waiting_seconds,
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
            table_bytes: snap.all_partitions().map(|p| p.total_bytes.max(0)).sum(),
            table_rows: snap.rows_estimate(),
            per_partition: stats
                .iter()
                .map(|s| {
                    (
                        s.partition_name.clone(),
                        s.size_bytes,
                        s.row_count.unwrap_or(0) as u64,
                    )
                })
                .collect(),
            vector_index_bytes: vector.sizes,
        }
    }
}

/// Export mode's backlog: the expired partitions still in the database (attached ones
/// past the cutoff, detached ones journaled for export) and the longest any has waited
/// (its upper bound's distance behind the retention cutoff).
fn export_backlog(table: &TableConfig, snap: &TableSnapshot, now: DateTime<Utc>) -> (usize, i64) {
    if table.retention_mode != crate::config::RetentionMode::Export {
        return (0, 0);
    }
    let cutoff = table.retention.cutoff(now);
    let attached = snap
        .partitions
        .iter()
        .filter_map(|p| p.bounds.map(|b| b.to));
    let detached = snap
        .journal
        .iter()
        .filter_map(|e| match (&e.what, &e.relation) {
            (crate::catalog::Journaled::Expire { bounds, .. }, Some(r))
                if !r.attached && e.state != "retired" =>
            {
                Some(bounds.to)
            }
            _ => None,
        });
    let waiting: Vec<i64> = attached
        .chain(detached)
        .filter(|to| *to <= cutoff)
        .map(|to| (cutoff - to).num_seconds())
        .collect();
    (waiting.len(), waiting.iter().copied().max().unwrap_or(0))
}

/// Tables retention detached or archived (journal: retired) whose row-level security
/// differs from the parent's: as exposed as a partition with drift.
fn retired_rls_drift(snap: &TableSnapshot) -> usize {
    let parent = snap.rls();
    snap.journal
        .iter()
        .filter(|e| e.state == "retired")
        .filter_map(|e| e.relation.as_ref())
        .filter(|r| !crate::plan::rls::changes(&parent, &r.rls()).is_empty())
        .count()
}

/// Every family partwarden exports, with its Prometheus type. `scripts/check_deploy.py`
/// checks the dashboard and the alert rules against this list; a unit test checks the
/// list against a rendering with every family present.
// Only the test below and scripts/check_deploy.py (which parses this file) read it.
#[cfg_attr(not(test), allow(dead_code))]
pub const FAMILIES: &[(&str, &str)] = &[
    ("partwarden_build_info", "gauge"),
    ("partwarden_database_up", "gauge"),
    ("partwarden_default_partition_rows", "gauge"),
    ("partwarden_export_bytes_total", "counter"),
    ("partwarden_export_duration_seconds", "histogram"),
    ("partwarden_export_last_success_timestamp_seconds", "gauge"),
    ("partwarden_export_pending_partitions", "gauge"),
    ("partwarden_export_rows_total", "counter"),
    ("partwarden_export_waiting_seconds", "gauge"),
    ("partwarden_exports_total", "counter"),
    ("partwarden_future_coverage_seconds", "gauge"),
    ("partwarden_future_partitions", "gauge"),
    ("partwarden_indexes_invalid", "gauge"),
    ("partwarden_indexes_missing", "gauge"),
    ("partwarden_interval_seconds", "gauge"),
    ("partwarden_leader", "gauge"),
    ("partwarden_maintenance_duration_seconds", "histogram"),
    (
        "partwarden_maintenance_last_success_timestamp_seconds",
        "gauge",
    ),
    ("partwarden_maintenance_runs_total", "counter"),
    ("partwarden_partition_rows", "gauge"),
    ("partwarden_partition_size_bytes", "gauge"),
    ("partwarden_partitions", "gauge"),
    ("partwarden_partitions_rls_drift", "gauge"),
    ("partwarden_probe_query_duration_seconds", "histogram"),
    ("partwarden_statistics_refresh_seconds", "gauge"),
    ("partwarden_table_rows", "gauge"),
    ("partwarden_table_size_bytes", "gauge"),
    ("partwarden_vector_index_size_bytes", "gauge"),
    ("partwarden_vector_indexes_invalid", "gauge"),
    ("partwarden_vector_indexes_missing", "gauge"),
];

/// Run results counted in `partwarden_maintenance_runs_total`.
pub const RESULTS: [&str; 3] = ["success", "failure", "skipped"];

type Get = fn(&TableGauges) -> f64;
/// The per-table gauges: name, HELP, value.
const PER_TABLE: [(&str, &str, Get); 14] = [
    (
        "partwarden_export_pending_partitions",
        "retention_mode export: partitions past retention still in the database (not yet exported, verified and dropped).",
        |g| g.export_pending as f64,
    ),
    (
        "partwarden_export_waiting_seconds",
        "retention_mode export: how far the oldest unexported expired partition's upper bound is behind the retention cutoff (0: none waits).",
        |g| g.export_waiting_seconds as f64,
    ),
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
        "partwarden_table_size_bytes",
        "Total size of the table's partitions with their indexes and TOAST, default partition included.",
        |g| g.table_bytes as f64,
    ),
    (
        "partwarden_table_rows",
        "Estimated rows of the table (sum of its partitions' pg_class.reltuples).",
        |g| g.table_rows as f64,
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

const PARTITION_SIZE: (&str, &str) = (
    "partwarden_partition_size_bytes",
    "Total size of a partition with its indexes and TOAST (pg_total_relation_size; on Citus, summed over its shards).",
);
const PARTITION_ROWS: (&str, &str) = (
    "partwarden_partition_rows",
    "Estimated rows of a partition (pg_class.reltuples; 0 until first analyzed; on Citus, summed over its shards).",
);
const VECTOR_SIZE: (&str, &str) = (
    "partwarden_vector_index_size_bytes",
    "Size of a partition's valid vector index.",
);

/// The process's metrics. Cheap to update, rendered on demand.
pub struct Metrics {
    live: PrometheusRecorder,
    live_handle: PrometheusHandle,
    last_success: Mutex<BTreeMap<String, f64>>,
    tables: Mutex<Catalog>,
}

#[derive(Default)]
struct Catalog {
    /// Staged: what the next publish renders.
    gauges: BTreeMap<String, TableGauges>,
    /// The gauges changed since the last publish.
    staged: bool,
    /// The last publish's rendering; `None` until the first (a scrape then renders).
    rendered: Option<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(env!("CARGO_PKG_VERSION"))
    }
}

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        let live = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RUN_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(PROBE_DURATION.into()), PROBE_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(EXPORT_DURATION.into()), DURATION_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let live_handle = live.handle();
        let m = Metrics {
            live,
            live_handle,
            last_success: Mutex::new(BTreeMap::new()),
            tables: Mutex::new(Catalog::default()),
        };
        m.with_live(|| {
            metrics::describe_gauge!(
                "partwarden_maintenance_last_success_timestamp_seconds",
                "When maintenance last succeeded for the table (Unix time; kept in the database across restarts)."
            );
            metrics::describe_counter!(
                "partwarden_maintenance_runs_total",
                "Maintenance runs per table by result (success, failure, skipped)."
            );
            metrics::describe_histogram!(RUN_DURATION, "Duration of whole maintenance runs.");
            metrics::describe_histogram!(EXPORT_DURATION, "Duration of partition exports (detached table to verified Parquet, dropped).");
            metrics::describe_counter!("partwarden_exports_total", "Partition exports by result (success: verified in the store and dropped; failure: left in the database for the next run).");
            metrics::describe_counter!("partwarden_export_rows_total", "Rows exported to the object store (verified, dropped from the database).");
            metrics::describe_counter!("partwarden_export_bytes_total", "Parquet bytes written to the object store by verified exports.");
            metrics::describe_gauge!("partwarden_export_last_success_timestamp_seconds", "When an export of the table last succeeded (Unix time; this process only).");
            metrics::describe_histogram!(PROBE_DURATION, "Latency of the configured date-range probe query.");
            metrics::describe_gauge!("partwarden_database_up", "1 when the last attempt to reach the database succeeded.");
            metrics::describe_gauge!("partwarden_leader", "1 when this replica leads: it holds the leadership advisory lock and runs the scheduled maintenance.");
            metrics::describe_gauge!("partwarden_build_info", "Always 1; the version is in the label.");
            metrics::describe_gauge!(
                "partwarden_statistics_refresh_seconds",
                "How long the last statistics refresh took (every table's catalog snapshot, sizes included)."
            );
            metrics::gauge!("partwarden_database_up").set(0.0);
            metrics::gauge!("partwarden_leader").set(0.0);
            metrics::gauge!("partwarden_statistics_refresh_seconds").set(0.0);
            metrics::gauge!("partwarden_build_info", "version" => version.to_string()).set(1.0);
        });
        m
    }

    fn with_live<R>(&self, f: impl FnOnce() -> R) -> R {
        metrics::with_local_recorder(&self.live, f)
    }

    fn catalog<R>(&self, f: impl FnOnce(&mut Catalog) -> R) -> R {
        f(&mut self.tables.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Stages one table's catalog-derived gauges for the next [`Metrics::publish`].
    pub fn set_table(&self, table: &str, gauges: TableGauges) {
        self.catalog(|c| {
            c.gauges.insert(table.to_string(), gauges);
            c.staged = true;
        });
    }

    /// Stages forgetting a table's catalog-derived gauges (its snapshot could not be read).
    pub fn clear_table(&self, table: &str) {
        self.catalog(|c| {
            if c.gauges.remove(table).is_some() {
                c.staged = true;
            }
        });
    }

    /// Makes the run counters of `table` exist at 0 (so rate() and alerts see them).
    pub fn register_table(&self, table: &str) {
        self.with_live(|| {
            for r in RESULTS {
                metrics::counter!("partwarden_maintenance_runs_total", "table" => table.to_string(), "result" => r)
                    .increment(0);
            }
        });
    }

    pub fn count_run(&self, table: &str, result: &'static str) {
        self.with_live(|| {
            metrics::counter!("partwarden_maintenance_runs_total", "table" => table.to_string(), "result" => result)
                .increment(1);
        });
    }

    pub fn set_last_success(&self, table: &str, at: DateTime<Utc>) {
        let secs = at.timestamp_millis() as f64 / 1000.0;
        let latest = {
            let mut map = self.last_success.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(table.to_string()).or_insert(secs);
            *e = e.max(secs);
            *e
        };
        self.with_live(|| {
            metrics::gauge!("partwarden_maintenance_last_success_timestamp_seconds", "table" => table.to_string())
                .set(latest);
        });
    }

    /// The exports of one run's outcomes (expiries in export mode).
    pub fn observe_exports(&self, table: &str, outcomes: &[crate::apply::ActionOutcome]) {
        use crate::plan::Action;
        self.with_live(|| {
            for o in outcomes {
                let export_mode = matches!(
                    &o.planned.action,
                    Action::ExpirePartition { mode: crate::config::RetentionMode::Export, .. }
                        | Action::FinishExpiry { mode: crate::config::RetentionMode::Export, .. }
                );
                let t = table.to_string();
                match (&o.export, &o.status) {
                    (Some(e), _) => {
                        metrics::counter!("partwarden_exports_total", "table" => t.clone(), "result" => "success").increment(1);
                        metrics::counter!("partwarden_export_rows_total", "table" => t.clone()).increment(e.rows);
                        metrics::counter!("partwarden_export_bytes_total", "table" => t.clone()).increment(e.parquet_bytes);
                        metrics::histogram!(EXPORT_DURATION, "table" => t.clone()).record(e.seconds);
                        metrics::gauge!("partwarden_export_last_success_timestamp_seconds", "table" => t)
                            .set(Utc::now().timestamp() as f64);
                    }
                    (None, crate::apply::Status::Failed) if export_mode => {
                        metrics::counter!("partwarden_exports_total", "table" => t, "result" => "failure").increment(1);
                    }
                    _ => {}
                }
            }
        });
    }

    pub fn observe_run_duration(&self, seconds: f64) {
        self.with_live(|| metrics::histogram!(RUN_DURATION).record(seconds));
    }

    pub fn observe_probe(&self, table: &str, seconds: f64) {
        self.with_live(|| {
            metrics::histogram!(PROBE_DURATION, "table" => table.to_string()).record(seconds)
        });
    }

    /// The cost of one statistics refresh (every configured table).
    pub fn set_refresh_seconds(&self, seconds: f64) {
        self.with_live(|| metrics::gauge!("partwarden_statistics_refresh_seconds").set(seconds));
    }

    pub fn set_database_up(&self, up: bool) {
        self.with_live(|| metrics::gauge!("partwarden_database_up").set(f64::from(u8::from(up))));
    }

    pub fn set_leader(&self, leader: bool) {
        self.with_live(|| metrics::gauge!("partwarden_leader").set(f64::from(u8::from(leader))));
    }

    /// Renders the staged gauges, which scrapes get from now on (the statistics refresh
    /// calls this at its end, so a scrape never pays for a render).
    pub fn publish(&self) {
        let staged = self.catalog(|c| {
            (c.staged || c.rendered.is_none()).then(|| {
                c.staged = false;
                c.gauges.clone()
            })
        });
        if let Some(gauges) = staged {
            let text = render_catalog(&gauges);
            self.catalog(|c| c.rendered = Some(text));
        }
    }

    /// The Prometheus text exposition (format 0.0.4): the catalog snapshot, then the live
    /// metrics.
    pub fn render(&self) -> String {
        let mut out = self.catalog(|c| {
            c.rendered
                .get_or_insert_with(|| render_catalog(&c.gauges))
                .clone()
        });
        self.live_handle.run_upkeep();
        out.push_str(&self.live_handle.render());
        out
    }
}

/// Exactly the gauges of `tables`, as exposition text, written with the exporter's own
/// formatting functions (HELP, TYPE, label escaping, values) but not through a recorder:
/// a fresh recorder keeps a registry entry per series only to render it once, ~60 MiB for
/// a moment at 61,820 series, at every refresh. A family without series is left out, as
/// the exporter does.
fn render_catalog(tables: &BTreeMap<String, TableGauges>) -> String {
    let mut out = String::new();
    for (name, help, get) in PER_TABLE {
        let series = tables
            .iter()
            .map(|(table, g)| ([table.as_str(), ""], get(g)));
        write_family(&mut out, name, help, series);
    }
    let per_partition = |pick: fn(&(String, i64, u64)) -> f64| {
        tables.iter().flat_map(move |(table, g)| {
            g.per_partition
                .iter()
                .map(move |p| ([table.as_str(), p.0.as_str()], pick(p)))
        })
    };
    let (name, help) = PARTITION_SIZE;
    write_family(&mut out, name, help, per_partition(|p| p.1 as f64));
    let (name, help) = PARTITION_ROWS;
    write_family(&mut out, name, help, per_partition(|p| p.2 as f64));
    let (name, help) = VECTOR_SIZE;
    let vector = tables.iter().flat_map(|(table, g)| {
        g.vector_index_bytes
            .iter()
            .map(move |(p, bytes)| ([table.as_str(), p.as_str()], *bytes as f64))
    });
    write_family(&mut out, name, help, vector);
    out
}

/// One gauge family: its HELP and TYPE lines, then a line per series labelled `table` and,
/// when not empty, `partition`.
fn write_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = ([&'a str; 2], f64)>,
) {
    use metrics_exporter_prometheus::formatting::{
        sanitize_label_value, write_help_line, write_type_line,
    };
    use std::fmt::Write;
    let mut series = series.peekable();
    if series.peek().is_none() {
        return;
    }
    write_help_line(out, name, None, None, help);
    write_type_line(out, name, None, None, "gauge");
    for ([table, partition], value) in series {
        let _ = write!(out, "{name}{{table=\"{}\"", sanitize_label_value(table));
        if !partition.is_empty() {
            let _ = write!(out, ",partition=\"{}\"", sanitize_label_value(partition));
        }
        let _ = writeln!(out, "}} {value}");
    }
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
        m.publish();
        assert!(m.render().contains(
            "partwarden_partition_size_bytes{table=\"public.t\",partition=\"p_2026_01\"} 10"
        ));
        g.per_partition.remove(0);
        m.set_table("public.t", g.clone());
        m.publish();
        let out = m.render();
        assert!(!out.contains("p_2026_01"), "{out}");
        g.per_partition = vec![("a\"b\\c\nd".into(), 1, 1)];
        m.set_table("public.t", g);
        m.publish();
        assert!(
            m.render().contains("partition=\"a\\\"b\\\\c\\nd\""),
            "{}",
            m.render()
        );
    }

    /// The catalog text is line for line what a recorder of the exporter renders for the
    /// same gauges (order aside): HELP, TYPE, escaping, values.
    #[test]
    fn the_catalog_text_is_what_the_exporter_renders() {
        let mut tables = BTreeMap::new();
        for (t, parts) in [("public.t", 3), ("we\"ird\\s.n\nx", 1)] {
            tables.insert(
                t.to_string(),
                TableGauges {
                    partitions: parts,
                    future_coverage_seconds: -5,
                    table_bytes: 1 << 40,
                    per_partition: (0..parts)
                        .map(|i| (format!("p\"{i}"), i as i64 * 8192, i as u64))
                        .collect(),
                    vector_index_bytes: vec![("p0".into(), 123)],
                    ..Default::default()
                },
            );
        }
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for (name, help, _) in PER_TABLE {
                metrics::describe_gauge!(name, help);
            }
            for (name, help) in [PARTITION_SIZE, PARTITION_ROWS, VECTOR_SIZE] {
                metrics::describe_gauge!(name, help);
            }
            for (table, g) in &tables {
                for (name, _, get) in PER_TABLE {
                    metrics::gauge!(name, "table" => table.clone()).set(get(g));
                }
                for (p, bytes, rows) in &g.per_partition {
                    let labels = [("table", table.clone()), ("partition", p.clone())];
                    metrics::gauge!(PARTITION_SIZE.0, &labels).set(*bytes as f64);
                    metrics::gauge!(PARTITION_ROWS.0, &labels).set(*rows as f64);
                }
                for (p, bytes) in &g.vector_index_bytes {
                    let labels = [("table", table.clone()), ("partition", p.clone())];
                    metrics::gauge!(VECTOR_SIZE.0, &labels).set(*bytes as f64);
                }
            }
        });
        let sorted = |text: &str| {
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            lines.sort();
            lines
        };
        let ours = render_catalog(&tables);
        assert_eq!(sorted(&ours), sorted(&handle.render()), "{ours}");
        assert!(ours.contains("partition=\"p\\\"2\"} 16384\n"), "{ours}");
        assert_eq!(render_catalog(&BTreeMap::new()), "");
    }

    /// A scrape during a refresh gets the last refresh's gauges, whole: not some tables
    /// from each, and no render of its own.
    #[test]
    fn a_scrape_during_a_refresh_gets_the_last_published_gauges() {
        let m = Metrics::new("0.0.0-test");
        let table = |partitions| TableGauges {
            partitions,
            ..Default::default()
        };
        m.set_table("public.a", table(1));
        m.set_table("public.b", table(1));
        m.publish();
        let published = m.render();
        // The next refresh has staged one table, and forgotten the other.
        m.set_table("public.a", table(2));
        m.clear_table("public.b");
        let during = m.render();
        assert!(
            during.contains("partwarden_partitions{table=\"public.a\"} 1"),
            "{during}"
        );
        assert!(
            during.contains("partwarden_partitions{table=\"public.b\"} 1"),
            "{during}"
        );
        assert_eq!(
            during
                .lines()
                .filter(|l| l.starts_with("partwarden_partitions{"))
                .count(),
            published
                .lines()
                .filter(|l| l.starts_with("partwarden_partitions{"))
                .count()
        );
        m.publish();
        let after = m.render();
        assert!(
            after.contains("partwarden_partitions{table=\"public.a\"} 2"),
            "{after}"
        );
        assert!(!after.contains("public.b"), "{after}");
    }

    /// A table `public.t` with no partitions and the journal `journal`.
    fn snapshot_of(journal: Vec<crate::catalog::JournalEntry>) -> crate::catalog::TableSnapshot {
        crate::catalog::TableSnapshot {
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
            journal,
            default_census: None,
            citus: None,
        }
    }

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
        let mut snap = snapshot_of(vec![retired(true)]);
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
    fn expired_partitions_left_in_the_database_count_as_waiting_for_export() {
        use crate::catalog::{JournalEntry, JournalRelation, Journaled};
        let cfg = crate::config::Config::from_sources(
            Some("[[tables]]\nname = \"t\"\nretention = \"3 months\"\nretention_mode = \"export\"\n[export]\nurl = \"file:///x\"\n"),
            &[],
        )
        .unwrap();
        let table = &cfg.tables[0];
        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        let cutoff = table.retention.cutoff(now);
        let month = |s: &str| table.interval.bounds_containing(s.parse().unwrap());
        let detached = JournalEntry {
            what: Journaled::Expire {
                partition: "t_2026_04".into(),
                oid: 1,
                bounds: month("2026-04-10T00:00:00Z"),
                mode: crate::config::RetentionMode::Export,
            },
            state: "exporting".into(),
            started_at: now,
            relation: Some(JournalRelation {
                schema: "public".into(),
                name: "t_2026_04".into(),
                attached: false,
                detach_pending: false,
                rls_enabled: true,
                rls_forced: true,
                policies: None,
            }),
        };
        let mut snap = snapshot_of(vec![]);
        let g = TableGauges::from_snapshot(table, &snap, now);
        assert_eq!((g.export_pending, g.export_waiting_seconds), (0, 0));
        snap.journal = vec![detached];
        let g = TableGauges::from_snapshot(table, &snap, now);
        let behind = (cutoff - month("2026-04-10T00:00:00Z").to).num_seconds();
        assert!(behind > 86_400 * 30, "{behind}");
        assert_eq!((g.export_pending, g.export_waiting_seconds), (1, behind));
    }

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::new("0.0.0-test");
        for v in [0.004, 0.3, 3.0] {
            m.observe_probe("t", v);
        }
        let out = m.render();
        assert!(
            out.contains(
                "partwarden_probe_query_duration_seconds_bucket{table=\"t\",le=\"0.005\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "partwarden_probe_query_duration_seconds_bucket{table=\"t\",le=\"0.5\"} 2"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "partwarden_probe_query_duration_seconds_bucket{table=\"t\",le=\"+Inf\"} 3"
            ),
            "{out}"
        );
        assert!(
            out.contains("partwarden_probe_query_duration_seconds_count{table=\"t\"} 3"),
            "{out}"
        );
    }

    #[test]
    fn every_family_has_help_and_type() {
        let m = Metrics::default();
        m.register_table("public.t");
        m.set_table(
            "public.t",
            TableGauges {
                per_partition: vec![("p".into(), 1, 1)],
                vector_index_bytes: vec![("p".into(), 1)],
                ..Default::default()
            },
        );
        m.set_last_success("public.t", Utc::now());
        m.observe_run_duration(1.0);
        m.observe_probe("public.t", 0.1);
        let t0 = Utc::now();
        m.observe_exports(
            "public.t",
            &[crate::apply::ActionOutcome {
                planned: crate::plan::PlannedAction {
                    action: crate::plan::Action::ExpirePartition {
                        partition: "p".into(),
                        bounds: crate::calendar::PartitionBounds { from: t0, to: t0 },
                        mode: crate::config::RetentionMode::Export,
                        rows: None,
                        bytes: 0,
                    },
                    reason: String::new(),
                },
                status: crate::apply::Status::Done,
                detail: String::new(),
                attempts: 1,
                seconds: 1.0,
                export: Some(crate::apply::ExportSummary {
                    run_id: "r".into(),
                    rows: 10,
                    parquet_bytes: 100,
                    source_bytes: 1000,
                    seconds: 1.0,
                    manifest: "file:///m".into(),
                }),
            }],
        );
        let out = m.render();
        let helps = out.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = out.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert!(helps >= 20, "{out}");
        // FAMILIES is exactly what a full rendering has.
        let mut rendered: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        rendered.sort();
        let listed: Vec<(String, String)> = FAMILIES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(rendered, listed);
    }
}
