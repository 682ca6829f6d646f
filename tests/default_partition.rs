//! Rows in the default partition, told truthfully (issue 12.5): rows of past months get
//! their partitions with `maintain --backfill` (moved online, like premake), gaps are
//! reported, notes and reasons say exactly what is there, and a row count nobody took is
//! "unknown", not 0.
mod support;

use chrono::{DateTime, Utc};
use partwarden::calendar::{partition_name, sql_literal, Interval};
use sqlx::{Executor, PgPool};
use support::cli::{grant_app, insert_event, partwarden, partwarden_async, Writers};
use support::{partitions, TestDb};

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";

fn month(k: i64) -> DateTime<Utc> {
    Interval::Month.shift(Interval::Month.floor(Utc::now()), k)
}

fn name(k: i64) -> String {
    partition_name("archon_ga4_events", Interval::Month, month(k))
}

/// Rows per partition, every tenant's: (partition, rows).
async fn rows_per_partition(pool: &PgPool) -> Vec<(String, i64)> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, p) in support::rows_by_partition(pool, &[A, B]).await {
        *counts.entry(p).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

fn rows_in(counts: &[(String, i64)], partition: &str) -> i64 {
    counts
        .iter()
        .find(|(p, _)| p == partition)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

async fn insert_n(pool: &PgPool, tenant: &str, at: DateTime<Utc>, n: usize) {
    for i in 0..n {
        insert_event(pool, tenant, at + chrono::Duration::seconds(i as i64))
            .await
            .unwrap();
    }
}

/// `partwarden maintain ARGS` as the owner with the default configuration.
fn maintain(db: &TestDb, args: &[&str]) -> support::cli::Run {
    let mut all = vec!["maintain"];
    all.extend_from_slice(args);
    partwarden(db, None, &[], &all)
}

fn json(run: &support::cli::Run) -> serde_json::Value {
    serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out))
}

/// (kind, partition, reason) of every planned action of the first table in a report.
fn actions(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["tables"][0]["report"]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["partition"].as_str().unwrap().to_string(),
                a["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn notes(doc: &serde_json::Value, key: &str) -> Vec<String> {
    let v = match key {
        "plan" => &doc["tables"][0]["report"]["plan"]["notes"],
        _ => &doc["tables"][0]["report"]["notes"],
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_rows_in_the_default_partition_get_their_partitions_online_and_the_notes_are_exact() {
    let db = TestDb::migrated("default_backfill").await;
    let pool = db.owner_pool().await;
    grant_app(&pool, "public").await;
    support::drop_future_partitions(&pool).await;
    let app = db.app_pool().await;
    // Rows of two past months (no partition), of next month (premake will cover it), one
    // older than the 24-month retention, and one with an infinite timestamp.
    insert_n(&app, A, month(-3) + chrono::Duration::days(2), 5).await;
    insert_n(&app, B, month(-2) + chrono::Duration::days(9), 7).await;
    insert_n(&app, A, month(1) + chrono::Duration::days(1), 4).await;
    insert_n(&app, B, month(-30), 2).await;
    {
        let mut tx = support::tenant_tx(&app, A).await;
        tx.execute(sqlx::query(
            "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
             VALUES ($1::uuid, 'p', 'e', 'infinity')",
        )
        .bind(A))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    pool.execute("ANALYZE archon_ga4_events_default")
        .await
        .unwrap();

    // A routine run: premake creates current + 3 and moves next month's 4 rows.
    let run = maintain(&db, &["--table", "archon_ga4_events", "--json"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let doc = json(&run);
    for (kind, partition, reason) in actions(&doc) {
        if kind != "create_partition" {
            continue;
        }
        // Without a count, no create claims rows move with it (the old reason did, for
        // every month, whether or not it had rows).
        assert!(
            !reason.contains("move"),
            "{kind} {partition}: a claim made without counting: {reason}"
        );
    }
    let outcome_details: Vec<String> = doc["tables"][0]["report"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{} {}", o["partition"], o["detail"]))
        .collect();
    assert!(
        outcome_details
            .iter()
            .any(|d| d.contains(&name(1)) && d.contains("moved 4 row(s)")),
        "{outcome_details:?} {}",
        run.out
    );
    // After the run the note tells what is left (12 + 2 + 1 rows), not what was there
    // before the move (19).
    let after = notes(&doc, "after");
    let about: Vec<&String> = after
        .iter()
        .filter(|n| n.contains("default partition"))
        .collect();
    assert_eq!(about.len(), 1, "{after:?}");
    assert!(about[0].starts_with("about 15 row(s)"), "{after:?}");
    assert!(about[0].contains("--backfill"), "{after:?}");

    // The backfill's dry run counts (FORCE RLS hides every row from the owner) and plans
    // the two past months; it changes nothing.
    let before = support::partitions(&pool).await;
    let run = maintain(
        &db,
        &[
            "--table",
            "archon_ga4_events",
            "--backfill",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let doc = json(&run);
    let planned = actions(&doc);
    assert_eq!(
        planned
            .iter()
            .map(|(k, p, _)| (k.as_str(), p.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("create_partition", name(-3)),
            ("create_partition", name(-2)),
            ("create_partition", name(-1)),
        ],
        "the two months with rows, and the gap they leave before the current month: {planned:?}"
    );
    assert!(
        planned[2].2.contains("gap between partitions"),
        "{planned:?}"
    );
    assert!(
        planned[0].2.contains("5 row(s) of this past month"),
        "{planned:?}"
    );
    assert!(
        planned[1].2.contains("7 row(s) of this past month"),
        "{planned:?}"
    );
    let plan_notes = notes(&doc, "plan");
    let counted: Vec<&String> = plan_notes
        .iter()
        .filter(|n| n.contains("(counted)"))
        .collect();
    assert_eq!(counted.len(), 1, "{plan_notes:?}");
    let c = counted[0];
    assert!(c.starts_with("15 row(s) in the default partition"), "{c}");
    assert!(
        c.contains("12 move into the partitions this run creates"),
        "{c}"
    );
    assert!(c.contains("2 are older than the retention cutoff"), "{c}");
    assert!(
        c.contains("1 have a NULL or infinite event_timestamp"),
        "{c}"
    );
    assert_eq!(
        support::partitions(&pool).await,
        before,
        "a dry run changed partitions"
    );
    let forced: bool = sqlx::query_scalar(
        "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'archon_ga4_events_default'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(forced, "the count left the default partition unforced");

    // The backfill itself, while the application writes to the current month.
    let writers = Writers::start(&app, &[A, B], 8, |k| {
        Utc::now() - chrono::Duration::milliseconds(k as i64)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let run = partwarden_async(
        &db,
        None,
        vec![("PARTWARDEN__DATABASE__DDL_ATTEMPTS".into(), "20".into())],
        [
            "maintain",
            "--table",
            "archon_ga4_events",
            "--backfill",
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let report = writers.stop().await;
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert!(!report.acknowledged.is_empty());
    let counts = rows_per_partition(&pool).await;
    assert_eq!(rows_in(&counts, &name(-3)), 5, "{counts:?}");
    assert_eq!(rows_in(&counts, &name(-2)), 7, "{counts:?}");
    assert_eq!(rows_in(&counts, &name(1)), 4, "{counts:?}");
    assert!(partitions(&pool).await.contains(&name(-1)), "the gap month");
    assert_eq!(
        rows_in(&counts, "archon_ga4_events_default"),
        3,
        "{counts:?}"
    );
    assert_eq!(
        rows_in(&counts, &name(0)) as usize,
        report.acknowledged.len(),
        "{counts:?}"
    );
    let unforced: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid
          WHERE inhparent = 'archon_ga4_events'::regclass AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unforced.is_empty(), "{unforced:?}");
    let doc = json(&run);
    let after = notes(&doc, "after");
    assert!(
        after
            .iter()
            .any(|n| n.starts_with("about 3 row(s) in the default partition")),
        "{after:?}"
    );
    // Nothing left to backfill: the rows left are too old, or have no place.
    let run = maintain(
        &db,
        &[
            "--table",
            "archon_ga4_events",
            "--backfill",
            "--dry-run",
            "--json",
        ],
    );
    let doc = json(&run);
    assert!(actions(&doc).is_empty(), "{:?}", actions(&doc));
}

#[tokio::test]
async fn gaps_between_partitions_are_reported_and_backfill_fills_them() {
    let db = TestDb::migrated("default_gaps").await;
    let pool = db.owner_pool().await;
    let run = maintain(&db, &["--table", "archon_ga4_events"]);
    assert_eq!(run.code, 0, "{}", run.out);
    // Eight months later, nothing ran in between: premake creates month 8 onward, and
    // months 4 to 7 have no partition.
    let later = sql_literal(month(8) + chrono::Duration::days(3));
    let later = later.replace(' ', "T").replace("+00", "Z");
    let run = maintain(
        &db,
        &["--table", "archon_ga4_events", "--dry-run", "--now", &later],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let gap = format!(
        "gap: no partition covers {} .. {}: inserts there go to the default partition",
        sql_literal(month(4)),
        sql_literal(month(8))
    );
    assert!(run.out.contains(&gap), "{gap}\n{}", run.out);
    let run = maintain(
        &db,
        &[
            "--table",
            "archon_ga4_events",
            "--backfill",
            "--dry-run",
            "--json",
            "--now",
            &later,
        ],
    );
    let doc = json(&run);
    let created: Vec<String> = actions(&doc)
        .into_iter()
        .filter(|(k, _, _)| k == "create_partition")
        .map(|(_, p, _)| p)
        .collect();
    let mut created = created;
    created.sort();
    let expected: Vec<String> = (4..=11).map(name).collect();
    assert_eq!(created, expected, "the gap's months, then premake's");
    assert!(
        !notes(&doc, "plan").iter().any(|n| n.starts_with("gap:")),
        "a gap this run fills is not reported: {:?}",
        notes(&doc, "plan")
    );
    assert!(
        partitions(&pool).await.iter().all(|p| *p != name(4)),
        "a dry run created"
    );
}

#[tokio::test]
async fn row_counts_nobody_took_are_unknown_not_zero() {
    let db = TestDb::migrated("default_unknown_rows").await;
    let pool = db.owner_pool().await;
    grant_app(&pool, "public").await;
    let run = maintain(&db, &["--table", "archon_ga4_events"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let current = name(0);
    // autovacuum must not analyze it while the test looks.
    pool.execute(&*format!(
        "ALTER TABLE {current} SET (autovacuum_enabled = false)"
    ))
    .await
    .unwrap();
    insert_n(&db.app_pool().await, A, month(0), 3).await;

    let run = partwarden(
        &db,
        None,
        &[],
        &["status", "--json", "--table", "archon_ga4_events"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let doc = json(&run);
    let parts = doc["tables"][0]["partitions"].as_array().unwrap();
    let row = |n: &str| {
        parts
            .iter()
            .find(|p| p["partition_name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {parts:?}"))["row_count"]
            .clone()
    };
    assert_eq!(
        row(&current),
        serde_json::Value::Null,
        "never analyzed, holds rows"
    );
    assert_eq!(
        row(&name(1)),
        0,
        "an empty partition has 0 rows, analyzed or not"
    );
    let run = partwarden(&db, None, &[], &["status", "--table", "archon_ga4_events"]);
    let line = run
        .out
        .lines()
        .find(|l| l.trim_start().starts_with(&current))
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(line.contains("unknown"), "{line}");
    assert!(line.contains("current"), "{line}");

    let fn_rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT partition_name, row_count FROM get_ga4_partition_stats()")
            .fetch_all(&pool)
            .await
            .unwrap();
    let of = |n: &str| fn_rows.iter().find(|(p, _)| p == n).map(|(_, r)| *r);
    assert_eq!(of(&current), Some(None), "{fn_rows:?}");
    assert_eq!(of(&name(1)), Some(Some(0)), "{fn_rows:?}");
    pool.execute(&*format!("ANALYZE {current}")).await.unwrap();
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT row_count FROM get_ga4_partition_stats() WHERE partition_name = $1",
    )
    .bind(&current)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, Some(3));
}

/// Maintenance reads no sizes (issue 13), yet must still tell an empty, never-analyzed
/// default partition from one holding rows: a fresh default partition is both.
#[tokio::test]
async fn an_empty_never_analyzed_default_partition_is_not_said_to_hold_rows() {
    let db = TestDb::migrated("default_empty_fresh").await;
    let pool = db.owner_pool().await;
    grant_app(&pool, "public").await;
    pool.execute("ALTER TABLE archon_ga4_events_default SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    let run = maintain(&db, &["--table", "archon_ga4_events"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let reltuples: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = 'archon_ga4_events_default'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        reltuples < 0.0,
        "the default partition was analyzed: {reltuples}"
    );

    let default_notes = |run: &support::cli::Run| {
        assert_eq!(run.code, 0, "{}", run.out);
        let doc = json(run);
        let mut all = notes(&doc, "plan");
        all.extend(notes(&doc, "report"));
        all.into_iter()
            .filter(|n| n.contains("default partition"))
            .collect::<Vec<_>>()
    };
    let dry = maintain(
        &db,
        &["--table", "archon_ga4_events", "--dry-run", "--json"],
    );
    assert_eq!(
        default_notes(&dry),
        Vec::<String>::new(),
        "empty: nothing to say"
    );
    let done = maintain(&db, &["--table", "archon_ga4_events", "--json"]);
    assert_eq!(
        default_notes(&done),
        Vec::<String>::new(),
        "empty: nothing to say"
    );

    // Rows beyond the premake window stay in the default partition, never analyzed.
    insert_n(&db.app_pool().await, A, month(24), 2).await;
    let dry = maintain(
        &db,
        &["--table", "archon_ga4_events", "--dry-run", "--json"],
    );
    let said = default_notes(&dry);
    assert!(
        said.iter()
            .any(|n| n.contains("holds rows but was never analyzed")),
        "{said:?}"
    );
}
