//! The SQL API of SPEC §3, called as the non-superuser table owner would from psql.
mod support;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use partwarden::calendar::{partition_name, Interval};
use sqlx::postgres::PgRow;
use sqlx::{Column, Executor, PgPool, Row, TypeInfo};
use support::TestDb;

const TENANT_A: &str = "00000000-0000-0000-0000-00000000000a";

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

async fn bounds_of(pool: &PgPool, partition: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    sqlx::query_as("SELECT range_start, range_end FROM partwarden_range_bounds($1::regclass)")
        .bind(partition)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("bounds of {partition}: {e}"))
}

async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relnamespace::regnamespace || '.' || c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.archon_ga4_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn columns(row: &PgRow) -> Vec<(String, String)> {
    row.columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
        .collect()
}

/// Inserts one event as tenant A (RLS needs the tenant set, even for the owner).
async fn insert_event(pool: &PgPool, at: DateTime<Utc>) {
    let mut tx = support::tenant_tx(pool, TENANT_A).await;
    sqlx::query(
        "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
         VALUES ($1::uuid, 'p1', 'page_view', $2)",
    )
    .bind(TENANT_A)
    .bind(at)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Where tenant A's event at `at` is stored.
async fn stored_in(pool: &PgPool, at: DateTime<Utc>) -> Vec<String> {
    let mut tx = support::tenant_tx(pool, TENANT_A).await;
    let v = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM archon_ga4_events WHERE event_timestamp = $1",
    )
    .bind(at)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    v
}

#[tokio::test]
async fn bounds_are_utc_month_starts_in_every_session_time_zone() {
    for tz in ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"] {
        let db = TestDb::migrated(&format!("tz_{tz}")).await;
        let pool = db.owner_pool().await;
        let mut conn = pool.acquire().await.unwrap();
        conn.execute(format!("SET TimeZone = '{tz}'").as_str())
            .await
            .unwrap();
        // March (New York changes to daylight time), October (Chatham changes), January.
        for (date, y, m) in [
            ("2031-03-20", 2031, 3),
            ("2031-10-01", 2031, 10),
            ("2032-01-31", 2032, 1),
        ] {
            let status: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1::date)")
                .bind(date)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let from = utc(y, m, 1);
            let to = from.checked_add_months(Months::new(1)).unwrap();
            let name = partition_name("archon_ga4_events", Interval::Month, from);
            assert_eq!(name, format!("archon_ga4_events_{y:04}_{m:02}"));
            assert_eq!(
                status,
                format!(
                    "Successfully created partition {name} for date range {} to {}",
                    from.format("%Y-%m-%d"),
                    to.format("%Y-%m-%d")
                ),
                "TimeZone {tz}"
            );
            assert_eq!(
                bounds_of(&pool, &name).await,
                (from, to),
                "TimeZone {tz}: {name}"
            );
            // The catalog's own bound text, read in UTC, is the month start at +00.
            let expr: String = sqlx::query_scalar(
                "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = $1::regclass",
            )
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(
                expr,
                format!(
                    "FOR VALUES FROM ('{}') TO ('{}')",
                    from.format("%Y-%m-%d %H:%M:%S+00"),
                    to.format("%Y-%m-%d %H:%M:%S+00")
                )
            );
        }
        // Stats report UTC dates whatever the session time zone.
        let rows: Vec<(String, Option<NaiveDate>, Option<NaiveDate>)> = sqlx::query_as(
            "SELECT partition_name, date_range_start, date_range_end FROM get_ga4_partition_stats()
              WHERE partition_name = 'archon_ga4_events_2031_03'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![(
                "archon_ga4_events_2031_03".to_string(),
                NaiveDate::from_ymd_opt(2031, 3, 1),
                NaiveDate::from_ymd_opt(2031, 4, 1)
            )],
            "TimeZone {tz}"
        );
    }
}

#[tokio::test]
async fn create_reports_existing_partitions() {
    let db = TestDb::migrated("create_existing").await;
    let pool = db.owner_pool().await;
    let first: String = sqlx::query_scalar("SELECT create_ga4_events_partition('2030-05-17')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        first,
        "Successfully created partition archon_ga4_events_2030_05 for date range 2030-05-01 to 2030-06-01"
    );
    let again: String = sqlx::query_scalar("SELECT create_ga4_events_partition('2030-05-01')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(again, "Partition archon_ga4_events_2030_05 already exists");
}

#[tokio::test]
async fn ensure_returns_one_row_per_month_with_the_spec_columns() {
    let db = TestDb::migrated("ensure").await;
    let pool = db.owner_pool().await;
    let rows = sqlx::query("SELECT * FROM ensure_ga4_partitions_exist(5)")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        columns(&rows[0]),
        [
            ("partition_name".into(), "TEXT".into()),
            ("status".into(), "TEXT".into())
        ]
    );
    let now = Utc::now();
    let start = Interval::Month.floor(now);
    assert_eq!(rows.len(), 6, "current month through +5");
    for (k, row) in rows.iter().enumerate() {
        let from = Interval::Month.shift(start, k as i64);
        let name = partition_name("archon_ga4_events", Interval::Month, from);
        let got_name: String = row.get("partition_name");
        let status: String = row.get("status");
        assert_eq!(got_name, name);
        if k <= 3 {
            // The migration made the current month and three ahead.
            assert_eq!(status, format!("Partition {name} already exists"));
        } else {
            assert!(
                status.starts_with(&format!(
                    "Successfully created partition {name} for date range "
                )),
                "{status}"
            );
        }
    }
    // The default argument is 3.
    let rows = sqlx::query("SELECT * FROM ensure_ga4_partitions_exist()")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
}

#[tokio::test]
async fn bad_arguments_are_clear_errors() {
    let db = TestDb::migrated("bad_args").await;
    let pool = db.owner_pool().await;
    for (sql, needle) in [
        (
            "SELECT create_ga4_events_partition(NULL)",
            "must not be NULL",
        ),
        (
            "SELECT * FROM ensure_ga4_partitions_exist(-1)",
            "months_ahead must be between 0 and 120",
        ),
        (
            "SELECT * FROM ensure_ga4_partitions_exist(100000)",
            "months_ahead must be between 0 and 120",
        ),
        (
            "SELECT * FROM drop_old_ga4_partitions(0)",
            "retention_months must be at least 1",
        ),
        (
            "SELECT * FROM drop_old_ga4_partitions(NULL)",
            "retention_months must be at least 1",
        ),
    ] {
        let err = sqlx::query(sql)
            .fetch_all(&pool)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains(needle), "{sql}: {err}");
    }
    let before = partitions(&pool).await;
    assert_eq!(before.len(), 5);
}

#[tokio::test]
async fn a_same_named_table_in_another_schema_is_not_a_partition() {
    let db = TestDb::migrated("other_schema").await;
    let pool = db.owner_pool().await;
    pool.execute(
        "CREATE SCHEMA other;
         CREATE TABLE other.archon_ga4_events_2020_01 (id int);
         CREATE TABLE other.archon_ga4_events_2031_06 (id int);",
    )
    .await
    .unwrap();
    // Not mistaken for an existing partition: the real one is created in public.
    let status: String = sqlx::query_scalar("SELECT create_ga4_events_partition('2031-06-01')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        status.starts_with("Successfully created partition archon_ga4_events_2031_06"),
        "{status}"
    );
    assert!(partitions(&pool)
        .await
        .contains(&"public.archon_ga4_events_2031_06".to_string()));
    // Not dropped by retention, not in the stats.
    let dropped: Vec<(String, String)> = sqlx::query_as("SELECT * FROM drop_old_ga4_partitions(1)")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        dropped
            .iter()
            .all(|(n, _)| n != "archon_ga4_events_2020_01"),
        "{dropped:?}"
    );
    let still: bool =
        sqlx::query_scalar("SELECT to_regclass('other.archon_ga4_events_2020_01') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(still);
    let stats: Vec<String> =
        sqlx::query_scalar("SELECT partition_name FROM get_ga4_partition_stats()")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!stats.contains(&"archon_ga4_events_2020_01".to_string()));
    // A plain table that has a partition's name in public is an error, not "already exists".
    pool.execute("CREATE TABLE public.archon_ga4_events_2032_02 (id int)")
        .await
        .unwrap();
    let err = sqlx::query("SELECT create_ga4_events_partition('2032-02-01')")
        .fetch_one(&pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists but is not a partition"), "{err}");
}

#[tokio::test]
async fn retention_drops_only_partitions_entirely_before_the_cutoff() {
    let db = TestDb::migrated("retention").await;
    let pool = db.owner_pool().await;
    let now = Utc::now();
    let cutoff = now.checked_sub_months(Months::new(24)).unwrap();
    // Month partitions from 30 months ago through the current month.
    let start = Interval::Month.floor(now.checked_sub_months(Months::new(30)).unwrap());
    let mut expected_dropped = Vec::new();
    let mut expected_kept = Vec::new();
    for k in 0..31 {
        let from = Interval::Month.shift(start, k);
        let to = Interval::Month.shift(from, 1);
        let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
            .bind(from.date_naive())
            .fetch_one(&pool)
            .await
            .unwrap();
        let name = partition_name("archon_ga4_events", Interval::Month, from);
        if to <= cutoff {
            expected_dropped.push(name)
        } else {
            expected_kept.push(name)
        }
    }
    // The month that straddles the cutoff holds an event younger than the cutoff.
    let young = cutoff + chrono::Duration::hours(1);
    insert_event(&pool, young).await;
    // An event in the default partition, far in the past.
    let ancient = utc(1999, 1, 1);
    insert_event(&pool, ancient).await;

    let dropped: Vec<(String, String)> =
        sqlx::query_as("SELECT partition_name, status FROM drop_old_ga4_partitions(24)")
            .fetch_all(&pool)
            .await
            .unwrap();
    let names: Vec<String> = dropped.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, expected_dropped);
    for (name, status) in &dropped {
        assert!(
            status.starts_with(&format!("Dropped partition {name} (date range ")),
            "{status}"
        );
    }
    let left = partitions(&pool).await;
    for name in &expected_kept {
        assert!(
            left.contains(&format!("public.{name}")),
            "{name} was dropped: {left:?}"
        );
    }
    assert!(left.contains(&"public.archon_ga4_events_default".to_string()));
    assert_eq!(
        stored_in(&pool, young).await,
        vec![partition_name(
            "archon_ga4_events",
            Interval::Month,
            Interval::Month.floor(young)
        )]
    );
    assert_eq!(
        stored_in(&pool, ancient).await,
        vec!["archon_ga4_events_default".to_string()]
    );

    // Even the shortest retention never drops the default partition or the current month.
    let dropped: Vec<String> =
        sqlx::query_scalar("SELECT partition_name FROM drop_old_ga4_partitions(1)")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!dropped.contains(&"archon_ga4_events_default".to_string()));
    let current = partition_name(
        "archon_ga4_events",
        Interval::Month,
        Interval::Month.floor(now),
    );
    assert!(!dropped.contains(&current));
    assert_eq!(
        stored_in(&pool, ancient).await,
        vec!["archon_ga4_events_default".to_string()]
    );
}

#[tokio::test]
async fn stats_have_the_spec_columns_and_catalog_estimates() {
    let db = TestDb::migrated("stats").await;
    let pool = db.owner_pool().await;
    let now = Utc::now();
    for i in 0..25 {
        insert_event(&pool, now - chrono::Duration::seconds(i)).await;
    }
    pool.execute("ANALYZE archon_ga4_events").await.unwrap();
    let rows = sqlx::query("SELECT * FROM get_ga4_partition_stats()")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        columns(&rows[0]),
        [
            ("partition_name".into(), "TEXT".into()),
            ("row_count".into(), "INT8".into()),
            ("size_bytes".into(), "INT8".into()),
            ("size_pretty".into(), "TEXT".into()),
            ("date_range_start".into(), "DATE".into()),
            ("date_range_end".into(), "DATE".into()),
        ]
    );
    assert_eq!(rows.len(), 5);
    let current = partition_name(
        "archon_ga4_events",
        Interval::Month,
        Interval::Month.floor(now),
    );
    let first = &rows[0];
    // Events a few seconds old may straddle a month start; the current month has most.
    let total: i64 = rows.iter().map(|r| r.get::<i64, _>("row_count")).sum();
    assert_eq!(total, 25);
    assert_eq!(first.get::<String, _>("partition_name"), current);
    let from = Interval::Month.floor(now);
    assert_eq!(
        first.get::<Option<NaiveDate>, _>("date_range_start"),
        Some(from.date_naive())
    );
    assert_eq!(
        first.get::<Option<NaiveDate>, _>("date_range_end"),
        Some(Interval::Month.shift(from, 1).date_naive())
    );
    for r in &rows {
        let size: i64 = r.get("size_bytes");
        let pretty: String = r.get("size_pretty");
        let expect: String = sqlx::query_scalar("SELECT pg_size_pretty($1::bigint)")
            .bind(size)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(size > 0);
        assert_eq!(pretty, expect);
    }
    let last = rows.last().unwrap();
    assert_eq!(
        last.get::<String, _>("partition_name"),
        "archon_ga4_events_default"
    );
    assert_eq!(last.get::<Option<NaiveDate>, _>("date_range_start"), None);
    let _ = now.year();
}

#[tokio::test]
async fn far_future_rows_land_in_the_default_partition_and_move_out_when_their_month_is_created() {
    let db = TestDb::migrated("default_part").await;
    let pool = db.owner_pool().await;
    let far = utc(2099, 7, 4) + chrono::Duration::hours(13);
    insert_event(&pool, far).await;
    insert_event(&pool, far + chrono::Duration::days(1)).await;
    assert_eq!(
        stored_in(&pool, far).await,
        vec!["archon_ga4_events_default".to_string()]
    );
    let status: String = sqlx::query_scalar("SELECT create_ga4_events_partition('2099-07-01')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        status,
        "Successfully created partition archon_ga4_events_2099_07 for date range 2099-07-01 to 2099-08-01 \
         (moved 2 rows from the default partition)"
    );
    assert_eq!(
        stored_in(&pool, far).await,
        vec!["archon_ga4_events_2099_07".to_string()]
    );
    assert_eq!(
        stored_in(&pool, far + chrono::Duration::days(1)).await,
        vec!["archon_ga4_events_2099_07".to_string()]
    );
    // The default partition is forced again afterwards, and the new partition is too.
    let forced: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT relname::text, relrowsecurity, relforcerowsecurity FROM pg_class
          WHERE relname IN ('archon_ga4_events_default', 'archon_ga4_events_2099_07') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        forced,
        vec![
            ("archon_ga4_events_2099_07".to_string(), true, true),
            ("archon_ga4_events_default".to_string(), true, true)
        ]
    );
}

/// Issue 10.8: the functions read partition bounds back from the catalog, which prints
/// them in the session's DateStyle and TimeZone. Under `SET DateStyle = 'SQL, MDY'; SET
/// TimeZone = 'UTC+5'` the December partition used to end on 2026-12-31 (`… UTC` is read
/// back as UTC, five hours off), and retention dropped by the same misread bounds.
#[tokio::test]
async fn unusual_session_date_settings_do_not_change_bounds_or_retention() {
    for (datestyle, tz) in [
        ("SQL, MDY", "UTC+5"),
        ("German, DMY", "Pacific/Chatham"),
        ("Postgres, DMY", "UTC-14"),
    ] {
        let db = TestDb::migrated("odd_datestyle").await;
        let pool = db.owner_pool().await;
        let mut odd = pool.acquire().await.unwrap();
        odd.execute(format!("SET DateStyle = '{datestyle}'; SET TimeZone = '{tz}'").as_str())
            .await
            .unwrap();
        let now = Utc::now();
        let cutoff = now.checked_sub_months(Months::new(24)).unwrap();
        let start = Interval::Month.floor(now.checked_sub_months(Months::new(27)).unwrap());
        let mut expected = Vec::new(); // (name, from, to)
        for k in 0..28 {
            let from = Interval::Month.shift(start, k);
            let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
                .bind(from.date_naive())
                .fetch_one(&mut *odd)
                .await
                .unwrap();
            let to = Interval::Month.shift(from, 1);
            expected.push((
                partition_name("archon_ga4_events", Interval::Month, from),
                from,
                to,
            ));
        }
        let stats: Vec<(String, Option<NaiveDate>, Option<NaiveDate>)> = sqlx::query_as(
            "SELECT partition_name, date_range_start, date_range_end FROM get_ga4_partition_stats()",
        )
        .fetch_all(&mut *odd)
        .await
        .unwrap();
        for (name, from, to) in &expected {
            let row = stats
                .iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} in stats"));
            assert_eq!(
                (row.1, row.2),
                (Some(from.date_naive()), Some(to.date_naive())),
                "{name} under DateStyle {datestyle}, TimeZone {tz}"
            );
        }
        let bounds: (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
            "SELECT range_start, range_end FROM partwarden_range_bounds($1::regclass)",
        )
        .bind(&expected[5].0)
        .fetch_one(&mut *odd)
        .await
        .unwrap();
        assert_eq!(
            bounds,
            (expected[5].1, expected[5].2),
            "DateStyle {datestyle}, TimeZone {tz}"
        );
        let dropped: Vec<String> =
            sqlx::query_scalar("SELECT partition_name FROM drop_old_ga4_partitions(24)")
                .fetch_all(&mut *odd)
                .await
                .unwrap();
        let want: Vec<String> = expected
            .iter()
            .filter(|(_, _, to)| *to <= cutoff)
            .map(|(n, _, _)| n.clone())
            .collect();
        assert_eq!(dropped, want, "DateStyle {datestyle}, TimeZone {tz}");
    }
}
