//! `partwarden status`: the partitions of every configured table, their coverage and
//! health, and what maintenance would do; as text, one JSON document, or the daemon's
//! status page (`--html`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use partwarden::catalog::{self, vector::BuildProgress, TableSnapshot};
use partwarden::config::{Config, TableConfig};
use partwarden::error::Error;
use partwarden::plan::health::{self, Coverage, PartitionStats};
use partwarden::plan::vector::VectorHealth;
use partwarden::plan::{Action, Plan};
use partwarden::telemetry::page::{self, model::Origin, Actions, PageDoc, PageTable};

use super::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the status page (the daemon's `/`, with the pending actions where the daemon
    /// shows its last run) to FILE instead; `-` for stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    html: Option<PathBuf>,
    /// Evaluate as if it were this instant (RFC 3339, or a date: its midnight UTC).
    #[arg(long, value_name = "INSTANT", value_parser = super::parse_instant)]
    now: Option<DateTime<Utc>>,
    /// Only this table (its `name`, or `schema.name`).
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
}

/// Exit 1 when any table could not be read; the others are shown all the same.
pub async fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let now = args.now.unwrap_or_else(Utc::now);
    let tables_to_show: Vec<&TableConfig> = match &args.table {
        Some(t) => vec![config.find_table(t).map_err(Error::from)?],
        None => config.tables.iter().collect(),
    };
    let pool = super::pool(config).await?;
    let mut conn = pool.acquire().await.map_err(Error::from)?;
    let mut ok = true;
    let mut tables = Vec::new();
    let mut text = String::new();
    for table in tables_to_show {
        match TableHealth::read(&mut conn, table, now).await {
            Ok(h) => {
                text.push_str(&h.text(table, now));
                tables.push(h.into_json(table));
            }
            Err(e) => {
                ok = false;
                let label = table.label();
                let e = e.detail(&label);
                text.push_str(&format!("{label}: ERROR: {e}\n"));
                tables.push(serde_json::json!({ "table": label, "error": e }));
            }
        }
    }
    let code = if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if let Some(path) = &args.html {
        return Ok(write_page(path, &tables, now).unwrap_or(code));
    }
    if args.json {
        let doc = serde_json::json!({ "now": now, "tables": tables });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("rendering JSON")?
        );
    } else {
        print!("{text}");
    }
    Ok(code)
}

/// The page of `tables` (their `--json` entries) to `path`; `Some(2)` when it cannot be
/// written, after saying why.
fn write_page(path: &Path, tables: &[serde_json::Value], now: DateTime<Utc>) -> Option<ExitCode> {
    let doc = PageDoc {
        origin: Origin::Cli,
        now,
        tables: tables
            .iter()
            .map(|t| {
                let label = t["table"].as_str().unwrap_or_default();
                PageTable::from_status_entry(label, t, Actions::from_pending(t))
            })
            .collect(),
    };
    let html = page::render(&doc);
    if path.as_os_str() == "-" {
        print!("{html}");
        return None;
    }
    match std::fs::write(path, html) {
        Ok(()) => {
            println!("status page written to {}", path.display());
            None
        }
        Err(e) => {
            eprintln!(
                "partwarden: error: cannot write the status page to {}: {e}",
                path.display()
            );
            Some(ExitCode::from(2))
        }
    }
}

/// What `status` shows of one table, as of `now`.
struct TableHealth {
    snap: TableSnapshot,
    stats: Vec<PartitionStats>,
    coverage: Coverage,
    plan: Plan,
    indexes_missing: usize,
    indexes_invalid: usize,
    vector: VectorHealth,
    /// This table's index builds under way.
    builds: Vec<BuildProgress>,
}

impl TableHealth {
    async fn read(
        conn: &mut PgConnection,
        table: &TableConfig,
        now: DateTime<Utc>,
    ) -> Result<TableHealth, Error> {
        let snap = catalog::read_table(conn, table).await?;
        let stats = health::all_stats(&snap);
        let coverage = health::coverage(&snap, now);
        let plan = partwarden::plan::plan_table(table, &snap, now);
        let (indexes_missing, indexes_invalid) = health::index_health(&snap);
        let vector = partwarden::plan::vector::health(table, &snap);
        // Progress covers the whole database; not being able to read it is no reason to
        // fail `status`.
        let builds = catalog::vector::progress(conn)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|b| snap.find(&b.partition).is_some())
            .collect();
        Ok(TableHealth {
            snap,
            stats,
            coverage,
            plan,
            indexes_missing,
            indexes_invalid,
            vector,
            builds,
        })
    }

    fn text(&self, table: &TableConfig, now: DateTime<Utc>) -> String {
        let label = table.label();
        let view = render::StatusView {
            label: &label,
            stats: &self.stats,
            coverage: &self.coverage,
            now,
            expiring: self
                .plan
                .actions
                .iter()
                .filter(|a| matches!(a.action, Action::ExpirePartition { .. }))
                .map(|a| a.action.partition())
                .collect(),
            vector: table
                .vector_index
                .as_ref()
                .map(|_| self.vector.per_partition.as_slice()),
        };
        let mut text = render::status_table(&view);
        text.push_str(&render::status_details(
            &self.plan,
            &self.builds,
            &self.vector,
            &self.snap.journal,
        ));
        text
    }

    fn into_json(self, table: &TableConfig) -> serde_json::Value {
        let TableHealth {
            snap,
            stats,
            coverage,
            plan,
            indexes_missing,
            indexes_invalid,
            vector,
            builds,
        } = self;
        serde_json::json!({
            "table": table.label(),
            "interval": table.interval,
            "premake": table.premake,
            "retention": table.retention.to_string(),
            "retention_mode": table.retention_mode,
            "retention_cutoff": plan.cutoff,
            "partitions": stats,
            "partition_count": snap.partitions.len(),
            "future_partitions": coverage.future_partitions,
            "covered_until": coverage.covered_until,
            "future_coverage_seconds": coverage.seconds_ahead,
            "default_partition_rows": snap.default_partition.as_ref().map(|d| d.rows()),
            "indexes_missing": indexes_missing,
            "indexes_invalid": indexes_invalid,
            "vector_indexes_missing": vector.missing,
            "vector_indexes_invalid": vector.invalid,
            "vector_indexes_building": vector.building,
            "vector_index_bytes": vector.sizes,
            "index_builds": builds,
            "estimated_rows": snap.rows_estimate(),
            "pending_actions": plan.actions,
            "journal": snap.journal,
            "notes": plan.notes,
            "read_at": Utc::now(),
        })
    }
}
