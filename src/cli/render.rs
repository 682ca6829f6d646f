//! Text output of `maintain` and `status`.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use partwarden::apply::Status;
use partwarden::calendar::sql_literal;
use partwarden::catalog::vector::BuildProgress;
use partwarden::catalog::JournalEntry;
use partwarden::engine::manager::RunReport;
use partwarden::plan::health::{Coverage, PartitionStats};
use partwarden::plan::vector::VectorHealth;
use partwarden::plan::Plan;

pub fn run_report(report: &RunReport) -> String {
    let mut out = String::new();
    for t in &report.tables {
        match (&t.report, &t.error) {
            (_, Some(err)) => {
                let _ = writeln!(out, "{}: FAILED: {err}", t.table);
            }
            (Some(r), None) => {
                if report.dry_run {
                    let _ = write!(out, "{}", r.plan);
                    let _ = writeln!(out, "  (dry run: nothing changed)");
                    continue;
                }
                let _ = writeln!(
                    out,
                    "{}: {} action(s) at {}",
                    t.table,
                    r.outcomes.len(),
                    sql_literal(report.now)
                );
                for o in &r.outcomes {
                    let mark = match o.status {
                        Status::Done => "ok     ",
                        Status::Failed => "FAILED ",
                        Status::Skipped => "skipped",
                    };
                    let _ = writeln!(
                        out,
                        "  {mark} {} — {} ({} attempt(s), {:.2}s)\n         why: {}",
                        o.planned.action, o.detail, o.attempts, o.seconds, o.planned.reason
                    );
                }
                for n in &r.notes {
                    let _ = writeln!(out, "  note: {n}");
                }
                let _ = writeln!(out, "  estimated rows: {}", r.total_events_estimate);
            }
            (None, None) => {}
        }
    }
    out
}

/// What `status` shows of one table's partitions.
pub struct StatusView<'a> {
    pub label: &'a str,
    pub stats: &'a [PartitionStats],
    pub coverage: &'a Coverage,
    pub now: DateTime<Utc>,
    /// Partitions this run's retention would expire.
    pub expiring: Vec<&'a str>,
    /// (partition, vector index) when the table has a vector policy.
    pub vector: Option<&'a [(String, String)]>,
}

/// One table's partitions, one line each, and how far ahead inserts are covered.
pub fn status_table(view: &StatusView<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", view.label);
    let name_w = view
        .stats
        .iter()
        .map(|s| s.partition_name.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let vector_w = view
        .vector
        .map(|v| v.iter().map(|(_, s)| s.len()).max().unwrap_or(6).max(6));
    let vector_head = vector_w
        .map(|w| format!("{:<w$}  ", "VECTOR"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {:<name_w$}  {:<10}  {:<10}  {:>12}  {:>10}  {:>7}  {:<4}  {vector_head}STATE",
        "PARTITION", "FROM", "TO", "ROWS (est)", "SIZE", "INDEXES", "RLS"
    );
    for s in view.stats {
        let vector = match (view.vector, vector_w) {
            (Some(v), Some(w)) => {
                let shown = v
                    .iter()
                    .find(|(p, _)| *p == s.partition_name)
                    .map(|(_, shown)| shown.as_str())
                    .unwrap_or("-");
                format!("{shown:<w$}  ")
            }
            _ => String::new(),
        };
        partition_line(&mut out, view, s, name_w, &vector);
    }
    coverage_line(&mut out, view.coverage, view.now);
    out
}

fn partition_line(
    out: &mut String,
    view: &StatusView<'_>,
    s: &PartitionStats,
    name_w: usize,
    vector: &str,
) {
    let date =
        |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "  {:<name_w$}  {:<10}  {:<10}  {:>12}  {:>10}  {:>7}  {:<4}  {vector}{}",
        s.partition_name,
        date(s.date_range_start),
        date(s.date_range_end),
        s.row_count
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into()),
        s.size_pretty,
        format!("{}/{}", s.indexes_valid, s.indexes_expected),
        if s.rls_ok { "ok" } else { "DRIFT" },
        partition_state(s, view).join(", ")
    );
}

/// The STATE column: what is worth a glance about a partition. Every range partition has
/// one of past, current, future; retention adds "expires".
pub(crate) fn partition_state(s: &PartitionStats, view: &StatusView<'_>) -> Vec<&'static str> {
    let now = view.now;
    let mut state = Vec::new();
    if s.is_default {
        state.push("default");
    }
    if s.range_end.is_some_and(|t| t <= now) {
        state.push("past");
    }
    if s.range_start.is_some_and(|f| f <= now) && s.range_end.is_some_and(|t| now < t) {
        state.push("current");
    }
    if s.range_start.is_some_and(|f| f > now) {
        state.push("future");
    }
    if view.expiring.contains(&s.partition_name.as_str()) {
        state.push("expires");
    }
    if s.detach_pending {
        state.push("detach pending");
    }
    if s.indexes_invalid > 0 {
        state.push("INVALID index");
    }
    if s.indexes_building > 0 {
        state.push("index building");
    }
    state
}

fn coverage_line(out: &mut String, coverage: &Coverage, now: DateTime<Utc>) {
    match coverage.covered_until {
        Some(until) => {
            let _ = writeln!(
                out,
                "  inserts covered until {} ({:.1} days ahead, {} future partition(s))",
                sql_literal(until),
                coverage.seconds_ahead as f64 / 86_400.0,
                coverage.future_partitions
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  WARNING: no partition covers {} (inserts go to the default partition or fail)",
                sql_literal(now)
            );
        }
    }
}

/// The lines under a table's partitions: pending actions, index builds under way, vector
/// index health, the journal's unfinished and watched entries, the plan's notes.
pub fn status_details(
    plan: &Plan,
    builds: &[BuildProgress],
    vector: &VectorHealth,
    journal: &[JournalEntry],
) -> String {
    let mut out = String::new();
    if !plan.is_empty() {
        let _ = writeln!(
            out,
            "  {} maintenance action(s) pending: `partwarden maintain --dry-run` shows them",
            plan.actions.len()
        );
    }
    for b in builds {
        let _ = writeln!(
            out,
            "  index build in progress on {}: {} {}{}",
            b.partition,
            b.index.as_deref().unwrap_or("(index)"),
            b.phase,
            b.percent.map(|p| format!(", {p}%")).unwrap_or_default()
        );
    }
    if vector.missing + vector.invalid > 0 {
        let _ = writeln!(
            out,
            "  vector indexes: {} partition(s) qualify but have none, {} INVALID",
            vector.missing, vector.invalid
        );
    }
    if vector.building > 0 {
        let _ = writeln!(
            out,
            "  vector indexes: {} building (INVALID until the build ends; not a failure)",
            vector.building
        );
    }
    for e in journal {
        let _ = writeln!(out, "  {}", journal_line(e));
    }
    for n in &plan.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

fn journal_line(e: &JournalEntry) -> String {
    let at = sql_literal(e.started_at);
    match (&e.what, e.state.as_str(), &e.relation) {
        (_, "retired", Some(r)) => format!("retired (watched): {}.{}", r.schema, r.name),
        (w, state, _) => format!(
            "unfinished since {at}: {} {} ({state})",
            w.kind(),
            w.object()
        ),
    }
}
