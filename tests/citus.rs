//! partwarden on a Citus cluster: a coordinator and two workers (scripts/test-citus.sh,
//! which builds Citus from CITUS_SRC and starts them), the GA4 schema distributed by
//! `tenant_id` with `partwarden migrate --citus`, every test against the real cluster.
//!
//! These tests are `#[ignore]`d in the main run, where no Citus cluster exists:
//! scripts/test.sh runs them (`--ignored`) through scripts/test-citus.sh when CITUS_SRC is
//! set, and says loudly that it did not when it is not. Run without the cluster, each fails
//! saying what to start.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use partwarden::calendar::Interval;
use sqlx::PgPool;
use support::citus::{distributed_partitions, distribution, insert_events, on_placements, CitusDb};
use support::cli::partwarden_at;

const SHARDS: u32 = 4;
/// Tenants spread over the 4 shards (several per shard).
const TENANTS: [&str; 6] = [
    "00000000-0000-0000-0000-00000000000a",
    "00000000-0000-0000-0000-00000000000b",
    "00000000-0000-0000-0000-00000000000c",
    "00000000-0000-0000-0000-00000000000d",
    "00000000-0000-0000-0000-00000000000e",
    "00000000-0000-0000-0000-00000000000f",
];

fn month_start(months: i64) -> DateTime<Utc> {
    Interval::Month.shift(Interval::Month.floor(Utc::now()), months)
}

fn config(mode: &str, default_partition: bool, extra: &str) -> String {
    format!(
        r#"
[[tables]]
name = "archon_ga4_events"
interval = "month"
premake = 3
retention = "24 months"
retention_mode = "{mode}"
default_partition = {default_partition}
{extra}
"#
    )
}

fn maintain(db: &CitusDb, toml: &str) -> (i32, String) {
    let run = partwarden_at(&db.owner_url(), Some(toml), &[], &["maintain"]);
    (run.code, run.out)
}

/// The partition of the current month.
async fn current_partition(su: &PgPool) -> String {
    let suffix = month_start(0).format("%Y_%m").to_string();
    support::partitions(su)
        .await
        .into_iter()
        .find(|p| p.ends_with(&suffix))
        .expect("the current month's partition")
}

/// `rows` events of every tenant in the current month's partition (with embeddings when
/// `vectors`), analyzed through the coordinator (Citus analyzes every shard); its name.
async fn fill_current_month(owner: &PgPool, su: &PgPool, rows: i32, vectors: bool) -> String {
    let current = current_partition(su).await;
    for t in TENANTS {
        insert_events(
            su,
            t,
            month_start(0) + chrono::Duration::hours(1),
            rows,
            vectors,
        )
        .await;
    }
    sqlx::query(&format!("ANALYZE {current}"))
        .execute(owner)
        .await
        .unwrap();
    current
}

/// The JSON document `status --json` printed, before whatever the log printed after it.
fn json_document(out: &str) -> serde_json::Value {
    serde_json::Deserializer::from_str(out)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON document: {out}"))
}

/// The index (in `PW_TEST_CITUS_WORKER_URLS`) of the worker listening on `port`.
fn worker_on(db: &CitusDb, port: i32) -> usize {
    (0..support::citus::worker_admins().len())
        .find(|i| support::citus::host_port(&db.worker_url(*i, "postgres")).1 as i32 == port)
        .unwrap_or_else(|| panic!("no worker on port {port}"))
}

/// Rows per tenant through the coordinator, as the tenant sees them.
async fn counts(pool: &PgPool) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in TENANTS {
        let mut tx = support::citus::tenant_tx(pool, t).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM archon_ga4_events")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        out.push((t.to_string(), n));
    }
    out
}

/// The coordinator's own (local) heap of `rel`: a distributed table's is empty; rows there
/// would be a hidden copy.
async fn local_heap(pool: &PgPool, rel: &str) -> i64 {
    sqlx::query_scalar("SELECT pg_relation_size($1::regclass)")
        .bind(rel)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Rows of `rel` summed over its shards (as the superuser, no RLS).
async fn shard_rows(su: &PgPool, rel: &str) -> i64 {
    on_placements(su, rel, "SELECT count(*) FROM %1$s")
        .await
        .iter()
        .map(|(_, _, r)| r.parse::<i64>().unwrap())
        .sum()
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn migrate_citus_distributes_the_ga4_schema_and_the_sql_api_works_on_the_coordinator() {
    let db = CitusDb::empty("citus_migrate").await;
    let owner_url = db.owner_url();
    let run = partwarden_at(&owner_url, None, &[], &["migrate"]);
    assert_eq!(run.code, 0, "{}", run.out);
    // Rows already there are carried to the shards.
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    insert_events(
        &su,
        TENANTS[0],
        Utc::now() - chrono::Duration::hours(1),
        50,
        false,
    )
    .await;
    let run = partwarden_at(
        &owner_url,
        None,
        &[],
        &["migrate", "--citus", "--shard-count", "4"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.contains("archon_ga4_events: primary key (id, event_timestamp) -> (tenant_id, id, event_timestamp)")
            && run.out.contains("archon_ga4_daily_summaries: distributed by tenant_id, colocated with archon_ga4_events"),
        "{}",
        run.out
    );
    let (events, shards) = distribution(&su, "archon_ga4_events").await;
    assert_eq!(shards, 4);
    assert_eq!(
        distribution(&su, "archon_ga4_daily_summaries").await,
        (events, 4)
    );
    for (p, coloc, n, col) in distributed_partitions(&su, "archon_ga4_events").await {
        assert_eq!((coloc, n, col.as_str()), (events, 4, "tenant_id"), "{p}");
    }
    let pk: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'archon_ga4_events'::regclass AND contype = 'p'",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(pk, "PRIMARY KEY (tenant_id, id, event_timestamp)");
    let current = current_partition(&su).await;
    assert_eq!(shard_rows(&su, &current).await, 50);
    assert_eq!(
        local_heap(&su, &current).await,
        0,
        "rows left on the coordinator"
    );
    assert_eq!(counts(&owner).await[0].1, 50);
    // RLS forced again (it was lifted for Citus's copy).
    let forced: Vec<bool> = sqlx::query_scalar(
        "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'archon_ga4_events'::regclass
          OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass)",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(forced.iter().all(|f| *f), "{forced:?}");

    // Again: nothing to do, said so.
    let run = partwarden_at(&owner_url, None, &[], &["migrate", "--citus"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out
            .contains("archon_ga4_events: already distributed by tenant_id"),
        "{}",
        run.out
    );

    // The SQL API on the coordinator: new partitions distributed and colocated, rows
    // moved out of the default partition, statistics from the shards, old ones dropped.
    let far = month_start(6);
    insert_events(&su, TENANTS[1], far + chrono::Duration::days(2), 30, false).await;
    let made: Vec<(String, String)> =
        sqlx::query_as("SELECT partition_name, status FROM ensure_ga4_partitions_exist(6)")
            .fetch_all(&owner)
            .await
            .unwrap();
    let last = made.last().unwrap();
    assert!(
        last.1.contains("moved 30 rows from the default partition"),
        "{made:?}"
    );
    assert_eq!(distribution(&su, &last.0).await, (events, 4));
    assert_eq!(shard_rows(&su, &last.0).await, 30);
    assert_eq!(shard_rows(&su, "archon_ga4_events_default").await, 0);
    sqlx::query("ANALYZE archon_ga4_events")
        .execute(&owner)
        .await
        .unwrap();
    let stats: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT partition_name, row_count, size_bytes FROM get_ga4_partition_stats()",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    let of = |name: &str| stats.iter().find(|s| s.0 == name).unwrap().clone();
    assert_eq!(of(&current).1, Some(50), "{stats:?}");
    assert_eq!(of(&last.0).1, Some(30), "{stats:?}");
    let local_total: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
        .bind(&current)
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(
        of(&current).2 > local_total,
        "sizes are the coordinator's: {stats:?}"
    );
    let old = month_start(-30).date_naive();
    let r: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
        .bind(old)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(r.starts_with("Successfully created"), "{r}");
    let dropped: Vec<String> =
        sqlx::query_scalar("SELECT partition_name FROM drop_old_ga4_partitions(24)")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = $1")
            .bind(&dropped[0])
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(
        left, 0,
        "the dropped partition is still in Citus's metadata"
    );
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn migrate_citus_refuses_where_it_cannot_distribute() {
    // No citus extension in the database.
    let plain =
        support::citus::url_with(&support::citus::coordinator_admin(), "postgres", "postgres");
    let name = format!("pw_citus_none_{}", std::process::id());
    let admin = support::pool(&plain).await;
    sqlx::query(&format!("CREATE DATABASE {name} OWNER partwarden"))
        .execute(&admin)
        .await
        .unwrap();
    let su = support::pool(&support::citus::url_with(&plain, "postgres", &name)).await;
    sqlx::query("CREATE EXTENSION vector")
        .execute(&su)
        .await
        .unwrap();
    let url = support::citus::url_with(&plain, "partwarden", &name);
    let run = partwarden_at(&url, None, &[], &["migrate", "--citus"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains(&format!(
            "citus: the citus extension is not in database \"{name}\""
        )),
        "{}",
        run.out
    );
    // --shard-count without --citus, and out of range: usage errors, nothing done.
    let run = partwarden_at(&url, None, &[], &["migrate", "--shard-count", "4"]);
    assert_eq!(run.code, 2, "{}", run.out);
    assert!(run.out.contains("--citus"), "{}", run.out);
    let run = partwarden_at(
        &url,
        None,
        &[],
        &["migrate", "--citus", "--shard-count", "0"],
    );
    assert_eq!(run.code, 2, "{}", run.out);

    // On a worker: refused, pointing at the coordinator.
    let db = CitusDb::distributed("citus_on_worker", SHARDS).await;
    // With and without --citus: the migrations themselves fail on a worker with Citus's
    // "operation is not allowed on this node".
    for args in [&["migrate", "--citus"][..], &["migrate"][..]] {
        let run = partwarden_at(&db.worker_url(0, "partwarden"), None, &[], args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.out);
        assert!(
            run.out.contains("is on a Citus worker: run `partwarden migrate` (and `migrate --citus`) against the coordinator"),
            "{args:?}: {}",
            run.out
        );
    }
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn premake_distributes_and_colocates_and_moves_rows_out_of_the_default_partition_under_load()
{
    let db = CitusDb::distributed("citus_premake", SHARDS).await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    support::cli::grant_app(&owner, "public").await;
    let (colocation, _) = distribution(&su, "archon_ga4_events").await;
    let future = support::drop_future_partitions(&owner).await;
    // Rows of two of the dropped months wait in the default partition, every tenant.
    for (k, t) in TENANTS.iter().enumerate() {
        insert_events(
            &su,
            t,
            month_start(2) + chrono::Duration::hours(k as i64),
            20,
            false,
        )
        .await;
        insert_events(
            &su,
            t,
            month_start(3) + chrono::Duration::hours(k as i64),
            10,
            false,
        )
        .await;
    }
    assert_eq!(shard_rows(&su, "archon_ga4_events_default").await, 180);
    let before = counts(&owner).await;

    // The application writes through the coordinator meanwhile (current month).
    let app = support::pool_sized(&db.url("app_user"), 4).await;
    let writers = Writers::start(&app, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let toml = config("drop", true, "");
    let (code, out) = tokio::task::spawn_blocking({
        let toml = toml.clone();
        let db = CitusDb {
            name: db.name.clone(),
        };
        move || maintain(&db, &toml)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = writers.stop().await;
    assert_eq!(code, 0, "{out}");
    assert!(
        report.rejected.is_empty(),
        "inserts failed during maintenance: {:?}",
        &report.rejected[..report.rejected.len().min(3)]
    );
    assert!(!report.acknowledged.is_empty());
    assert!(
        out.contains("moved 120 row(s) from the default partition")
            && out.contains("moved 60 row(s) from the default partition"),
        "{out}"
    );

    // Every new partition distributed by tenant_id, colocated with the parent, 4 shards;
    // the moved rows on the shards, none left on the coordinator or in the default.
    let parts = distributed_partitions(&su, "archon_ga4_events").await;
    for name in &future {
        let (_, coloc, n, col) = parts
            .iter()
            .find(|p| &p.0 == name)
            .unwrap_or_else(|| panic!("{name} not created: {parts:?}"));
        assert_eq!(
            (*coloc, *n, col.as_str()),
            (colocation, 4, "tenant_id"),
            "{name}"
        );
        assert_eq!(
            local_heap(&su, name).await,
            0,
            "{name} keeps rows on the coordinator"
        );
    }
    assert_eq!(shard_rows(&su, &future[1]).await, 120);
    assert_eq!(shard_rows(&su, &future[2]).await, 60);
    assert_eq!(shard_rows(&su, "archon_ga4_events_default").await, 0);
    let after = counts(&owner).await;
    for ((t, b), (_, a)) in before.iter().zip(&after) {
        let written = report.acknowledged.iter().filter(|(w, _)| w == t).count() as i64;
        assert_eq!(*a, b + written, "tenant {t}: rows lost or duplicated");
    }
    // Nothing left to do.
    let (code, out) = maintain(&db, &toml);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 action(s)"), "{out}");
}

/// The application's writers through the coordinator, one tenant each, inserting events
/// of the current month as fast as they can, the tenant set as on Citus it must be.
struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<WriterReport>>,
}

#[derive(Default)]
struct WriterReport {
    acknowledged: Vec<(String, i64)>,
    rejected: Vec<String>,
}

/// One event of `tenant` now, committed, as the application inserts it on Citus.
async fn insert_one(pool: &PgPool, tenant: &str) -> Result<i64, sqlx::Error> {
    let tenant_id: uuid::Uuid = tenant.parse().expect("a tenant is a uuid");
    let mut tx = pool.begin().await?;
    let set = format!("SET LOCAL app.current_tenant_id = '{tenant_id}'");
    sqlx::query(&set).execute(&mut *tx).await?;
    let id: i64 = sqlx::query_scalar(support::cli::INSERT_EVENT)
        .bind(tenant)
        .bind(Utc::now())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

impl Writers {
    fn start(pool: &PgPool, n: usize) -> Writers {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..n)
            .map(|w| {
                let (pool, stop, tenant) = (pool.clone(), stop.clone(), TENANTS[w % TENANTS.len()]);
                tokio::spawn(async move {
                    let mut r = WriterReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        match insert_one(&pool, tenant).await {
                            Ok(id) => r.acknowledged.push((tenant.to_string(), id)),
                            Err(e) => r.rejected.push(e.to_string()),
                        }
                    }
                    r
                })
            })
            .collect();
        Writers { stop, tasks }
    }

    async fn stop(self) -> WriterReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = WriterReport::default();
        for t in self.tasks {
            let r = t.await.unwrap();
            all.acknowledged.extend(r.acknowledged);
            all.rejected.extend(r.rejected);
        }
        all
    }
}

/// One expired partition of 60 rows per test case, and its partition name.
async fn expired_partition(owner: &PgPool, su: &PgPool) -> String {
    let from = month_start(-30);
    let made: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
        .bind(from.date_naive())
        .fetch_one(owner)
        .await
        .unwrap();
    assert!(made.starts_with("Successfully"), "{made}");
    for t in &TENANTS[..3] {
        insert_events(su, t, from + chrono::Duration::days(1), 20, false).await;
    }
    format!("archon_ga4_events_{}", from.format("%Y_%m"))
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn retention_in_every_mode_with_and_without_a_default_partition() {
    let store = support::cli::scratch_dir("citus-export");
    for (mode, with_default) in [
        ("drop", true),
        ("drop", false),
        ("detach", true),
        ("detach", false),
        ("archive", true),
        ("archive", false),
        ("export", true),
        ("export", false),
    ] {
        let case = format!("{mode}, default partition {with_default}");
        let db = CitusDb::distributed(&format!("citus_ret_{mode}"), SHARDS).await;
        let owner = db.owner_pool().await;
        let su = db.superuser_pool().await;
        if !with_default {
            sqlx::query("DROP TABLE archon_ga4_events_default")
                .execute(&owner)
                .await
                .unwrap();
        }
        let old = expired_partition(&owner, &su).await;
        let extra = if mode == "export" {
            format!("[export]\nurl = \"file://{}\"\n", store.path().display())
        } else {
            String::new()
        };
        let (code, out) = maintain(&db, &config(mode, with_default, &extra));
        assert_eq!(code, 0, "{case}: {out}");
        let attached = support::partitions(&su).await;
        assert!(
            !attached.iter().any(|p| p == &old),
            "{case}: still attached: {out}"
        );
        // Nothing unfinished; a detached table stays watched ("retired"), as on PostgreSQL.
        let journal = support::cli::journal(&owner).await;
        let retired = usize::from(mode == "detach" || mode == "archive");
        assert!(
            journal.len() == retired && journal.iter().all(|j| j.3 == "retired"),
            "{case}: journal {journal:?}"
        );
        let where_now: Option<String> = sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1",
        )
        .bind(&old)
        .fetch_optional(&su)
        .await
        .unwrap();
        let in_metadata: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid WHERE c.relname = $1",
        )
        .bind(&old)
        .fetch_one(&su)
        .await
        .unwrap();
        match mode {
            "drop" | "export" => {
                assert_eq!(where_now, None, "{case}: not dropped");
                assert_eq!(in_metadata, 0, "{case}: shards left in Citus's metadata");
            }
            "detach" | "archive" => {
                let schema = if mode == "detach" {
                    "public"
                } else {
                    "partwarden_archive"
                };
                assert_eq!(where_now.as_deref(), Some(schema), "{case}");
                assert_eq!(in_metadata, 1, "{case}: the kept table is not distributed");
                let kept = format!("{schema}.{old}");
                assert_eq!(shard_rows(&su, &kept).await, 60, "{case}");
                // Kept with the parent's RLS on every shard.
                for (_, shard, r) in on_placements(
                    &su,
                    &kept,
                    "SELECT relforcerowsecurity::text FROM pg_class WHERE oid = '%1$s'::regclass",
                )
                .await
                {
                    assert_eq!(r, "true", "{case}: shard {shard}");
                }
            }
            _ => unreachable!(),
        }
        // Without a default partition too: DETACH … CONCURRENTLY, which Citus refuses, is
        // not tried (the run would have failed); the sizes are the shards'.
        assert!(
            out.contains("(60 rows") || out.contains("rows, "),
            "{case}: {out}"
        );
        assert!(
            !out.contains("(0 rows"),
            "{case}: the coordinator's sizes: {out}"
        );
        if mode == "export" {
            let (rows, manifest): (i64, String) = sqlx::query_as(
                "SELECT row_count, store_url FROM partwarden_exports WHERE partition_name = $1",
            )
            .bind(&old)
            .fetch_one(&owner)
            .await
            .unwrap_or_else(|e| panic!("{case}: no export recorded: {e}\n{out}"));
            assert_eq!(rows, 60, "{case}");
            assert!(manifest.starts_with("file://"), "{manifest}");
            // And back: distributed and colocated like a new partition, every row, the
            // parent's RLS on every shard.
            let run = partwarden_at(
                &db.owner_url(),
                Some(&config(mode, with_default, &extra)),
                &[],
                &[
                    "restore",
                    "--table",
                    "archon_ga4_events",
                    "--partition",
                    &old,
                ],
            );
            assert_eq!(run.code, 0, "{case}: restore: {}", run.out);
            assert!(
                support::partitions(&su).await.contains(&old),
                "{case}: not attached: {}",
                run.out
            );
            let (colocation, _) = distribution(&su, "archon_ga4_events").await;
            assert_eq!(distribution(&su, &old).await, (colocation, 4), "{case}");
            assert_eq!(shard_rows(&su, &old).await, 60, "{case}");
            assert_eq!(
                local_heap(&su, &old).await,
                0,
                "{case}: rows left on the coordinator"
            );
            for (_, shard, r) in on_placements(
                &su,
                &old,
                "SELECT relforcerowsecurity::text FROM pg_class WHERE oid = '%1$s'::regclass",
            )
            .await
            {
                assert_eq!(r, "true", "{case}: restored shard {shard}");
            }
        }
        // Nothing left to do.
        let (code, out) = maintain(&db, &config(mode, with_default, &extra));
        assert_eq!(code, 0, "{case}: {out}");
        assert!(out.contains("0 action(s)"), "{case}: {out}");
    }
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn parent_indexes_and_the_ivfflat_index_are_valid_on_every_shard_and_an_invalid_shard_index_is_rebuilt(
) {
    let db = CitusDb::distributed("citus_indexes", SHARDS).await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    let current = fill_current_month(&owner, &su, 400, true).await;
    let toml = config(
        "drop",
        true,
        "[tables.vector_index]\ncolumn = \"embedding_768\"\nmethod = \"ivfflat\"\nopclass = \"vector_cosine_ops\"\nmin_rows = 1000\nlists = \"auto\"\n",
    );
    let (code, out) = maintain(&db, &toml);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("build ivfflat index")
            && out.contains("2400 vectors (600 per shard on 4 shards)"),
        "{out}"
    );
    let parent_indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'archon_ga4_events'::regclass",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(
        parent_indexes, 6,
        "the primary key and the five indexes of the seed"
    );
    let shard_indexes = |rel: String| {
        let su = su.clone();
        async move {
            on_placements(
                &su,
                &rel,
                "SELECT count(*) FILTER (WHERE i.indisvalid) || '/' || count(*) || '/' ||
                        count(*) FILTER (WHERE am.amname = 'ivfflat' AND i.indisvalid)
                   FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                  WHERE i.indrelid = '%1$s'::regclass",
            )
            .await
        }
    };
    for (port, shard, r) in shard_indexes(current.clone()).await {
        assert_eq!(
            r, "7/7/1",
            "shard {shard} on {port}: valid/all/valid ivfflat"
        );
    }
    // Every other partition has the parent's six on every shard (no vector index: empty).
    for p in support::partitions(&su)
        .await
        .into_iter()
        .filter(|p| p != &current)
    {
        for (port, shard, r) in shard_indexes(p.clone()).await {
            assert_eq!(r, "6/6/0", "{p}: shard {shard} on {port}");
        }
    }
    let again = maintain(&db, &toml);
    assert!(again.1.contains("0 action(s)"), "{}", again.1);

    // One shard's copy of a parent index goes INVALID on its worker (as a failed
    // CREATE INDEX CONCURRENTLY leaves it): the coordinator's index still reads valid;
    // partwarden sees it through the shards and rebuilds it, through the coordinator.
    let (port, shard, _) = shard_indexes(current.clone()).await[0].clone();
    let idx: String = sqlx::query_scalar(
        "SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1::regclass AND ic.relname LIKE '%tenant_id_event_timestamp%'",
    )
    .bind(&current)
    .fetch_one(&su)
    .await
    .unwrap();
    let worker = worker_on(&db, port);
    let wsu = db.worker_pool(worker, "postgres").await;
    let broken = sqlx::query(&format!(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass('{idx}_{shard}')"
    ))
    .execute(&wsu)
    .await
    .unwrap();
    assert_eq!(
        broken.rows_affected(),
        1,
        "{idx}_{shard} not found on the worker"
    );
    let status = partwarden_at(&db.owner_url(), Some(&toml), &[], &["status", "--json"]);
    let doc: serde_json::Value = json_document(&status.out);
    let seen = doc["tables"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition_name"] == current.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (
            seen["indexes_invalid"].as_i64(),
            seen["indexes_valid"].as_i64()
        ),
        (Some(1), Some(5)),
        "the shard's INVALID index is not seen: {seen}"
    );
    let (code, out) = maintain(&db, &toml);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&idx), "no rebuild of {idx}: {out}");
    for (port, shard, r) in shard_indexes(current.clone()).await {
        assert_eq!(r, "7/7/1", "after the rebuild: shard {shard} on {port}");
    }
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn rls_is_forced_with_the_parents_policy_on_every_shard_placement() {
    let db = CitusDb::distributed("citus_rls", SHARDS).await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    support::drop_future_partitions(&owner).await;
    let (code, out) = maintain(&db, &config("drop", true, ""));
    assert_eq!(code, 0, "{out}");
    support::cli::grant_app(&owner, "public").await;
    let next = month_start(1);
    for t in TENANTS {
        insert_events(&su, t, next + chrono::Duration::hours(2), 5, false).await;
    }
    let policy: String = sqlx::query_scalar(
        "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'archon_ga4_events'::regclass",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    for p in support::partitions(&su).await {
        for (port, shard, r) in on_placements(
            &su,
            &p,
            "SELECT c.relrowsecurity || '/' || c.relforcerowsecurity || '/' ||
                    (SELECT string_agg(polname || ':' || polcmd::text || ':' || pg_get_expr(polqual, polrelid) || ':' || pg_get_expr(polwithcheck, polrelid), ',')
                       FROM pg_policy WHERE polrelid = c.oid)
               FROM pg_class c WHERE c.oid = '%1$s'::regclass",
        )
        .await
        {
            assert_eq!(
                r,
                format!("true/true/Tenant isolation for GA4 events:*:{policy}:{policy}"),
                "{p}: shard {shard} on {port}"
            );
        }
    }
    // Tenant A through the coordinator, and directly on a worker's shard, sees only A.
    let app = support::pool(&db.url("app_user")).await;
    let a = TENANTS[0];
    let mut tx = support::citus::tenant_tx(&app, a).await;
    let seen: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tenant_id::text FROM archon_ga4_events")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seen, vec![a.to_string()]);
    let p = format!("archon_ga4_events_{}", next.format("%Y_%m"));
    let placements = on_placements(&su, &p, "SELECT count(*) FROM %1$s").await;
    let mut seen_direct = 0;
    for (port, shard, rows) in placements {
        let worker = worker_on(&db, port);
        let shard_table = format!("{p}_{shard}");
        let wsu = db.worker_pool(worker, "postgres").await;
        sqlx::query(&format!("GRANT SELECT ON {shard_table} TO app_user"))
            .execute(&wsu)
            .await
            .unwrap();
        let wapp = db.worker_pool(worker, "app_user").await;
        let none: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {shard_table}"))
            .fetch_one(&wapp)
            .await
            .unwrap();
        assert_eq!(
            none, 0,
            "{shard_table}: rows visible on the worker without a tenant (of {rows})"
        );
        let mut tx = support::citus::tenant_tx(&wapp, a).await;
        let tenants: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT tenant_id::text FROM {shard_table}"
        ))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(tenants.iter().all(|t| t == a), "{shard_table}: {tenants:?}");
        seen_direct += tenants.len();
    }
    assert_eq!(seen_direct, 1, "tenant A's rows are on exactly one shard");
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn statistics_and_metrics_come_from_the_shards_and_one_daemon_leads() {
    use support::daemon::{sample, wait_for, Daemon};
    let db = CitusDb::distributed("citus_stats", SHARDS).await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    let current = fill_current_month(&owner, &su, 500, false).await;
    let (local_rows, local_bytes): (f32, i64) = sqlx::query_as(
        "SELECT reltuples, pg_total_relation_size(oid) FROM pg_class WHERE oid = $1::regclass",
    )
    .bind(&current)
    .fetch_one(&su)
    .await
    .unwrap();
    assert!(
        local_rows <= 0.0,
        "the coordinator's shell has rows: {local_rows}"
    );
    let citus_bytes: i64 = sqlx::query_scalar("SELECT citus_total_relation_size($1::regclass)")
        .bind(&current)
        .fetch_one(&su)
        .await
        .unwrap();

    let st = partwarden_at(&db.owner_url(), None, &[], &["status", "--json"]);
    assert_eq!(st.code, 0, "{}", st.out);
    // The document, then whatever the log printed after it.
    let doc: serde_json::Value = json_document(&st.out);
    let parts = doc.to_string();
    let find = |v: &serde_json::Value| -> Option<serde_json::Value> {
        fn walk(v: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
            match v {
                serde_json::Value::Object(m) => {
                    if m.get("partition_name").and_then(|n| n.as_str()) == Some(name) {
                        return Some(v.clone());
                    }
                    m.values().find_map(|x| walk(x, name))
                }
                serde_json::Value::Array(a) => a.iter().find_map(|x| walk(x, name)),
                _ => None,
            }
        }
        walk(v, &current)
    };
    let p = find(&doc).unwrap_or_else(|| panic!("{current} not in status --json: {parts}"));
    assert_eq!(p["row_count"].as_i64(), Some(3000), "{p}");
    assert_eq!(p["size_bytes"].as_i64(), Some(citus_bytes), "{p}");
    assert!(
        citus_bytes > local_bytes,
        "{citus_bytes} vs the coordinator's {local_bytes}"
    );

    // Two daemons against the coordinator: one leads; the metrics are the shards'.
    let env = vec![("DATABASE_URL", db.owner_url())];
    let a = Daemon::start(&env, None);
    let b = Daemon::start(&env, None);
    let leaders = wait_for(Duration::from_secs(30), "one leader", || {
        let l: Vec<f64> = [&a, &b]
            .iter()
            .map(|d| sample(&d.metrics(), "partwarden_leader").unwrap_or(-1.0))
            .collect();
        (l.iter().sum::<f64>() == 1.0 && l.iter().all(|v| *v >= 0.0)).then_some(l)
    });
    assert_eq!(leaders.iter().filter(|l| **l == 1.0).count(), 1);
    let series = format!(
        "partwarden_partition_rows{{table=\"public.archon_ga4_events\",partition=\"{current}\"}}"
    );
    for d in [&a, &b] {
        d.wait_metric(&series, Duration::from_secs(30), |v| v == 3000.0);
        let m = d.metrics();
        let size = sample(&m, &format!("partwarden_partition_size_bytes{{table=\"public.archon_ga4_events\",partition=\"{current}\"}}"));
        assert_eq!(size, Some(citus_bytes as f64), "{m}");
        assert_eq!(
            sample(
                &m,
                "partwarden_table_rows{table=\"public.archon_ga4_events\"}"
            ),
            Some(3000.0)
        );
    }
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn what_partwarden_does_not_maintain_on_citus_is_refused_without_ddl() {
    let db = CitusDb::distributed("citus_refuse", SHARDS).await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    // A Citus local table: partitioned, in Citus's metadata, not distributed.
    sqlx::raw_sql(
        "CREATE TABLE local_events (tenant_id uuid NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
         SELECT citus_add_local_table_to_metadata('local_events');",
    )
    .execute(&owner)
    .await
    .unwrap();
    // A reference table partitioned by time is not something Citus allows; a
    // distributed one that is append-distributed neither is partitioned: the local
    // table stands for "in the metadata, not hash-distributed".
    let toml = r#"
[[tables]]
name = "local_events"
column = "at"
interval = "month"
premake = 2
retention = "24 months"
default_partition = false
"#;
    let run = partwarden_at(&db.owner_url(), Some(toml), &[], &["maintain"]);
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out
            .contains("public.local_events is a Citus local or single-shard table")
            && run
                .out
                .contains("partwarden maintains hash-distributed tables"),
        "{}",
        run.out
    );
    let made: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'local_events'::regclass",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(made, 0, "DDL done anyway");

    // Pointed at a worker (metadata synced: the tables are there): refused, naming why.
    support::drop_future_partitions(&owner).await;
    let run = partwarden_at(
        &db.worker_url(1, "partwarden"),
        Some(&config("drop", true, "")),
        &[],
        &["maintain"],
    );
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.contains("this is a Citus worker node") && run.out.contains("coordinator"),
        "{}",
        run.out
    );
    let parts = support::partitions(&su).await;
    assert_eq!(parts.len(), 2, "DDL done from the worker: {parts:?}");
}

#[tokio::test]
#[ignore = "Citus suite: scripts/test-citus.sh (CITUS_SRC)"]
async fn backfill_counts_the_default_partition_on_the_shards_and_moves_its_past_months_out() {
    let db = CitusDb::distributed("citus_backfill", SHARDS).await;
    let su = db.superuser_pool().await;
    // Rows of two past months with no partition wait in the default partition.
    for (k, t) in TENANTS.iter().enumerate() {
        insert_events(
            &su,
            t,
            month_start(-2) + chrono::Duration::hours(k as i64),
            7,
            false,
        )
        .await;
        insert_events(
            &su,
            t,
            month_start(-4) + chrono::Duration::hours(k as i64),
            3,
            false,
        )
        .await;
    }
    let toml = config("drop", true, "");
    let dry = partwarden_at(
        &db.owner_url(),
        Some(&toml),
        &[],
        &["maintain", "--backfill", "--dry-run"],
    );
    assert_eq!(dry.code, 0, "{}", dry.out);
    assert!(
        dry.out.contains("--backfill: 42 row(s)") && dry.out.contains("--backfill: 18 row(s)"),
        "the census counts the rows on the shards: {}",
        dry.out
    );
    let run = partwarden_at(
        &db.owner_url(),
        Some(&toml),
        &[],
        &["maintain", "--backfill"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let (colocation, _) = distribution(&su, "archon_ga4_events").await;
    for (months, rows) in [(-2, 42), (-4, 18)] {
        let name = format!("archon_ga4_events_{}", month_start(months).format("%Y_%m"));
        assert_eq!(
            distribution(&su, &name).await,
            (colocation, 4),
            "{name}: {}",
            run.out
        );
        assert_eq!(shard_rows(&su, &name).await, rows, "{name}");
        assert_eq!(
            local_heap(&su, &name).await,
            0,
            "{name}: rows on the coordinator"
        );
    }
    assert_eq!(shard_rows(&su, "archon_ga4_events_default").await, 0);
}
