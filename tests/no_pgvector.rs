//! The engine on plain time-partitioned tables, without pgvector, through the real
//! `partwarden` binary as the non-superuser owner and a TOML config: premake, rows moving
//! out of the default partition, `maintain --backfill`, retention (drop, detach, archive;
//! `DETACH … CONCURRENTLY` without a default partition), the repair of an INVALID index,
//! row-level security on new partitions, a second run with nothing to do,
//! `status --json`, the session settings of PostgreSQL ≥ 14, and `migrate` where pgvector
//! is missing.
//!
//! `scripts/test.sh` runs these twice: on PostgreSQL 18 (+ pgvector) with the rest of the
//! suite, and on Debian's PostgreSQL 15 (no pgvector) in a step of its own, with
//! `PW_TEST_EXPECT_SERVER_MAJOR=15` and `PW_TEST_EXPECT_PGVECTOR=absent` (the script reads
//! it from the server): every test checks the server it was given, so a run pointed at
//! the wrong one fails.
mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use partwarden::calendar::{partition_name, Interval};
use sqlx::{Executor, PgPool};

use support::cli::{attached, journal, kill9, partwarden, start_until, Run};
use support::daemon::{sample, Daemon};
use support::TestDb;

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";

fn month(k: i64) -> DateTime<Utc> {
    Interval::Month.shift(Interval::Month.floor(Utc::now()), k)
}

fn day(k: i64) -> DateTime<Utc> {
    Interval::Day.shift(Interval::Day.floor(Utc::now()), k)
}

/// `events_YYYY_MM`, `k` months from the current one.
fn name(k: i64) -> String {
    partition_name("events", Interval::Month, month(k))
}

fn config(default_partition: bool, retention_mode: &str) -> String {
    format!(
        "[[tables]]\nname = \"events\"\ncolumn = \"created_at\"\ninterval = \"month\"\n\
         premake = 3\nretention = \"12 months\"\nretention_mode = \"{retention_mode}\"\n\
         max_expire_per_run = 10\ndefault_partition = {default_partition}\n"
    )
}

/// The server major version the run was told to expect, if any.
fn expected_major() -> Option<u32> {
    let v = std::env::var("PW_TEST_EXPECT_SERVER_MAJOR").ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| {
        panic!("PW_TEST_EXPECT_SERVER_MAJOR={v:?} is not a major version such as 15")
    }))
}

/// A database of the test server owned by the maintenance role, without pgvector, after
/// checking that the server is one these tests may run on and the one expected.
async fn bare_db(label: &str) -> TestDb {
    if std::env::var("PW_TEST_ADMIN_URL").is_err() || std::env::var("PW_TEST_PG_BIN").is_err() {
        panic!(
            "PW_TEST_ADMIN_URL and PW_TEST_PG_BIN are not set. These tests run against the \
             server scripts/test.sh starts: PostgreSQL 18 with the whole suite, then Debian's \
             PostgreSQL 15 in the step `engine tests on PostgreSQL 15`. By hand: export \
             PW_TEST_ADMIN_URL=postgres://postgres@127.0.0.1:PORT/postgres and \
             PW_TEST_PG_BIN=/usr/lib/postgresql/15/bin (a cluster with the roles of \
             scripts/pg.sh's pw_pg_bootstrap), optionally PW_TEST_EXPECT_SERVER_MAJOR=15, and \
             run `cargo test --features failpoints --test no_pgvector`."
        );
    }
    let db = TestDb::bare(label).await;
    let su = db.superuser_pool().await;
    let num: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
        .fetch_one(&su)
        .await
        .unwrap();
    let major = num.parse::<u32>().unwrap() / 10_000;
    assert!(
        major >= partwarden::engine::db::MIN_SERVER_MAJOR,
        "server_version_num {num}: older than partwarden supports"
    );
    if let Some(expected) = expected_major() {
        assert_eq!(
            major,
            expected,
            "server_version_num is {num} at {}, but this run was told to expect PostgreSQL \
             {expected} (PW_TEST_EXPECT_SERVER_MAJOR)",
            support::admin_url()
        );
    }
    su.close().await;
    db
}

/// `events` (monthly on `created_at`, index on it, forced RLS by tenant, optionally a
/// default partition) and `audit_log` (daily, no RLS, no default partition), owned by the
/// maintenance role; the application role may use both.
async fn events_db(label: &str, default_partition: bool) -> (TestDb, PgPool) {
    let db = bare_db(label).await;
    let owner = db.owner_pool().await;
    sqlx::raw_sql(
        "CREATE TABLE events (
             id bigint GENERATED ALWAYS AS IDENTITY,
             created_at timestamptz NOT NULL,
             tenant_id uuid,
             payload text,
             PRIMARY KEY (id, created_at)
         ) PARTITION BY RANGE (created_at);
         CREATE INDEX events_created_at_idx ON events (created_at);
         ALTER TABLE events ENABLE ROW LEVEL SECURITY;
         ALTER TABLE events FORCE ROW LEVEL SECURITY;
         CREATE POLICY tenant_isolation ON events
             USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
             WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
         CREATE TABLE audit_log (at timestamptz NOT NULL, message text) PARTITION BY RANGE (at);",
    )
    .execute(&owner)
    .await
    .unwrap();
    if default_partition {
        owner
            .execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
            .await
            .unwrap();
    }
    support::cli::grant_app(&owner, "public").await;
    (db, owner)
}

/// `n` events of `tenant` from `at` on, inserted by the application as that tenant.
async fn insert_n(app: &PgPool, tenant: &str, at: DateTime<Utc>, n: i64) {
    let mut tx = support::tenant_tx(app, tenant).await;
    for i in 0..n {
        sqlx::query(
            "INSERT INTO events (created_at, tenant_id, payload) VALUES ($1, $2::uuid, 'x')",
        )
        .bind(at + chrono::Duration::hours(i))
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Rows per partition of `events`, every tenant's (read as the superuser: RLS does not
/// apply to it).
async fn rows_per_partition(db: &TestDb) -> Vec<(String, i64)> {
    let su = db.superuser_pool().await;
    let rows = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    su.close().await;
    rows
}

/// The partitions of `parent` from `pg_inherits`, with their bounds as
/// `pg_get_expr(relpartbound)` prints them, read back as instants: (name, from, to);
/// `None` bounds for the default partition.
type Bounds = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// (name, `pg_get_expr`'s text, from, to), as read.
type BoundRow = (String, String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

async fn bounds(pool: &PgPool, parent: &str) -> Vec<Bounds> {
    let rows: Vec<BoundRow> = sqlx::query_as(
        r"SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid),
                     m[1]::timestamptz, m[2]::timestamptz
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                          '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') m ON true
               WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(name, expr, from, to)| {
            assert!(
                expr == "DEFAULT" || (from.is_some() && to.is_some()),
                "{name}: unexpected bound {expr}"
            );
            (name, from, to)
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn monthly(k: i64) -> Bounds {
    (name(k), Some(month(k)), Some(month(k + 1)))
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{e}: {}", run.out))
}

/// (table, kind, partition) of every action a `maintain --json` report planned.
fn planned(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for t in doc["tables"].as_array().unwrap() {
        let actions = t["report"]["plan"]["actions"]
            .as_array()
            .unwrap_or_else(|| panic!("no plan in {t}"));
        for a in actions {
            all.push((
                t["table"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
                a["partition"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    all
}

/// `maintain` twice more: the first plans nothing (dry run), the second does nothing.
fn assert_nothing_left_to_do(db: &TestDb, toml: &str) {
    let run = partwarden(db, Some(toml), &[], &["maintain", "--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(planned(&json(&run)), vec![], "{}", run.out);
    let run = partwarden(db, Some(toml), &[], &["maintain", "--json"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let doc = json(&run);
    assert_eq!(planned(&doc), vec![], "{}", run.out);
    for t in doc["tables"].as_array().unwrap() {
        assert_eq!(t["report"]["outcomes"], serde_json::json!([]), "{t}");
    }
}

/// Each partition of `events` has the parent's RLS, enabled and forced, with exactly its
/// policy, and a valid copy of each parent index attached to it.
async fn assert_partitions_like_the_parent(pool: &PgPool, partitions: &[String]) {
    let parent_policy: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT polname::text, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
           FROM pg_policy WHERE polrelid = 'events'::regclass",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(parent_policy.len(), 1);
    for p in partitions {
        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(p)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(
            enabled && forced,
            "{p}: RLS enabled {enabled}, forced {forced}"
        );
        let policy: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT polname::text, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
               FROM pg_policy WHERE polrelid = $1::regclass",
        )
        .bind(p)
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(policy, parent_policy, "{p}");
        let indexes: Vec<(String, bool)> = sqlx::query_as(
            "SELECT pi.inhparent::regclass::text, x.indisvalid
               FROM pg_index x JOIN pg_inherits pi ON pi.inhrelid = x.indexrelid
              WHERE x.indrelid = $1::regclass ORDER BY 1",
        )
        .bind(p)
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            vec![
                ("events_created_at_idx".to_string(), true),
                ("events_pkey".to_string(), true)
            ],
            "{p}: the parent's indexes, valid and attached"
        );
    }
}

/// How many rows of `partition` (read directly, not through the parent) the owner sees
/// as `tenant` (`None`: no tenant set): RLS is forced, so it holds for the owner too.
async fn tenant_sees(db: &TestDb, tenant: Option<&str>, partition: &str) -> i64 {
    let owner = db.owner_pool().await;
    let mut tx = support::tenant_tx(&owner, tenant.unwrap_or("")).await;
    let n = sqlx::query_scalar(&format!("SELECT count(*) FROM {partition}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    owner.close().await;
    n
}

/// The server is one partwarden supports, the one this run expects, and the session
/// settings of PostgreSQL ≥ 14 are in force on partwarden's connections, JIT compilation
/// off (Debian's PostgreSQL 15 has LLVM: JIT doubled the catalog read at 30,000 partitions).
#[tokio::test]
async fn the_server_is_the_expected_one_and_sessions_get_their_settings() {
    let db = bare_db("server").await;
    let pool = partwarden::engine::db::pool(
        &db.owner_url(),
        &partwarden::engine::db::SessionSettings::default(),
    )
    .unwrap();
    let settings: (String, String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('client_connection_check_interval'),
                current_setting('lock_timeout'), current_setting('TimeZone'),
                current_setting('server_version'), current_setting('jit')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("server_version {}", settings.3);
    assert_eq!(
        (
            settings.0.as_str(),
            settings.1.as_str(),
            settings.2.as_str(),
            settings.4.as_str()
        ),
        ("1s", "2s", "UTC", "off"),
        "{settings:?}"
    );
    let vector: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!vector, "these tests' databases have no pgvector");
}

/// Premake creates the current month and three more (bounds from the catalog), moves the
/// rows of the newly covered months out of the default partition (the others stay), gives
/// every new partition the parent's indexes and RLS; a daily table without a default
/// partition gets its days; a second run has nothing to do; `status --json` agrees.
#[tokio::test]
async fn premake_moves_waiting_rows_and_a_second_run_does_nothing() {
    let (db, owner) = events_db("premake", true).await;
    let app = db.app_pool().await;
    insert_n(&app, A, month(0) + chrono::Duration::days(1), 3).await;
    insert_n(&app, B, month(1) + chrono::Duration::days(2), 2).await;
    insert_n(&app, A, month(-2) + chrono::Duration::days(3), 4).await;
    insert_n(&app, B, month(10), 1).await;
    assert_eq!(
        rows_per_partition(&db).await,
        vec![("events_default".to_string(), 10)]
    );
    let toml = format!(
        "{}\n[[tables]]\nname = \"audit_log\"\ncolumn = \"at\"\ninterval = \"day\"\npremake = 7\n\
         retention = \"30 days\"\ndefault_partition = false\n",
        config(true, "drop")
    );

    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);

    let mut expected: Vec<Bounds> = (0..=3).map(monthly).collect();
    expected.push(("events_default".into(), None, None));
    expected.sort();
    assert_eq!(bounds(&owner, "events").await, expected, "{}", run.out);
    let days: Vec<Bounds> = (0..=7)
        .map(|k| {
            (
                partition_name("audit_log", Interval::Day, day(k)),
                Some(day(k)),
                Some(day(k + 1)),
            )
        })
        .collect();
    assert_eq!(bounds(&owner, "audit_log").await, days, "{}", run.out);

    // The current and next month's rows moved; the past month's and the far future's
    // (beyond premake) wait in the default partition. Nothing was lost.
    assert_eq!(
        rows_per_partition(&db).await,
        sorted(vec![
            ("events_default".to_string(), 5),
            (name(0), 3),
            (name(1), 2)
        ]),
        "{}",
        run.out
    );
    let mut parts: Vec<String> = (0..=3).map(name).collect();
    parts.push("events_default".into());
    assert_partitions_like_the_parent(&owner, &parts).await;
    // Reading a new partition directly is as safe as reading the parent.
    assert_eq!(tenant_sees(&db, Some(A), &name(0)).await, 3);
    assert_eq!(tenant_sees(&db, Some(B), &name(0)).await, 0);
    assert_eq!(tenant_sees(&db, None, &name(0)).await, 0);
    assert_eq!(tenant_sees(&db, Some(B), &name(1)).await, 2);
    let denied = support::cli::insert_with(
        &app,
        "INSERT INTO events (created_at, tenant_id)
         SELECT $2, '00000000-0000-0000-0000-00000000000b' WHERE $1::text IS NOT NULL RETURNING id",
        A,
        month(0),
    )
    .await;
    assert!(denied.is_err(), "tenant A inserted a row of tenant B");

    assert_nothing_left_to_do(&db, &toml);
    let run = partwarden(&db, Some(&toml), &[], &["check-config"]);
    assert_eq!(run.code, 0, "both tables are as configured: {}", run.out);

    let run = partwarden(&db, Some(&toml), &[], &["status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let doc = json(&run);
    let events = &doc["tables"][0];
    assert_eq!(events["table"], "public.events", "{doc}");
    assert_eq!(events["future_partitions"], 3, "{events}");
    assert_eq!(
        events["covered_until"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(month(4)),
        "{events}"
    );
    assert_eq!(events["default_partition_rows"], 5, "{events}");
    let stats = events["partitions"].as_array().unwrap();
    assert_eq!(stats.len(), 5, "{events}");
    for s in stats {
        let is_default = s["partition_name"] == "events_default";
        assert_eq!(s["is_default"], is_default, "{s}");
        assert_eq!(s["indexes_expected"], 2, "{s}");
        assert_eq!(s["indexes_valid"], 2, "{s}");
        assert_eq!(s["detach_pending"], false, "{s}");
    }
    let audit = &doc["tables"][1];
    assert_eq!(audit["table"], "public.audit_log", "{doc}");
    assert_eq!(audit["future_partitions"], 7, "{audit}");
    assert_eq!(
        audit["default_partition_rows"],
        serde_json::Value::Null,
        "{audit}"
    );
    assert_eq!(audit["partitions"].as_array().unwrap().len(), 8, "{audit}");
}

/// `maintain --backfill` counts the rows waiting in the default partition (under forced
/// RLS, which hides them from the owner), creates the past month that holds some and the
/// gap after it, moves them (counts checked), and leaves the far future's row.
#[tokio::test]
async fn backfill_creates_the_past_month_holding_rows() {
    let (db, owner) = events_db("backfill", true).await;
    let app = db.app_pool().await;
    insert_n(&app, A, month(-2) + chrono::Duration::days(3), 4).await;
    insert_n(&app, B, month(-2) + chrono::Duration::days(4), 2).await;
    insert_n(&app, B, month(10), 1).await;
    let toml = config(true, "drop");
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(
        rows_per_partition(&db).await,
        vec![("events_default".to_string(), 7)]
    );

    let run = partwarden(
        &db,
        Some(&toml),
        &[],
        &["maintain", "--backfill", "--dry-run", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let ev = |kind: &str, k: i64| ("public.events".to_string(), kind.to_string(), name(k));
    assert_eq!(
        planned(&json(&run)),
        vec![ev("create_partition", -2), ev("create_partition", -1)],
        "the month with rows and the gap after it: {}",
        run.out
    );
    let run = partwarden(&db, Some(&toml), &[], &["maintain", "--backfill", "--json"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let details: Vec<String> = json(&run)["tables"][0]["report"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{} {}", o["partition"], o["detail"]))
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains(&name(-2)) && d.contains("moved 6 row(s)")),
        "{details:?}"
    );
    let mut expected: Vec<Bounds> = (-2..=3).map(monthly).collect();
    expected.push(("events_default".into(), None, None));
    expected.sort();
    assert_eq!(bounds(&owner, "events").await, expected);
    assert_eq!(
        rows_per_partition(&db).await,
        sorted(vec![("events_default".to_string(), 1), (name(-2), 6)])
    );
    assert_eq!(tenant_sees(&db, Some(A), &name(-2)).await, 4);
    assert_partitions_like_the_parent(&owner, &[name(-2), name(-1)]).await;
    let run = partwarden(
        &db,
        Some(&toml),
        &[],
        &["maintain", "--backfill", "--dry-run", "--json"],
    );
    assert_eq!(planned(&json(&run)), vec![], "{}", run.out);
    assert_nothing_left_to_do(&db, &toml);
}

/// Waits until the server has ended the sessions of a killed `partwarden` (rolling back
/// what they had open).
async fn wait_for_sessions_gone(db: &TestDb) {
    let su = db.superuser_pool().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'partwarden' AND datname = $1",
        )
        .bind(&db.name)
        .fetch_one(&su)
        .await
        .unwrap();
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed run's sessions are still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    su.close().await;
}

/// Creates the partitions of twenty months ago and the three after (a run "then", with
/// `--now --execute`), with a row in one of them; returns their names.
async fn old_partitions(db: &TestDb, toml: &str) -> Vec<String> {
    let then = (month(-20) + chrono::Duration::days(1)).to_rfc3339();
    let run = partwarden(
        db,
        Some(toml),
        &[],
        &["maintain", "--execute", "--now", &then],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    insert_n(&db.app_pool().await, A, month(-19), 1).await;
    (-20..=-17).map(name).collect()
}

/// With a default partition, each retention mode expires the partitions past retention
/// in one transaction (a plain DETACH): dropped, kept detached, or moved to the archive
/// schema, the kept ones with their forced RLS; a kill in that transaction rolls it back.
#[tokio::test]
async fn retention_drops_detaches_and_archives_with_a_default_partition() {
    for mode in ["drop", "detach", "archive"] {
        let (db, owner) = events_db(&format!("retention_{mode}"), true).await;
        let toml = config(true, mode);
        let old = old_partitions(&db, &toml).await;
        if mode == "drop" {
            // Killed between DETACH and DROP: the transaction rolls back, nothing is left
            // half done.
            let (mut child, _) = start_until(
                &db,
                Some(&toml),
                &[("FAILPOINTS", "expire_after_detach=return(60000)")],
                &["maintain"],
                "fault point expire_after_detach reached",
                Duration::from_secs(60),
            );
            assert!(
                attached(&owner, "events").await.contains(&old[0]),
                "a plain DETACH commits with the DROP"
            );
            kill9(&mut child);
            wait_for_sessions_gone(&db).await;
            assert!(attached(&owner, "events").await.contains(&old[0]));
        }
        let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
        assert_eq!(run.code, 0, "{mode}: {}", run.out);
        let now_attached = attached(&owner, "events").await;
        let mut expected: Vec<String> = (0..=3).map(name).collect();
        expected.push("events_default".into());
        expected.sort();
        let now_attached: Vec<String> = now_attached.into_iter().collect();
        assert_eq!(now_attached, expected, "{mode}: {}", run.out);
        for p in &old {
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relname = $1",
            )
            .bind(p)
            .fetch_all(&owner)
            .await
            .unwrap();
            let expected: Vec<String> = match mode {
                "drop" => vec![],
                "detach" => vec!["public".into()],
                _ => vec!["partwarden_archive".into()],
            };
            assert_eq!(schemas, expected, "{mode}: where is {p}");
        }
        if mode != "drop" {
            let kept = if mode == "detach" {
                old[1].clone()
            } else {
                format!("partwarden_archive.{}", old[1])
            };
            let (enabled, forced): (bool, bool) = sqlx::query_as(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
            )
            .bind(&kept)
            .fetch_one(&owner)
            .await
            .unwrap();
            assert!(enabled && forced, "{mode}: {kept} keeps its forced RLS");
            assert_eq!(
                tenant_sees(&db, Some(A), &kept).await,
                1,
                "{mode}: the row is kept"
            );
            assert_eq!(
                tenant_sees(&db, Some(B), &kept).await,
                0,
                "{mode}: and isolated"
            );
        }
        // Kept tables stay under watch (their RLS kept like the parent's); nothing is
        // left unfinished.
        let watched: Vec<(String, String, String, String)> = match mode {
            "drop" => vec![],
            _ => old
                .iter()
                .map(|p| {
                    (
                        "public.events".into(),
                        "expire".into(),
                        p.clone(),
                        "retired".into(),
                    )
                })
                .collect(),
        };
        assert_eq!(journal(&owner).await, watched, "{mode}");
        assert_nothing_left_to_do(&db, &toml);
    }
}

/// Without a default partition, expiry uses `DETACH … CONCURRENTLY` (PostgreSQL ≥ 14),
/// which commits on its own: a run paused after it shows the partition detached and
/// journaled, not yet dropped; killed there, the next run finishes it.
#[tokio::test]
async fn without_a_default_partition_expiry_detaches_concurrently() {
    let (db, owner) = events_db("detach_concurrently", false).await;
    let toml = config(false, "drop");
    let old = old_partitions(&db, &toml).await;
    let (mut child, _) = start_until(
        &db,
        Some(&toml),
        &[("FAILPOINTS", "expire_after_detach=return(60000)")],
        &["maintain"],
        "fault point expire_after_detach reached",
        Duration::from_secs(60),
    );
    let first = &old[0];
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(first)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(exists, "{first} is not dropped yet");
    assert!(
        !attached(&owner, "events").await.contains(first),
        "DETACH … CONCURRENTLY has committed"
    );
    let entries = journal(&owner).await;
    assert!(
        entries
            .iter()
            .any(|(t, kind, object, _)| t == "public.events"
                && kind == "expire"
                && object == first),
        "{entries:?}"
    );
    kill9(&mut child);
    wait_for_sessions_gone(&db).await;
    let run = partwarden(&db, Some(&toml), &[], &["maintain", "--dry-run"]);
    assert!(
        run.out.contains(&format!("finish expiring public.{first}")),
        "{}",
        run.out
    );
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    for p in &old {
        let gone: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NULL")
            .bind(p)
            .fetch_one(&owner)
            .await
            .unwrap();
        assert!(gone, "{p}: {}", run.out);
    }
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhdetachpending")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(
        attached(&owner, "events").await,
        (0..=3).map(name).collect::<Vec<_>>()
    );
    assert_eq!(journal(&owner).await, vec![]);
    assert_nothing_left_to_do(&db, &toml);
}

/// An INVALID copy of a parent index on a partition is rebuilt concurrently, stays
/// attached, and the next run has nothing to do.
#[tokio::test]
async fn an_invalid_index_is_rebuilt() {
    let (db, owner) = events_db("invalid_index", true).await;
    let toml = config(true, "drop");
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    insert_n(&db.app_pool().await, A, month(0), 5).await;
    let index: String = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
           JOIN pg_inherits pi ON pi.inhrelid = x.indexrelid
          WHERE x.indrelid = $1::regclass AND pi.inhparent = 'events_created_at_idx'::regclass",
    )
    .bind(name(0))
    .fetch_one(&owner)
    .await
    .unwrap();
    // What a failed or cancelled concurrent build leaves: the index, INVALID.
    let su = db.superuser_pool().await;
    su.execute(
        format!("UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index}'::regclass")
            .as_str(),
    )
    .await
    .unwrap();
    let run = partwarden(&db, Some(&toml), &[], &["maintain", "--dry-run", "--json"]);
    assert_eq!(
        planned(&json(&run)),
        vec![(
            "public.events".to_string(),
            "repair_index".to_string(),
            name(0)
        )],
        "{}",
        run.out
    );
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(invalid, 0, "{}", run.out);
    let mut parts: Vec<String> = (0..=3).map(name).collect();
    parts.push("events_default".into());
    assert_partitions_like_the_parent(&owner, &parts).await;
    // The rebuilt index serves the partition's rows.
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE created_at >= $1",
        name(0)
    ))
    .bind(month(0))
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(n, 5);
    assert_nothing_left_to_do(&db, &toml);
}

/// `migrate` where pgvector is missing fails (exit 1) saying what to do: on a server that
/// has pgvector's files, that a superuser must create the extension in this database; on
/// one without (Debian's PostgreSQL 15 of scripts/test.sh), that the package must be
/// installed first. Nothing of the schema is left behind.
#[tokio::test]
async fn migrate_without_pgvector_says_what_to_do() {
    let db = bare_db("migrate_no_pgvector").await;
    let su = db.superuser_pool().await;
    let (available, major): (bool, i32) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'),
                current_setting('server_version_num')::int / 10000",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    match std::env::var("PW_TEST_EXPECT_PGVECTOR").as_deref() {
        Ok("absent") => assert!(
            !available,
            "this run was told its server has no pgvector (PW_TEST_EXPECT_PGVECTOR=absent), but \
             pg_available_extensions lists vector"
        ),
        Ok("present") => assert!(
            available,
            "this run was told its server has pgvector (PW_TEST_EXPECT_PGVECTOR=present), but \
             pg_available_extensions does not list vector"
        ),
        Ok(other) => panic!("PW_TEST_EXPECT_PGVECTOR={other:?}: absent or present"),
        Err(_) => {}
    }
    let run = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(run.code, 1, "{}", run.out);
    let expected = if available {
        format!(
            "migration 1 needs extension \"vector\" (pgvector), which role partwarden may not \
             create: it is not a trusted extension. A superuser must run `CREATE EXTENSION \
             vector;` once in database {:?}, then `partwarden migrate` again. (The server said: \
             permission denied to create extension \"vector\" (SQLSTATE 42501))",
            db.name
        )
    } else {
        format!(
            "migration 1 needs extension \"vector\" (pgvector), which is not installed on the \
             PostgreSQL {major} server of database {name:?}: install it there first (the \
             pgvector package for PostgreSQL {major}, e.g. Debian's postgresql-{major}-pgvector, \
             or an image that has it, e.g. pgvector/pgvector:pg{major}; on a managed service, \
             enable pgvector); then a superuser runs `CREATE EXTENSION vector;` once in \
             database {name:?}, and `partwarden migrate` again. (The server said: extension \
             \"vector\" is not available (SQLSTATE 0A000))",
            name = db.name
        )
    };
    assert!(
        run.out.contains(&expected),
        "expected:\n{expected}\ngot:\n{}",
        run.out
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND relname LIKE 'archon%'",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the failed migration rolled back"
    );
}

/// The daemon on this server: ready, leader, maintains at start (premake), and serves
/// the partitions in `/metrics` and `/status`.
#[tokio::test]
async fn the_daemon_maintains_and_is_ready() {
    let (db, _owner) = events_db("daemon", true).await;
    let config = support::cli::write_config(&config(true, "drop"));
    let mut d = Daemon::start(&[("DATABASE_URL", db.owner_url())], Some(&config));
    let t = "table=\"public.events\"";
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{t},result=\"success\"}}"),
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    let m = d.wait_metric(
        &format!("partwarden_future_partitions{{{t}}}"),
        Duration::from_secs(10),
        |v| v == 3.0,
    );
    assert_eq!(
        sample(&m, &format!("partwarden_partitions{{{t}}}")),
        Some(4.0),
        "the default partition is not counted: {m}"
    );
    assert_eq!(
        sample(&m, &format!("partwarden_future_partitions{{{t}}}")),
        Some(3.0),
        "{m}"
    );
    assert_eq!(sample(&m, "partwarden_leader"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "partwarden_database_up"), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, &format!("partwarden_indexes_missing{{{t}}}")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("partwarden_partitions_rls_drift{{{t}}}")),
        Some(0.0),
        "{m}"
    );
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 200, "{body}\n{}", d.log());
    let (code, body) = d.get("/status").unwrap();
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["database"]["up"], true, "{doc}");
    assert_eq!(
        doc["tables"]["public.events"]["future_partitions"], 3,
        "{doc}"
    );
    assert_eq!(d.terminate().0, Some(0), "{}", d.log());
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}
