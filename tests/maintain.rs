//! The maintenance engine end to end: `partwarden maintain` / `status` against the real
//! server, run as the non-superuser table owner.
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Executor, PgPool};
use support::cli::partwarden;
use support::{partitions, TestDb};

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Partition names and bound expressions, plus every relation of the schemas: what must
/// not change when nothing is supposed to change.
async fn catalog_fingerprint(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '')
                || ' rls=' || c.relrowsecurity || c.relforcerowsecurity
                || ' pol=' || (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn insert_as(pool: &PgPool, tenant: &str, ts: DateTime<Utc>) {
    let mut tx = support::tenant_tx(pool, tenant).await;
    sqlx::query(
        "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp) VALUES ($1::uuid, 'p', 'e', $2)",
    )
    .bind(tenant)
    .bind(ts)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// One partition as the catalog describes it: bounds, indexes (definitions with the
/// partition's own name factored out), RLS, policies, owner.
async fn describe_partition(pool: &PgPool, name: &str) -> Vec<String> {
    let mut v: Vec<String> = sqlx::query_scalar(
        "SELECT 'bound ' || pg_get_expr(relpartbound, oid) || ' rls=' || relrowsecurity || relforcerowsecurity
                || ' owner=' || pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass
         UNION ALL
         SELECT 'index ' || replace(pg_get_indexdef(indexrelid), $2, '<p>') || ' valid=' || indisvalid
                || ' parent=' || coalesce((SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = indexrelid), '-')
           FROM pg_index WHERE indrelid = $1::regclass
         UNION ALL
         SELECT 'policy ' || polname || ' ' || polcmd::text || ' ' || polpermissive || ' ' || polroles::text
                || ' ' || coalesce(pg_get_expr(polqual, polrelid), '') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '')
           FROM pg_policy WHERE polrelid = $1::regclass
         UNION ALL
         SELECT 'column ' || attname || ' ' || format_type(atttypid, atttypmod) || ' notnull=' || attnotnull
                || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
         UNION ALL
         SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass",
    )
    .bind(name)
    .bind(name)
    .fetch_all(pool)
    .await
    .unwrap();
    v.sort();
    v
}

#[tokio::test]
async fn partitions_made_by_partwarden_are_identical_to_the_sql_functions() {
    let sql_db = TestDb::migrated("same_sql").await;
    let pw_db = TestDb::migrated("same_pw").await;
    let sql_pool = sql_db.owner_pool().await;
    for d in ["2031-01-01", "2031-02-01", "2031-03-01", "2031-04-01"] {
        let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1::date)")
            .bind(d)
            .fetch_one(&sql_pool)
            .await
            .unwrap();
    }
    let run = partwarden(
        &pw_db,
        None,
        &[],
        &["maintain", "--execute", "--now", "2031-01-15T12:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let pw_pool = pw_db.owner_pool().await;
    for name in [
        "archon_ga4_events_2031_01",
        "archon_ga4_events_2031_02",
        "archon_ga4_events_2031_03",
        "archon_ga4_events_2031_04",
    ] {
        let a = describe_partition(&sql_pool, name).await;
        let b = describe_partition(&pw_pool, name).await;
        assert!(
            a.iter().any(|l| l.starts_with("bound FOR VALUES FROM")),
            "{name}: {a:?}"
        );
        assert!(
            a.iter().filter(|l| l.starts_with("index ")).count() == 6,
            "{name}: {a:?}"
        );
        assert_eq!(
            a, b,
            "{name} differs between the SQL functions and partwarden"
        );
    }
}

/// Issue 10.7: `--now` previews. It used to run the plan for real: `maintain --now
/// 2029-06-15T00:00:00Z` dropped the real current month, with its rows, and exited 0.
#[tokio::test]
async fn now_only_previews_unless_execute_is_given() {
    let db = TestDb::migrated("now_previews").await;
    let pool = db.owner_pool().await;
    insert_as(&pool, A, Utc::now()).await;
    let before = catalog_fingerprint(&pool).await;
    let rows_before = support::rows_by_partition(&pool, &[A, B]).await;
    let far = "2029-06-15T00:00:00Z";
    let cfg = "[[tables]]\nname = \"archon_ga4_events\"\nretention = \"1 month\"\npremake = 1\n";
    let run = partwarden(&db, Some(cfg), &[], &["maintain", "--now", far]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.contains("drop archon_ga4_events_"),
        "the preview shows the plan: {}",
        run.out
    );
    assert!(
        run.out.contains("--execute"),
        "says how to apply it: {}",
        run.out
    );
    assert_eq!(
        catalog_fingerprint(&pool).await,
        before,
        "--now changed the catalog"
    );
    assert_eq!(
        support::rows_by_partition(&pool, &[A, B]).await,
        rows_before,
        "--now changed rows"
    );

    let run = partwarden(&db, Some(cfg), &[], &["maintain", "--execute"]);
    assert_eq!(
        run.code, 2,
        "--execute without --now is a usage error: {}",
        run.out
    );
    assert!(run.out.contains("--now"), "{}", run.out);

    let run = partwarden(
        &db,
        Some(cfg),
        &[],
        &["maintain", "--now", far, "--execute"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        partitions(&pool)
            .await
            .contains(&"archon_ga4_events_2029_06".to_string()),
        "--execute applies the plan at the simulated instant"
    );
}

#[tokio::test]
async fn dry_run_changes_nothing_and_a_second_run_plans_nothing() {
    let db = TestDb::migrated("dry_run").await;
    let pool = db.owner_pool().await;
    let before = catalog_fingerprint(&pool).await;
    let now = "2028-06-10T00:00:00Z";
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run", "--now", now]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.contains("create archon_ga4_events_2028_06"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("why: the current month has no partition"),
        "{}",
        run.out
    );
    assert!(run.out.contains("dry run: nothing changed"), "{}", run.out);
    assert_eq!(
        catalog_fingerprint(&pool).await,
        before,
        "--dry-run changed the catalog"
    );

    let run = partwarden(&db, None, &[], &["maintain", "--execute", "--now", now]);
    assert_eq!(run.code, 0, "{}", run.out);
    let parts = partitions(&pool).await;
    for m in ["2028_06", "2028_07", "2028_08", "2028_09"] {
        assert!(
            parts.contains(&format!("archon_ga4_events_{m}")),
            "{m} missing: {parts:?}"
        );
    }
    assert!(
        !parts.contains(&"archon_ga4_events_2028_10".to_string()),
        "{parts:?}"
    );
    let after_first = catalog_fingerprint(&pool).await;
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run", "--now", now]);
    assert!(
        run.out.contains("0 action(s)"),
        "second run still plans: {}",
        run.out
    );
    let run = partwarden(&db, None, &[], &["maintain", "--execute", "--now", now]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(
        catalog_fingerprint(&pool).await,
        after_first,
        "second run changed the catalog"
    );
}

#[tokio::test]
async fn a_far_future_row_creates_no_more_than_premake_partitions_and_waiting_rows_move_in() {
    let db = TestDb::migrated("far_future").await;
    let pool = db.owner_pool().await;
    // Rows of a month that has no partition yet, and one far in the future.
    insert_as(&pool, A, at("2031-02-03T04:05:06Z")).await;
    insert_as(&pool, B, at("2031-02-28T23:59:59Z")).await;
    insert_as(&pool, A, at("2031-03-01T00:00:00Z")).await;
    insert_as(&pool, B, at("2199-12-31T00:00:00Z")).await;
    let before = support::rows_by_partition(&pool, &[A, B]).await;
    assert!(
        before.iter().all(|(_, p)| p == "archon_ga4_events_default"),
        "{before:?}"
    );
    pool.execute("ANALYZE archon_ga4_events_default")
        .await
        .unwrap();

    let run = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--execute", "--now", "2031-01-20T00:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out
            .contains("moved 2 row(s) from the default partition"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("moved 1 row(s) from the default partition"),
        "{}",
        run.out
    );
    let parts = partitions(&pool).await;
    let new: Vec<&String> = parts
        .iter()
        .filter(|p| p.starts_with("archon_ga4_events_203"))
        .collect();
    assert_eq!(
        new.len(),
        4,
        "current + premake 3, nothing for 2199: {parts:?}"
    );
    let after = support::rows_by_partition(&pool, &[A, B]).await;
    assert_eq!(
        after.len(),
        before.len(),
        "rows lost or duplicated: {after:?}"
    );
    assert_eq!(
        after,
        vec![
            (A.into(), "archon_ga4_events_2031_02".into()),
            (A.into(), "archon_ga4_events_2031_03".into()),
            (B.into(), "archon_ga4_events_2031_02".into()),
            (B.into(), "archon_ga4_events_default".into()),
        ]
    );
    // The default partition is forced again, the new partitions too.
    let unforced: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid
          WHERE inhparent = 'archon_ga4_events'::regclass AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unforced.is_empty(), "{unforced:?}");
    // status reports the row left in the default partition.
    let run = partwarden(
        &db,
        None,
        &[],
        &["status", "--json", "--now", "2031-01-20T00:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let doc: serde_json::Value = serde_json::from_str(&run.out).expect(&run.out);
    let t = &doc["tables"][0];
    assert_eq!(t["future_partitions"], 3);
    let parts = t["partitions"].as_array().unwrap();
    for p in parts {
        for key in [
            "partition_name",
            "row_count",
            "size_bytes",
            "size_pretty",
            "date_range_start",
            "date_range_end",
        ] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
}

#[tokio::test]
async fn status_shows_the_partition_table() {
    let db = TestDb::migrated("status").await;
    let run = partwarden(&db, None, &[], &["status"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let now = Utc::now();
    let current = partwarden::calendar::partition_name(
        "archon_ga4_events",
        partwarden::calendar::Interval::Month,
        partwarden::calendar::Interval::Month.floor(now),
    );
    assert!(run.out.contains("PARTITION"), "{}", run.out);
    assert!(
        run.out
            .lines()
            .any(|l| l.contains(&current) && l.contains("current") && l.contains("6/6")),
        "{}",
        run.out
    );
    assert!(run.out.contains("archon_ga4_events_default"), "{}", run.out);
    assert!(run.out.contains("3 future partition(s)"), "{}", run.out);
}

#[tokio::test]
async fn retention_modes_drop_detach_and_archive() {
    for mode in ["drop", "detach", "archive"] {
        let db = TestDb::migrated(&format!("retention_{mode}")).await;
        let pool = db.owner_pool().await;
        let old = partitions(&pool).await;
        let old_months: Vec<String> = old
            .iter()
            .filter(|p| !p.ends_with("default"))
            .cloned()
            .collect();
        assert_eq!(old_months.len(), 4);
        let toml = format!(
            "[[tables]]\nname = \"archon_ga4_events\"\nretention = \"24 months\"\nretention_mode = \"{mode}\"\n\
             max_expire_per_run = 10\n"
        );
        // 30 years on, every partition the migration made is past retention.
        let run = partwarden(
            &db,
            Some(&toml),
            &[],
            &["maintain", "--execute", "--now", "2056-01-01T00:00:00Z"],
        );
        assert_eq!(run.code, 0, "{mode}: {}", run.out);
        let parts = partitions(&pool).await;
        for p in &old_months {
            assert!(!parts.contains(p), "{mode}: {p} still attached");
            let where_: Vec<String> = sqlx::query_scalar(
                "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1",
            )
            .bind(p)
            .fetch_all(&pool)
            .await
            .unwrap();
            let expected: Vec<String> = match mode {
                "drop" => vec![],
                "detach" => vec!["public".into()],
                _ => vec!["partwarden_archive".into()],
            };
            assert_eq!(where_, expected, "{mode}: where is {p}");
        }
        if mode == "archive" {
            // Archived tables keep their forced RLS.
            let forced: Vec<bool> = sqlx::query_scalar(
                "SELECT relforcerowsecurity AND relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'partwarden_archive' AND c.relkind = 'r'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(forced, vec![true; 4]);
        }
    }
}

#[tokio::test]
async fn without_a_default_partition_expiry_detaches_concurrently() {
    let db = TestDb::migrated("no_default").await;
    let pool = db.owner_pool().await;
    pool.execute("DROP TABLE archon_ga4_events_default")
        .await
        .unwrap();
    let toml = "[[tables]]\nname = \"archon_ga4_events\"\ndefault_partition = false\nmax_expire_per_run = 2\n";
    let run = partwarden(
        &db,
        Some(toml),
        &[],
        &["maintain", "--execute", "--now", "2056-01-01T00:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out
            .contains("2 more partition(s) past retention wait for later runs"),
        "{}",
        run.out
    );
    let parts = partitions(&pool).await;
    assert_eq!(
        parts.len(),
        4 + 2,
        "4 new, 2 of the 4 old left by the cap: {parts:?}"
    );
    assert!(!parts.iter().any(|p| p.ends_with("default")), "{parts:?}");
    let run = partwarden(
        &db,
        Some(toml),
        &[],
        &["maintain", "--execute", "--now", "2056-01-01T00:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(partitions(&pool).await.len(), 4);
}

/// A table the database does not have as configured fails alone, and (issue 10.9) as
/// what it is: a configuration that does not fit the database, exit 2, naming the key.
/// `check-config` finds the same problems without changing anything (it used to pass).
#[tokio::test]
async fn a_broken_table_fails_alone() {
    let db = TestDb::migrated("broken_table").await;
    let pool = db.owner_pool().await;
    pool.execute("CREATE TABLE wrong_key (a timestamptz, b timestamptz) PARTITION BY RANGE (b)")
        .await
        .unwrap();
    let toml =
        "[[tables]]\nname = \"no_such_table\"\n\n[[tables]]\nname = \"archon_ga4_events\"\n\n\
                [[tables]]\nname = \"archon_ga4_daily_summaries\"\ncolumn = \"date\"\n\n\
                [[tables]]\nname = \"wrong_key\"\ncolumn = \"a\"\n";
    // check-config names each key in full; maintain's report names the table once, at the
    // start of its line, and the key relative to it.
    let problems = [
        ("public.no_such_table", "name", "no such table in database"),
        (
            "public.archon_ga4_daily_summaries",
            "name",
            "not a partitioned table",
        ),
        (
            "public.wrong_key",
            "column",
            "not partitioned by column \"a\": its partition key is (b)",
        ),
    ];
    let expected = problems.map(|(t, k, m)| format!("tables[{t}].{k}: {m}"));
    let in_report = problems.map(|(t, k, m)| format!("{t}: FAILED: {k}: {m}"));
    let before = catalog_fingerprint(&pool).await;
    let check = partwarden(&db, Some(toml), &[], &["check-config"]);
    assert_eq!(check.code, 2, "{}", check.out);
    for e in &expected {
        assert!(check.out.contains(e), "check-config: {e}\n{}", check.out);
    }
    assert_eq!(
        catalog_fingerprint(&pool).await,
        before,
        "check-config changed the catalog"
    );
    let offline = partwarden(&db, Some(toml), &[], &["check-config", "--offline"]);
    assert_eq!(offline.code, 0, "{}", offline.out);

    let run = partwarden(
        &db,
        Some(toml),
        &[],
        &["maintain", "--execute", "--now", "2030-03-03T00:00:00Z"],
    );
    assert_eq!(run.code, 2, "{}", run.out);
    for e in &in_report {
        assert!(run.out.contains(e), "maintain: {e}\n{}", run.out);
    }
    assert!(
        partitions(&pool)
            .await
            .contains(&"archon_ga4_events_2030_03".to_string()),
        "the good table was not maintained"
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_runs_no_ddl() {
    let db = TestDb::migrated("bad_input").await;
    let pool = db.owner_pool().await;
    let before = catalog_fingerprint(&pool).await;
    let cases: &[(&str, &str, i32, &str)] = &[
        (
            "[[tables]]\nname = \"events; drop table x\"\n",
            "",
            2,
            "tables[0].name",
        ),
        (
            &format!("[[tables]]\nname = \"{}\"\n", "a".repeat(60)),
            "",
            2,
            "tables[0].name",
        ),
        (
            "[database]\nlock_timout = \"1s\"\n",
            "",
            2,
            "database.lock_timout",
        ),
        (
            "[[tables]]\nname = \"archon_ga4_events\"\npremake = 0\n",
            "",
            2,
            "tables[0].premake",
        ),
        (
            "[[tables]]\nname = \"archon_ga4_events\"\npremake = 6\nretention = \"2 months\"\n",
            "",
            2,
            "tables[0].retention",
        ),
        (
            "[schedule]\nmaintenance = \"0 2 * * *\"\n",
            "",
            2,
            "schedule.maintenance",
        ),
        (
            "[[tables]]\nname = \"archon_ga4_events\"\ncolumn = \"created_at\"\n",
            "",
            2,
            "public.archon_ga4_events: FAILED: column: not partitioned by column",
        ),
        (
            "[[tables]]\nname = \"archon_ga4_daily_summaries\"\n",
            "",
            2,
            "public.archon_ga4_daily_summaries: FAILED: name: not a partitioned table",
        ),
        ("", "nosuch", 2, "nosuch"),
    ];
    for (toml, table, code, needle) in cases {
        let mut args = vec!["maintain", "--execute", "--now", "2030-03-03T00:00:00Z"];
        if !table.is_empty() {
            args.extend(["--table", table]);
        }
        let run = partwarden(&db, Some(toml), &[], &args);
        assert_eq!(run.code, *code, "{toml:?}: {}", run.out);
        assert!(
            run.out.contains(needle),
            "{toml:?}: expected {needle:?} in {}",
            run.out
        );
        assert!(!run.out.contains("panicked"), "{}", run.out);
    }
    let run = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--execute", "--now", "yesterday"],
    );
    assert_eq!(run.code, 2, "{}", run.out);
    assert!(run.out.contains("RFC 3339"), "{}", run.out);
    assert_eq!(
        catalog_fingerprint(&pool).await,
        before,
        "bad input led to DDL"
    );
}

#[tokio::test]
async fn rls_drift_is_reported_and_repaired() {
    let db = TestDb::migrated("rls_drift").await;
    let pool = db.owner_pool().await;
    let parts: Vec<String> = partitions(&pool).await;
    let (p1, p2) = (&parts[0], &parts[1]);
    pool.execute(format!("ALTER TABLE {p1} DISABLE ROW LEVEL SECURITY").as_str())
        .await
        .unwrap();
    pool.execute(format!("DROP POLICY \"Tenant isolation for GA4 events\" ON {p2}").as_str())
        .await
        .unwrap();
    pool.execute(format!("CREATE POLICY sneaky ON {p2} USING (true)").as_str())
        .await
        .unwrap();
    let now = Utc::now().to_rfc3339();
    let run = partwarden(&db, None, &[], &["status", "--now", &now]);
    assert!(
        run.out.lines().filter(|l| l.contains("DRIFT")).count() == 2,
        "{}",
        run.out
    );
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run", "--now", &now]);
    assert!(
        run.out
            .contains(&format!("sync row-level security of {p1}")),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("row-level security is disabled on the partition but enabled on the parent"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("policy \"Tenant isolation for GA4 events\" is missing"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("policy \"sneaky\" is not on the parent"),
        "{}",
        run.out
    );
    let run = partwarden(&db, None, &[], &["maintain", "--execute", "--now", &now]);
    assert_eq!(run.code, 0, "{}", run.out);
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run", "--now", &now]);
    assert!(run.out.contains("0 action(s)"), "{}", run.out);
    let policies: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT polname::text FROM pg_policy WHERE polrelid IN ('{p1}'::regclass, '{p2}'::regclass) ORDER BY 1"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(policies, vec!["Tenant isolation for GA4 events"; 2]);
}

#[tokio::test]
async fn missing_partition_indexes_are_built_and_attached() {
    let db = TestDb::migrated("indexes").await;
    let pool = db.owner_pool().await;
    // An index on the parent only: invalid until every partition has its counterpart.
    pool.execute("CREATE INDEX idx_ga4_events_page ON ONLY archon_ga4_events (page_path)")
        .await
        .unwrap();
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run"]);
    assert_eq!(run.out.matches("build index").count(), 5, "{}", run.out);
    let run = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let valid: bool = sqlx::query_scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_ga4_events_page'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(valid, "parent index still invalid: {}", run.out);
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run"]);
    assert!(run.out.contains("0 action(s)"), "{}", run.out);
}

#[tokio::test]
async fn ddl_gives_up_without_queueing_behind_a_long_reader_then_succeeds() {
    let db = TestDb::migrated("locks").await;
    let pool = db.owner_pool().await;
    let now = Utc::now();
    // A month that needs creating: partwarden must ATTACH, which has to lock (and scan)
    // the default partition.
    let later = Utc
        .with_ymd_and_hms(2033, 5, 10, 0, 0, 0)
        .unwrap()
        .to_rfc3339();

    // A long reader holding ACCESS SHARE on the parent and every partition.
    let reader = support::hold_reader(&pool).await;

    // Inserts into the current month's partition, timed, while maintenance runs.
    let ins_pool = pool.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let inserter = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            insert_as(&ins_pool, A, now).await;
            worst = worst.max(t.elapsed());
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (n, worst)
    });
    let env = [
        ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "1s"),
        ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "2"),
    ];
    let db_url = db.owner_url();
    let later2 = later.clone();
    let t = Instant::now();
    let run = tokio::task::spawn_blocking(move || {
        let db = TestDb {
            name: db_url.rsplit('/').next().unwrap().to_string(),
        };
        partwarden(
            &db,
            None,
            &env,
            &["maintain", "--execute", "--now", &later2],
        )
    })
    .await
    .unwrap();
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, worst) = inserter.await.unwrap();
    assert_eq!(
        run.code, 1,
        "maintenance should give up while the reader holds its lock: {}",
        run.out
    );
    assert!(
        run.out.contains("gave up after 2 attempt(s)"),
        "{}",
        run.out
    );
    // It did not even queue behind the reader (issue 10.10): it saw it in pg_locks.
    assert!(run.out.contains("not queueing behind it"), "{}", run.out);
    assert!(took < Duration::from_secs(30), "maintenance took {took:?}");
    assert!(n > 5, "only {n} inserts ran");
    assert!(
        worst < Duration::from_millis(500),
        "an insert on another partition waited {worst:?}; partwarden must never queue ahead of it"
    );
    assert!(!partitions(&pool)
        .await
        .contains(&"archon_ga4_events_2033_05".to_string()));

    // Release the reader while the next run is retrying: it succeeds on a later attempt.
    let env = [
        ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "1s"),
        ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "10"),
        ("PARTWARDEN__DATABASE__DDL_BACKOFF", "300ms"),
    ];
    let db_url = db.owner_url();
    let handle = tokio::task::spawn_blocking(move || {
        let db = TestDb {
            name: db_url.rsplit('/').next().unwrap().to_string(),
        };
        partwarden(&db, None, &env, &["maintain", "--execute", "--now", &later])
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    reader.commit().await.unwrap();
    let run = handle.await.unwrap();
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        partitions(&pool)
            .await
            .contains(&"archon_ga4_events_2033_05".to_string()),
        "{}",
        run.out
    );
    let retried = run
        .out
        .lines()
        .any(|l| l.contains("create archon_ga4_events_2033_05") && !l.contains("(1 attempt(s)"));
    assert!(
        retried,
        "expected the first create to need more than one attempt: {}",
        run.out
    );
}

#[tokio::test]
async fn after_one_expiry_gives_up_the_others_wait_for_the_next_run() {
    let db = TestDb::migrated("expiry_deferred").await;
    let pool = db.owner_pool().await;
    let toml = "[[tables]]\nname = \"archon_ga4_events\"\nmax_expire_per_run = 10\n";
    let env = [
        ("PARTWARDEN__DATABASE__LOCK_TIMEOUT", "300ms"),
        ("PARTWARDEN__DATABASE__DDL_ATTEMPTS", "2"),
    ];
    let reader = support::hold_reader(&pool).await;
    let run = partwarden(
        &db,
        Some(toml),
        &env,
        &["maintain", "--execute", "--now", "2056-01-01T00:00:00Z"],
    );
    assert_eq!(run.code, 1, "{}", run.out);
    // The first expiry tried twice and gave up; the three others were not even tried.
    let failed = run
        .out
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("FAILED") && l.contains("gave up after 2 attempt(s)")
        })
        .count();
    let deferred = run
        .out
        .lines()
        .filter(|l| l.trim_start().starts_with("skipped") && l.contains("deferred to the next run"))
        .count();
    assert_eq!((failed, deferred), (4 + 1, 3), "{}", run.out);
    reader.rollback().await.unwrap();
    let run = partwarden(
        &db,
        Some(toml),
        &env,
        &["maintain", "--execute", "--now", "2056-01-01T00:00:00Z"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let parts = partitions(&pool).await;
    assert_eq!(parts.len(), 5, "{parts:?}");
}

#[tokio::test]
async fn a_leftover_table_with_a_partition_name_is_a_clear_error() {
    let db = TestDb::migrated("name_taken").await;
    let pool = db.owner_pool().await;
    pool.execute("CREATE TABLE archon_ga4_events_2040_01 (id int)")
        .await
        .unwrap();
    let run = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--execute", "--now", "2040-01-10T00:00:00Z"],
    );
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains(
            "a relation named archon_ga4_events_2040_01 already exists but is not a partition"
        ),
        "{}",
        run.out
    );
    // The other months of the window were still created.
    assert!(partitions(&pool)
        .await
        .contains(&"archon_ga4_events_2040_02".to_string()));
}

/// An interrupted REINDEX CONCURRENTLY (a repair of an INVALID index) leaves its copy
/// `<index>_ccnew` behind, INVALID; it used to stay forever. Now it is dropped.
#[tokio::test]
async fn a_reindex_leftover_is_dropped() {
    let db = TestDb::migrated("reindex_leftover").await;
    let pool = db.owner_pool().await;
    let now = Utc::now();
    insert_as(&pool, A, now).await;
    insert_as(&pool, B, now).await;
    let partition: String = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
         WHERE i.inhparent = 'archon_ga4_events'::regclass AND b.range_start <= now() AND b.range_end > now()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let index: String = sqlx::query_scalar(
        "SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1::regclass AND ic.relname LIKE '%property%'",
    )
    .bind(&partition)
    .fetch_one(&pool)
    .await
    .unwrap();
    // A concurrent build that fails (duplicates) leaves an INVALID index of that name.
    let leftover = format!("{index}_ccnew");
    let failed = pool
        .execute(
            format!("CREATE UNIQUE INDEX CONCURRENTLY \"{leftover}\" ON {partition} (property_id)")
                .as_str(),
        )
        .await;
    assert!(failed.is_err());
    let run = partwarden(&db, None, &[], &["maintain", "--dry-run"]);
    assert!(
        run.out
            .contains(&format!("drop index {leftover} on {partition}")),
        "{}",
        run.out
    );
    let run = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "{}", run.out);
}

/// `--now` takes a date (its midnight UTC) as well as an RFC 3339 instant, and `--json`
/// prints the plan of a dry run as one document; the catalog stays as it was.
#[tokio::test]
async fn now_takes_a_date_and_a_dry_run_prints_its_plan_as_json() {
    let db = TestDb::migrated("now_date_json").await;
    let pool = db.owner_pool().await;
    let before = catalog_fingerprint(&pool).await;
    let by_date = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--dry-run", "--now", "2028-06-10"],
    );
    let by_instant = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--dry-run", "--now", "2028-06-10T00:00:00Z"],
    );
    assert_eq!(by_date.code, 0, "{}", by_date.out);
    assert_eq!(by_date.out, by_instant.out);
    assert!(
        by_date.out.contains("create archon_ga4_events_2028_06"),
        "{}",
        by_date.out
    );

    let run = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--dry-run", "--json", "--now", "2028-06-10"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let doc: serde_json::Value = serde_json::from_str(&run.out).expect(&run.out);
    let events = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.archon_ga4_events")
        .unwrap_or_else(|| panic!("no events table in {doc}"));
    let actions = events["report"]["plan"]["actions"]
        .as_array()
        .expect(&run.out);
    let creates: Vec<String> = actions
        .iter()
        .map(|a| a.to_string())
        .filter(|a| a.contains("archon_ga4_events_2028_0"))
        .collect();
    assert_eq!(creates.len(), 4, "2028-06 to 2028-09: {creates:?}");
    assert_eq!(
        catalog_fingerprint(&pool).await,
        before,
        "--dry-run --json changed the catalog"
    );

    let bad = partwarden(
        &db,
        None,
        &[],
        &["maintain", "--dry-run", "--now", "2028-13-01"],
    );
    assert_eq!(bad.code, 2, "{}", bad.out);
    assert!(
        bad.out.contains("2028-13-01") && bad.out.contains("a date such as"),
        "{}",
        bad.out
    );
}

/// `status --table` shows that table only; an unknown one is a usage error naming the
/// configured tables.
#[tokio::test]
async fn status_shows_one_table_when_asked() {
    let db = TestDb::migrated("status_table").await;
    let pool = db.owner_pool().await;
    pool.execute(
        "CREATE TABLE other_events (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts)",
    )
    .await
    .unwrap();
    let cfg = "[[tables]]\nname = \"archon_ga4_events\"\n\n[[tables]]\nname = \"other_events\"\ncolumn = \"ts\"\n";
    let all = partwarden(&db, Some(cfg), &[], &["status", "--json"]);
    assert_eq!(all.code, 0, "{}", all.out);
    let doc: serde_json::Value = serde_json::from_str(&all.out).expect(&all.out);
    assert_eq!(doc["tables"].as_array().unwrap().len(), 2, "{doc}");

    let one = partwarden(
        &db,
        Some(cfg),
        &[],
        &["status", "--json", "--table", "archon_ga4_events"],
    );
    assert_eq!(one.code, 0, "{}", one.out);
    let doc: serde_json::Value = serde_json::from_str(&one.out).expect(&one.out);
    let tables = doc["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{doc}");
    assert_eq!(tables[0]["table"], "public.archon_ga4_events");

    let text = partwarden(
        &db,
        Some(cfg),
        &[],
        &["status", "--table", "public.other_events"],
    );
    assert_eq!(text.code, 0, "{}", text.out);
    assert!(text.out.contains("other_events"), "{}", text.out);
    assert!(!text.out.contains("archon_ga4_events"), "{}", text.out);

    let unknown = partwarden(&db, Some(cfg), &[], &["status", "--table", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.out);
    assert!(unknown.out.contains("other_events"), "{}", unknown.out);
}
