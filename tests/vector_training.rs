//! Issue 12, items 3 and 4: vector indexes are planned from the vectors a partition holds
//! (rows whose embedding is not NULL, counted from the column's statistics), not from its
//! rows; pgvector's notices of a build reach the log as warnings; and an index someone is
//! building (INVALID until the build ends) is reported as building, never dropped.
mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use partwarden::calendar::{partition_name, Interval};
use sqlx::{Executor, PgPool};
use support::cli::run_with_config as run;
use support::daemon::{sample, Daemon};
use support::TestDb;

const A: &str = "00000000-0000-0000-0000-00000000000a";
const T: &str = "table=\"public.archon_ga4_events\"";

fn policy(extra: &str) -> String {
    format!("[[tables]]\nname = \"archon_ga4_events\"\n[tables.vector_index]\ncolumn = \"embedding_768\"\nmin_rows = 1000\n{extra}\n")
}

fn status_json(db: &TestDb, toml: &str) -> serde_json::Value {
    let (code, out) = run(db, toml, &["status", "--json"]);
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect(&out);
    doc["tables"][0].clone()
}

/// The current month's partition and its lower bound.
fn current() -> (String, DateTime<Utc>) {
    let from = Interval::Month.floor(Utc::now());
    (
        partition_name("archon_ga4_events", Interval::Month, from),
        from,
    )
}

/// A random 768-d vector per row: the subquery refers to the row, so it is drawn anew.
const RANDOM_VECTOR: &str =
    "(SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 768) WHERE ROW_REF > 0)::vector";

/// `n` events of tenant A one second apart from `at` + 1 h, with a random embedding or
/// with none (NULL, to be back-filled).
async fn insert(pool: &PgPool, at: DateTime<Utc>, n: i32, with_vectors: bool) {
    let embedding = if with_vectors {
        RANDOM_VECTOR.replace("ROW_REF", "g")
    } else {
        "NULL::vector".to_string()
    };
    let mut tx = support::tenant_tx(pool, A).await;
    sqlx::query(&format!(
        "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, embedding_768)
         SELECT $1::uuid, 'p', 'e', $2 + interval '1 hour' + make_interval(secs => g), {embedding}
           FROM generate_series(1, $3::int) g"
    ))
    .bind(A)
    .bind(at)
    .bind(n)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Gives `n` rows of `partition` whose embedding is NULL one (the back-fill), or takes
/// every row's away when `n` is 0.
async fn set_embeddings(pool: &PgPool, partition: &str, n: i64) {
    let sql = if n == 0 {
        format!("UPDATE {partition} SET embedding_768 = NULL")
    } else {
        format!(
            "UPDATE {partition} e SET embedding_768 = {}
              WHERE e.id IN (SELECT id FROM {partition} WHERE embedding_768 IS NULL ORDER BY id LIMIT {n})",
            RANDOM_VECTOR.replace("ROW_REF", "e.id")
        )
    };
    let mut tx = support::tenant_tx(pool, A).await;
    tx.execute(sql.as_str()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn analyze(pool: &PgPool, partition: &str) {
    pool.execute(format!("ANALYZE {partition}").as_str())
        .await
        .unwrap();
}

/// (name, valid, comment) of the vector indexes of a partition.
async fn vector_indexes(pool: &PgPool, partition: &str) -> Vec<(String, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid, obj_description(c.oid, 'pg_class')
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
          WHERE i.indrelid = $1::regclass AND am.amname IN ('ivfflat', 'hnsw') ORDER BY 1",
    )
    .bind(partition)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn lists_of(pool: &PgPool, index: &str) -> String {
    sqlx::query_scalar("SELECT pg_get_indexdef($1::regclass)")
        .bind(index)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_without_vectors_get_no_index_until_the_vectors_arrive() {
    let db = TestDb::migrated("vt_nulls").await;
    let pool = db.owner_pool().await;
    let (part, from) = current();
    let toml = policy("");
    // 3a: min_rows rows, none with an embedding, analyzed.
    insert(&pool, from, 3500, false).await;
    analyze(&pool, &part).await;
    let (code, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("build ivfflat"), "{out}");
    assert!(
        out.contains(&format!(
            "{part}: 3500 rows but no vector index: only 0 of them have a vector (embedding_768 not NULL), below min_rows 1000"
        )),
        "{out}"
    );
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    assert!(vector_indexes(&pool, &part).await.is_empty(), "{out}");
    let t = status_json(&db, &toml);
    assert_eq!(t["vector_indexes_missing"], 0, "{t}");

    // 3b: 2,500 of them back-filled: lists from the 2,500 vectors, not the 3,500 rows.
    set_embeddings(&pool, &part, 2500).await;
    analyze(&pool, &part).await;
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    let index = format!("{part}_embedding_768_ivf_g1");
    assert!(
        out.contains(&format!(
            "build ivfflat index {index} on {part} (lists = 2)"
        )),
        "{out}"
    );
    assert!(
        out.contains("2500 of 3500 rows have a vector (embedding_768 not NULL), ≥ min_rows 1000"),
        "{out}"
    );
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    let idx = vector_indexes(&pool, &part).await;
    assert_eq!(
        idx,
        vec![(
            index.clone(),
            true,
            Some(
                "partwarden: method=ivfflat lists=2 rows=3500 vectors=2500 closed=false gen=1"
                    .into()
            )
        )]
    );
    assert!(lists_of(&pool, &index).await.contains("(lists='2')"));
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert!(out.contains("0 action(s)"), "{out}");
}

#[tokio::test]
async fn an_index_trained_on_few_vectors_is_rebuilt_when_they_grow() {
    let db = TestDb::migrated("vt_growth").await;
    let pool = db.owner_pool().await;
    let (part, from) = current();
    let toml = policy("rebuild_growth_factor = 2.0");
    insert(&pool, from, 1200, true).await;
    insert(&pool, from + chrono::Duration::days(1), 1800, false).await;
    analyze(&pool, &part).await;
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    let g1 = format!("{part}_embedding_768_ivf_g1");
    assert_eq!(
        vector_indexes(&pool, &part).await,
        vec![(
            g1.clone(),
            true,
            Some(
                "partwarden: method=ivfflat lists=1 rows=3000 vectors=1200 closed=false gen=1"
                    .into()
            )
        )],
        "{out}"
    );
    // The rows stay 3,000; their vectors arrive.
    set_embeddings(&pool, &part, 1800).await;
    analyze(&pool, &part).await;
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert!(out.contains("its vectors grew from 1200 to 3000"), "{out}");
    assert!(
        out.contains(&format!("(lists = 3), then drop {g1}")),
        "{out}"
    );
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        vector_indexes(&pool, &part).await,
        vec![(
            format!("{part}_embedding_768_ivf_g2"),
            true,
            Some(
                "partwarden: method=ivfflat lists=3 rows=3000 vectors=3000 closed=false gen=2"
                    .into()
            )
        )],
        "{out}"
    );
}

#[tokio::test]
async fn pgvector_little_data_is_a_warning_and_the_index_is_rebuilt_once_the_vectors_arrive() {
    let db = TestDb::migrated("vt_notice").await;
    let pool = db.owner_pool().await;
    let (part, from) = current();
    let toml = policy("");
    insert(&pool, from, 2500, true).await;
    analyze(&pool, &part).await;
    // The statistics go stale: the embeddings are taken away after the ANALYZE, and
    // autovacuum must not analyze the partition behind the test's back.
    pool.execute(format!("ALTER TABLE {part} SET (autovacuum_enabled = false)").as_str())
        .await
        .unwrap();
    set_embeddings(&pool, &part, 0).await;
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    let g1 = format!("{part}_embedding_768_ivf_g1");
    let warning = out
        .lines()
        .find(|l| l.contains("WARN") && l.contains("ivfflat index created with little data"))
        .unwrap_or_else(|| panic!("no little-data warning in the log: {out}"));
    assert!(
        warning.contains(&format!(
            "{part}: PostgreSQL notice while building {g1}: ivfflat index created with little data"
        )),
        "{warning}"
    );
    assert_eq!(
        vector_indexes(&pool, &part).await,
        vec![(
            g1.clone(),
            true,
            Some(
                "partwarden: method=ivfflat lists=2 rows=2500 vectors=0 closed=false gen=1".into()
            )
        )]
    );
    // partwarden analyzed the partition: it counts no vectors now, and plans nothing.
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert!(out.contains("0 action(s)"), "{out}");
    // The vectors arrive: the index trained on none is rebuilt.
    set_embeddings(&pool, &part, 2500).await;
    analyze(&pool, &part).await;
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert!(out.contains("its vectors grew from 0 to 2500"), "{out}");
    let (code, out) = run(&db, &toml, &["maintain"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("little data"), "{out}");
    assert_eq!(
        vector_indexes(&pool, &part).await,
        vec![(
            format!("{part}_embedding_768_ivf_g2"),
            true,
            Some(
                "partwarden: method=ivfflat lists=2 rows=2500 vectors=2500 closed=false gen=2"
                    .into()
            )
        )]
    );
}

#[tokio::test]
async fn hidden_column_statistics_hold_the_build_back_and_say_why() {
    let db = TestDb::migrated("vt_hidden").await;
    let pool = db.owner_pool().await;
    let su = db.superuser_pool().await;
    let (part, from) = current();
    let toml = policy("");
    insert(&pool, from, 2500, true).await;
    analyze(&pool, &part).await;
    // Without SELECT on pg_statistic, pg_stats is all the owner has, and it leaves out
    // tables whose (forced) row-level security applies to the reader.
    su.execute("REVOKE SELECT ON pg_catalog.pg_statistic FROM partwarden")
        .await
        .unwrap();
    let (code, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("build ivfflat"), "{out}");
    assert!(
        out.contains(&format!(
            "1 partition(s) ({part}) have min_rows rows and no vector index, but their embedding_768 vectors cannot be counted"
        )) && out.contains("GRANT SELECT ON pg_catalog.pg_statistic"),
        "{out}"
    );
    let t = status_json(&db, &toml);
    assert_eq!(t["vector_indexes_missing"], 1, "seen as missing: {t}");
    su.execute("GRANT SELECT ON pg_catalog.pg_statistic TO partwarden")
        .await
        .unwrap();
    let (_, out) = run(&db, &toml, &["maintain", "--dry-run"]);
    assert!(out.contains("build ivfflat index"), "{out}");
}

/// A transaction holding an old snapshot: a concurrent index build waits for it.
async fn hold_snapshot(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    holder
        .execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    holder.execute("SELECT txid_current()").await.unwrap();
    holder
}

/// Waits until the superuser sees a build of `index` waiting for old snapshots.
async fn wait_building(su: &PgPool, index: &str) {
    for _ in 0..200 {
        let phase: Option<String> = sqlx::query_scalar(
            "SELECT phase FROM pg_stat_progress_create_index WHERE index_relid = to_regclass($1)",
        )
        .bind(index)
        .fetch_optional(su)
        .await
        .unwrap();
        if phase.as_deref() == Some("waiting for old snapshots") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the build of {index} never waited for old snapshots");
}

/// What `status` and `maintain --dry-run` say while another session builds `index`.
fn check_reported_as_building(db: &TestDb, toml: &str, part: &str, index: &str, who: &str) {
    let t = status_json(db, toml);
    assert_eq!(t["vector_indexes_invalid"], 0, "{who}: {t}");
    assert_eq!(t["vector_indexes_building"], 1, "{who}: {t}");
    assert_eq!(t["vector_indexes_missing"], 0, "{who}: {t}");
    assert_eq!(t["indexes_invalid"], 0, "{who}: {t}");
    let stats = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition_name"] == part)
        .unwrap();
    assert_eq!(stats["indexes_building"], 1, "{who}: {stats}");
    let (_, text) = run(db, toml, &["status"]);
    assert!(
        text.lines()
            .any(|l| l.contains(part) && l.contains("index building")),
        "{who}: {text}"
    );
    assert!(!text.contains("INVALID index"), "{who}: {text}");
    let (code, out) = run(db, toml, &["maintain", "--dry-run"]);
    assert_eq!(code, 0, "{who}: {out}");
    assert!(!out.contains("drop index"), "{who}: {out}");
    assert!(
        out.contains(&format!(
            "{part}: an index build is under way on it (pg_stat_progress_create_index) and vector index {index} is not valid yet"
        )),
        "{who}: {out}"
    );
}

/// The daemon's run leaves the build alone, and its gauges stay at 0.
async fn check_daemon(su: &PgPool, db: &TestDb, toml: &str, index: &str) {
    let config = support::cli::write_config(toml);
    let mut d = Daemon::start(&[("DATABASE_URL", db.owner_url())], Some(&config));
    let m = d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{{T},result=\"success\"}}"),
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    // A refresh after the run.
    std::thread::sleep(Duration::from_millis(1500));
    let m2 = d.metrics();
    d.terminate();
    for m in [&m, &m2] {
        for g in [
            "partwarden_vector_indexes_invalid",
            "partwarden_indexes_invalid",
        ] {
            assert_eq!(sample(m, &format!("{g}{{{T}}}")), Some(0.0), "{g}: {m}");
        }
    }
    let still: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE index_relid = to_regclass($1))",
    )
    .bind(index)
    .fetch_one(su)
    .await
    .unwrap();
    assert!(still, "the daemon's run ended the build: {}", d.log());
}

#[tokio::test]
async fn an_index_another_session_is_building_is_neither_dropped_nor_invalid() {
    let db = TestDb::migrated("vt_building").await;
    let owner = db.owner_pool().await;
    let su = db.superuser_pool().await;
    let (part, from) = current();
    let toml = policy("");
    insert(&owner, from, 1500, true).await;
    analyze(&owner, &part).await;
    // The name partwarden would give its own build: a plan that took it for a failed
    // build would drop it. A superuser's build is shown to partwarden's role without
    // its relation and index; the owner's own, with them.
    let index = format!("{part}_embedding_768_ivf_g1");
    for (who, builder) in [("superuser", su.clone()), ("owner", owner.clone())] {
        let holder = hold_snapshot(&owner).await;
        let sql = format!(
            "CREATE INDEX CONCURRENTLY {index} ON {part} USING ivfflat (embedding_768 vector_cosine_ops) WITH (lists = 1)"
        );
        let build = tokio::spawn(async move { builder.execute(sql.as_str()).await });
        wait_building(&su, &index).await;
        let (db2, toml2, part2, index2) = (
            TestDb {
                name: db.name.clone(),
            },
            toml.clone(),
            part.clone(),
            index.clone(),
        );
        tokio::task::spawn_blocking(move || {
            check_reported_as_building(&db2, &toml2, &part2, &index2, who)
        })
        .await
        .unwrap();
        if who == "superuser" {
            check_daemon(&su, &db, &toml, &index).await;
        }
        holder.rollback().await.unwrap();
        build.await.unwrap().unwrap();
        let idx = vector_indexes(&owner, &part).await;
        assert_eq!(idx.len(), 1, "{who}: {idx:?}");
        assert!(idx[0].1, "{who}: the build finished valid: {idx:?}");
        owner
            .execute(format!("DROP INDEX {index}").as_str())
            .await
            .unwrap();
    }
}
