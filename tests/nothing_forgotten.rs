//! Nothing partwarden begins is lost or forgotten, and no table it touches escapes tenant
//! isolation: expiries that fail or are interrupted between their steps, vector builds
//! killed mid-way, and the backend of a killed run (issue 10, items 2–5).
mod support;

use std::time::{Duration, Instant};

use sqlx::{Executor, PgPool};
use support::cli::{
    attached, grant_app, journal, kill9, old_partition, partwarden, spawn, start_until,
    wait_for_statement,
};
use support::TestDb;

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";
const EVENTS: &str = "archon_ga4_events";

/// What the application role sees in `rel` with `tenant` set (or none).
async fn visible(app: &PgPool, rel: &str, tenant: Option<&str>) -> i64 {
    let mut tx = app.begin().await.unwrap();
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {rel}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n
}

/// RLS enabled, forced, and the parent's policies by name.
async fn rls_of(pool: &PgPool, rel: &str) -> (bool, bool, Vec<String>) {
    sqlx::query_as(
        "SELECT c.relrowsecurity, c.relforcerowsecurity,
                coalesce((SELECT array_agg(polname::text ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid), '{}')
           FROM pg_class c WHERE c.oid = $1::regclass",
    )
    .bind(rel)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn seed_rows(owner: &PgPool, partition_from_name: &str) {
    // The partition's month from its name: archon_ga4_events_YYYY_MM.
    let ym = partition_from_name.trim_start_matches("archon_ga4_events_");
    let at = chrono::NaiveDate::parse_from_str(&format!("{ym}_15"), "%Y_%m_%d")
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    for t in [A, B] {
        support::cli::insert_event(owner, t, at).await.unwrap();
    }
}

const POLICY: &str = "Tenant isolation for GA4 events";

/// Issue 10.2: drift on a partition past retention (RLS disabled, an extra `USING (true)`
/// policy) used to be carried into the archived or detached table, where the application
/// role with no tenant read every tenant's rows, and later runs reported nothing. Now the
/// expiry repairs RLS first, and the retired table stays under watch.
#[tokio::test]
async fn an_expiring_partition_leaves_with_the_parents_rls_and_stays_watched() {
    for (mode, schema) in [("archive", "partwarden_archive"), ("detach", "public")] {
        let db = TestDb::migrated(&format!("retire_rls_{mode}")).await;
        let owner = db.owner_pool().await;
        let old = old_partition(&owner, 30).await;
        seed_rows(&owner, &old).await;
        owner
            .execute(
                format!(
                    "ALTER TABLE {old} DISABLE ROW LEVEL SECURITY;
                     CREATE POLICY open ON {old} USING (true)"
                )
                .as_str(),
            )
            .await
            .unwrap();
        let toml = format!("[[tables]]\nname = \"{EVENTS}\"\nretention_mode = \"{mode}\"\n");
        let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
        assert_eq!(run.code, 0, "{mode}: {}", run.out);
        let rel = format!("{schema}.{old}");
        grant_app(&owner, schema).await;
        let app = db.app_pool().await;
        assert_eq!(
            visible(&app, &rel, None).await,
            0,
            "{mode}: no tenant, no rows"
        );
        assert_eq!(
            visible(&app, &rel, Some(A)).await,
            1,
            "{mode}: tenant A sees its row"
        );
        assert!(
            run.out.contains("row-level security is repaired first"),
            "{mode}: {}",
            run.out
        );
        assert_eq!(
            rls_of(&owner, &rel).await,
            (true, true, vec![POLICY.to_string()]),
            "{mode}"
        );
        assert_eq!(
            journal(&owner).await,
            vec![(
                format!("public.{EVENTS}"),
                "expire".into(),
                old.clone(),
                "retired".into()
            )],
            "{mode}: the retired table is watched"
        );
        let status = partwarden(&db, Some(&toml), &[], &["status"]);
        assert!(
            status.out.contains(&format!("retired (watched): {rel}")),
            "{mode}: {}",
            status.out
        );

        // Drift on the retired table later is reported and repaired.
        owner
            .execute(format!("ALTER TABLE {rel} NO FORCE ROW LEVEL SECURITY").as_str())
            .await
            .unwrap();
        let run = partwarden(&db, Some(&toml), &[], &["maintain", "--dry-run"]);
        assert!(
            run.out.contains(&format!(
                "sync row-level security of retired table {schema}.{old}"
            )),
            "{mode}: {}",
            run.out
        );
        let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
        assert_eq!(run.code, 0, "{mode}: {}", run.out);
        assert_eq!(
            rls_of(&owner, &rel).await,
            (true, true, vec![POLICY.to_string()]),
            "{mode}"
        );
    }
}

/// Issue 10.3: when the step after DETACH failed (a view depends on the partition), the
/// table stayed detached in the table's schema and every later run exited 0 with nothing
/// to say. With a default partition, DETACH and DROP are now one transaction: the
/// partition stays attached and every run reports the failure until it can be dropped.
#[tokio::test]
async fn an_expiry_that_cannot_drop_is_reported_until_it_can() {
    let db = TestDb::migrated("expire_view").await;
    let owner = db.owner_pool().await;
    let old = old_partition(&owner, 30).await;
    owner
        .execute(format!("CREATE VIEW keeps_it AS SELECT * FROM {old}").as_str())
        .await
        .unwrap();
    for round in 0..2 {
        let run = partwarden(&db, None, &[], &["maintain"]);
        assert_eq!(run.code, 1, "round {round}: {}", run.out);
        assert!(
            run.out.contains(&format!("FAILED  drop {old}")),
            "round {round}: {}",
            run.out
        );
        assert!(run.out.contains("depend"), "round {round}: {}", run.out);
        assert!(
            attached(&owner, EVENTS).await.contains(&old),
            "round {round}: the partition stays attached (nothing half done)"
        );
    }
    owner.execute("DROP VIEW keeps_it").await.unwrap();
    let run = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let gone: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NULL")
        .bind(&old)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(gone, "{}", run.out);
}

/// Issue 10.3, archive mode: no CREATE on a pre-created archive schema used to leave the
/// table detached in the table's schema, forgotten.
#[tokio::test]
async fn an_archive_without_privileges_is_reported_until_granted() {
    let db = TestDb::migrated("archive_denied").await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    su.execute(
        "CREATE SCHEMA partwarden_archive; GRANT USAGE ON SCHEMA partwarden_archive TO partwarden",
    )
    .await
    .unwrap();
    let old = old_partition(&owner, 30).await;
    let toml = format!("[[tables]]\nname = \"{EVENTS}\"\nretention_mode = \"archive\"\n");
    for round in 0..2 {
        let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
        assert_eq!(run.code, 1, "round {round}: {}", run.out);
        assert!(
            run.out.contains(&format!("FAILED  archive {old}")),
            "round {round}: {}",
            run.out
        );
        assert!(
            run.out.contains("permission denied"),
            "round {round}: {}",
            run.out
        );
        assert!(
            attached(&owner, EVENTS).await.contains(&old),
            "round {round}"
        );
    }
    su.execute("GRANT CREATE ON SCHEMA partwarden_archive TO partwarden")
        .await
        .unwrap();
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let archived: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("partwarden_archive.{old}"))
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(archived, "{}", run.out);
}

/// Without a default partition DETACH … CONCURRENTLY commits on its own before the DROP.
/// A failing DROP (a dependent view) and a run killed between the two both leave a
/// journal entry: later runs finish the expiry or say why they cannot.
#[tokio::test]
async fn a_concurrent_detach_is_finished_by_a_later_run() {
    let db = TestDb::migrated("detach_then_kill").await;
    let owner = db.owner_pool().await;
    owner
        .execute("DROP TABLE archon_ga4_events_default")
        .await
        .unwrap();
    let toml = format!("[[tables]]\nname = \"{EVENTS}\"\ndefault_partition = false\n");
    let viewed = old_partition(&owner, 31).await;
    owner
        .execute(format!("CREATE VIEW keeps_it AS SELECT * FROM {viewed}").as_str())
        .await
        .unwrap();
    // Run 1: it cannot be dropped (the view), after its DETACH committed.
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(!attached(&owner, EVENTS).await.contains(&viewed));
    assert_eq!(journal(&owner).await.len(), 1, "journaled: {}", run.out);
    let status = partwarden(&db, Some(&toml), &[], &["status"]);
    assert!(
        status.out.contains(&format!("expire {viewed} (detaching)"))
            && status.out.contains("unfinished since"),
        "status reports it: {}",
        status.out
    );
    // Run 2 says so again: finishing it is planned, and fails, naming the partition.
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out
            .contains(&format!("FAILED  finish expiring public.{viewed}")),
        "{}",
        run.out
    );
    owner.execute("DROP VIEW keeps_it").await.unwrap();
    let killed = old_partition(&owner, 30).await;

    // Run 3 is killed between the DETACH of the next one and its DROP.
    let (mut child, _) = start_until(
        &db,
        Some(&toml),
        &[("FAILPOINTS", "expire_after_detach=return(60000)")],
        &["maintain"],
        "fault point expire_after_detach reached",
        Duration::from_secs(60),
    );
    kill9(&mut child);
    let gone = |name: String| {
        let owner = owner.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NULL")
                .bind(name)
                .fetch_one(&owner)
                .await
                .unwrap()
        }
    };
    // Run 3 finished the first expiry before it was killed in the second.
    assert!(gone(viewed.clone()).await);
    assert!(!gone(killed.clone()).await, "killed before its DROP");
    assert!(!attached(&owner, EVENTS).await.contains(&killed));
    let run = partwarden(&db, Some(&toml), &[], &["maintain", "--dry-run"]);
    assert!(
        run.out
            .contains(&format!("finish expiring public.{killed}")),
        "{}",
        run.out
    );
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(gone(killed).await, "{}", run.out);
    assert_eq!(journal(&owner).await, vec![], "nothing left in the journal");
}

/// With a default partition the window between DETACH and DROP is inside one
/// transaction: a kill there rolls both back, and the next run expires the partition.
#[tokio::test]
async fn a_kill_between_detach_and_drop_rolls_back_with_a_default_partition() {
    let db = TestDb::migrated("detach_kill_default").await;
    let owner = db.owner_pool().await;
    let old = old_partition(&owner, 30).await;
    seed_rows(&owner, &old).await;
    let (mut child, _) = start_until(
        &db,
        None,
        &[("FAILPOINTS", "expire_after_detach=return(60000)")],
        &["maintain"],
        "fault point expire_after_detach reached",
        Duration::from_secs(60),
    );
    kill9(&mut child);
    // The server notices the dead client within a second and rolls back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !attached(&owner, EVENTS).await.contains(&old) {
        assert!(Instant::now() < deadline, "the DETACH was not rolled back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(!attached(&owner, EVENTS).await.contains(&old));
}

/// Issue 10.5: after kill -9, the server used to finish the orphaned backend's statement
/// (here a slow move of rows out of the default partition) while it held the maintenance
/// lock and its DDL locks, and the next run was refused as busy all that time. Sessions
/// now check their client every second (`client_connection_check_interval`): the
/// orphan is gone within seconds and the next run does the work.
#[tokio::test]
async fn a_killed_runs_backend_lets_go_at_once() {
    let db = TestDb::migrated("orphan_backend").await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    // Rows of next month wait in the default partition; deleting each takes 50 ms.
    let next = partwarden::calendar::Interval::Month.shift(
        partwarden::calendar::Interval::Month.floor(chrono::Utc::now()),
        1,
    );
    let name =
        partwarden::calendar::partition_name(EVENTS, partwarden::calendar::Interval::Month, next);
    owner
        .execute(format!("DROP TABLE {name}").as_str())
        .await
        .unwrap();
    for i in 0..200 {
        support::cli::insert_event(&owner, A, next + chrono::Duration::minutes(i))
            .await
            .unwrap();
    }
    su.execute(
        "CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(0.05); RETURN OLD; END $$;
         CREATE TRIGGER slow_delete BEFORE DELETE ON archon_ga4_events_default
           FOR EACH ROW EXECUTE FUNCTION slow_delete();",
    )
    .await
    .unwrap();
    let mut child = spawn(&db, None, &[], &["maintain"]);
    let orphan = wait_for_statement(&su, "WITH moved AS", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // well into the 10 s move
    kill9(&mut child);
    let killed = Instant::now();
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(orphan)
                .fetch_one(&su)
                .await
                .unwrap();
        if !alive {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(4),
            "the killed run's backend is still working after {:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    su.execute("DROP TRIGGER slow_delete ON archon_ga4_events_default")
        .await
        .unwrap();
    let run = partwarden(&db, None, &[], &["maintain", "--wait", "0s"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(run.out.contains("moved 200 row(s)"), "{}", run.out);
}

/// `n` events of tenant A with random 768-d embeddings in the partition of `at`.
async fn load_vectors(pool: &PgPool, at: chrono::DateTime<chrono::Utc>, n: i32) {
    let mut tx = support::tenant_tx(pool, A).await;
    sqlx::query(
        "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, embedding_768)
         SELECT $1::uuid, 'p', 'e', $2 + make_interval(secs => g),
                (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 768) WHERE g > 0)::vector
           FROM generate_series(1, $3) g",
    )
    .bind(A)
    .bind(at)
    .bind(n)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    pool.execute("ANALYZE archon_ga4_events").await.unwrap();
}

/// (name, valid, comment) of the vector indexes on `partition`.
async fn vector_indexes(pool: &PgPool, partition: &str) -> Vec<(String, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT ic.relname::text, i.indisvalid, obj_description(i.indexrelid, 'pg_class')
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = $1::regclass AND am.amname IN ('ivfflat', 'hnsw') ORDER BY 1",
    )
    .bind(partition)
    .fetch_all(pool)
    .await
    .unwrap()
}

const HNSW: &str = "[[tables]]\nname = \"archon_ga4_events\"\n[tables.vector_index]\nmethod = \"hnsw\"\nmin_rows = 1000\n";

/// Issue 10.4: a kill during a vector index build used to leave an index the orphaned
/// backend finished without its build record, "not built by partwarden; left alone"
/// forever (never rebuilt on growth or at close). Now the orphaned build is abandoned
/// (the backend checks its client) and rebuilt, and whatever finished is recorded.
#[tokio::test]
async fn a_vector_build_killed_midway_ends_built_and_recorded() {
    let db = TestDb::migrated("vector_kill").await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    let now = chrono::Utc::now();
    let partition = partwarden::calendar::partition_name(
        EVENTS,
        partwarden::calendar::Interval::Month,
        partwarden::calendar::Interval::Month.floor(now),
    );
    load_vectors(
        &owner,
        partwarden::calendar::Interval::Month.floor(now),
        6000,
    )
    .await;
    let mut child = spawn(&db, Some(HNSW), &[], &["maintain"]);
    wait_for_statement(&su, "CREATE INDEX CONCURRENTLY", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill9(&mut child);
    // Whatever the orphaned backend does, it is done within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let building: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'partwarden' AND state = 'active')",
        )
        .fetch_one(&su)
        .await
        .unwrap();
        if !building {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphaned build is still running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = partwarden(&db, Some(HNSW), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let idx = vector_indexes(&owner, &partition).await;
    assert_eq!(idx.len(), 1, "{idx:?}\n{}", run.out);
    assert!(idx[0].1, "valid: {idx:?}");
    assert!(
        idx[0]
            .2
            .as_deref()
            .is_some_and(|c| c.starts_with("partwarden: method=hnsw")),
        "built by partwarden, recorded: {idx:?}\n{}",
        run.out
    );
    assert_eq!(journal(&owner).await, vec![]);
}

/// The kill landing after the build finished and before its record was written: the
/// journal holds the record, the next run writes it.
#[tokio::test]
async fn a_vector_build_killed_before_its_record_is_adopted() {
    let db = TestDb::migrated("vector_adopt").await;
    let owner = db.owner_pool().await;
    let now = chrono::Utc::now();
    let from = partwarden::calendar::Interval::Month.floor(now);
    let partition =
        partwarden::calendar::partition_name(EVENTS, partwarden::calendar::Interval::Month, from);
    load_vectors(&owner, from, 1500).await;
    let (mut child, _) = start_until(
        &db,
        Some(HNSW),
        &[("FAILPOINTS", "vector_after_build=return(60000)")],
        &["maintain"],
        "fault point vector_after_build reached",
        Duration::from_secs(120),
    );
    kill9(&mut child);
    let idx = vector_indexes(&owner, &partition).await;
    assert!(
        idx.len() == 1 && idx[0].1 && idx[0].2.is_none(),
        "built, not recorded: {idx:?}"
    );
    let run = partwarden(&db, Some(HNSW), &[], &["maintain", "--dry-run"]);
    assert!(
        run.out
            .contains(&format!("record the build of vector index {}", idx[0].0)),
        "{}",
        run.out
    );
    let run = partwarden(&db, Some(HNSW), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let after = vector_indexes(&owner, &partition).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        after[0]
            .2
            .as_deref()
            .is_some_and(|c| c.starts_with("partwarden: method=hnsw")),
        "{after:?}"
    );
    assert_eq!(journal(&owner).await, vec![]);
}

/// Leaves `partition` "detach pending": a DETACH … CONCURRENTLY whose second phase is cut
/// off by lock_timeout while a reader holds an older snapshot.
async fn leave_detach_pending(db: &TestDb, partition: &str) {
    let owner = db.owner_pool().await;
    let mut reader = support::tenant_tx(&owner, A).await;
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM archon_ga4_events")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    let mut conn = sqlx::Connection::connect(&db.owner_url()).await.unwrap();
    let conn: &mut sqlx::PgConnection = &mut conn;
    conn.execute("SET lock_timeout = '300ms'").await.unwrap();
    let r = conn
        .execute(
            format!("ALTER TABLE archon_ga4_events DETACH PARTITION {partition} CONCURRENTLY")
                .as_str(),
        )
        .await;
    assert!(r.is_err(), "the detach should have been cut off");
    reader.commit().await.unwrap();
    let pending: bool = sqlx::query_scalar(
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = $1::regclass",
    )
    .bind(partition)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(pending);
}

/// A partition someone left "detach pending" is finalized by the next run — and then not
/// forgotten: within retention the detached table stays watched (reported by `status`,
/// its RLS kept the parent's); past retention its expiry follows in the same run.
#[tokio::test]
async fn a_detach_left_pending_is_finished_and_watched() {
    let db = TestDb::migrated("pending_watched").await;
    let owner = db.owner_pool().await;
    owner
        .execute("DROP TABLE archon_ga4_events_default")
        .await
        .unwrap();
    let toml = format!("[[tables]]\nname = \"{EVENTS}\"\ndefault_partition = false\n");
    let exists = |name: String| {
        let owner = owner.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                .bind(name)
                .fetch_one(&owner)
                .await
                .unwrap()
        }
    };
    // (PostgreSQL allows one pending detach per table at a time.)
    let kept = old_partition(&owner, 5).await;
    leave_detach_pending(&db, &kept).await;
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(!attached(&owner, EVENTS).await.contains(&kept));
    assert!(exists(kept.clone()).await, "within retention: kept");
    let old = old_partition(&owner, 30).await;
    leave_detach_pending(&db, &old).await;
    let run = partwarden(&db, Some(&toml), &[], &["maintain"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        !exists(old.clone()).await,
        "past retention: dropped: {}",
        run.out
    );
    assert_eq!(
        journal(&owner).await,
        vec![(
            format!("public.{EVENTS}"),
            "expire".into(),
            kept.clone(),
            "retired".into()
        )]
    );
    let status = partwarden(&db, Some(&toml), &[], &["status"]);
    assert!(
        status
            .out
            .contains(&format!("retired (watched): public.{kept}")),
        "{}",
        status.out
    );
    assert_eq!(
        rls_of(&owner, &kept).await,
        (true, true, vec![POLICY.to_string()])
    );
}
