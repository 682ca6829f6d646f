//! Migrations: idempotent through `partwarden migrate` and through `psql -f`, as the
//! non-superuser maintenance role, and the schema they leave behind.
mod support;

use std::process::Command;

use sqlx::{PgPool, Row};
use support::{repo_path, TestDb, OWNER_ROLE};

fn partwarden(db: &TestDb, args: &[&str]) -> (i32, String) {
    let run = support::cli::partwarden(db, None, &[], args);
    (run.code, run.out)
}

async fn partition_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.archon_ga4_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// What the schema must look like after the migrations, whichever way they ran.
async fn assert_schema(pool: &PgPool) {
    let parts = partition_names(pool).await;
    let now = chrono::Utc::now();
    let expected_current = partwarden::calendar::partition_name(
        "archon_ga4_events",
        partwarden::calendar::Interval::Month,
        partwarden::calendar::Interval::Month.floor(now),
    );
    assert!(
        parts.contains(&"archon_ga4_events_default".to_string()),
        "{parts:?}"
    );
    assert!(
        parts.contains(&expected_current),
        "current month missing: {parts:?}"
    );
    assert_eq!(
        parts.len(),
        5,
        "current month + 3 ahead + default: {parts:?}"
    );

    // The seed's five parent indexes and the primary key, and no vector index on the parent.
    let idx: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexrelid::regclass::text, am.amname::text FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
          WHERE i.indrelid = 'archon_ga4_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let names: Vec<&str> = idx.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "archon_ga4_events_pkey",
            "idx_ga4_events_dimensions",
            "idx_ga4_events_metrics",
            "idx_ga4_events_name",
            "idx_ga4_events_property",
            "idx_ga4_events_tenant_time"
        ]
    );
    assert!(
        idx.iter().all(|(_, am)| am != "ivfflat" && am != "hnsw"),
        "{idx:?}"
    );

    // Forced RLS with USING and WITH CHECK on both tables.
    for table in [
        "archon_ga4_events",
        "archon_ga4_daily_summaries",
        "archon_ga4_events_default",
    ] {
        let row = sqlx::query(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid
                        AND p.polqual IS NOT NULL AND p.polwithcheck IS NOT NULL) AS policies
               FROM pg_class c WHERE c.oid = $1::regclass",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(row.get::<bool, _>(0), "{table}: RLS not enabled");
        assert!(row.get::<bool, _>(1), "{table}: RLS not forced");
        assert_eq!(
            row.get::<i64, _>(2),
            1,
            "{table}: policy with USING and WITH CHECK"
        );
    }

    // The maintenance role owns what it has to maintain.
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'archon_ga4_events'::regclass",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(owner, OWNER_ROLE);
}

#[tokio::test]
async fn migrate_twice_through_the_binary() {
    let db = TestDb::empty("migrate_binary").await;
    let (code, out) = partwarden(&db, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    let versions: Vec<i64> = partwarden::engine::migrate::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    assert!(versions.len() >= 4, "{versions:?}");
    for v in versions {
        assert!(out.contains(&format!("applied {v}\n")), "{v}: {out}");
    }
    let (code, out) = partwarden(&db, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("up to date"), "{out}");
    assert_schema(&db.owner_pool().await).await;
}

#[tokio::test]
async fn migrate_twice_through_psql_then_the_binary() {
    let db = TestDb::empty("migrate_psql").await;
    let mut files: Vec<_> = std::fs::read_dir(repo_path("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        partwarden::engine::migrate::MIGRATOR.iter().count(),
        "{files:?}"
    );
    for round in 0..2 {
        for f in &files {
            let (ok, out) = db.psql_file(OWNER_ROLE, f);
            assert!(ok, "round {round}: psql -f {} failed:\n{out}", f.display());
        }
    }
    let pool = db.owner_pool().await;
    assert_schema(&pool).await;
    // The same database then taken over by `partwarden migrate` (files already applied by
    // hand): the migrations are idempotent, so this just records them.
    let (code, out) = partwarden(&db, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    assert_schema(&pool).await;
}

#[tokio::test]
async fn migrate_without_a_database_url_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_partwarden"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("PARTWARDEN_CONFIG")
        .env_remove("PARTWARDEN__DATABASE__URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("database.url") || err.contains("DATABASE_URL"),
        "{err}"
    );
}

#[tokio::test]
async fn migrate_against_an_unreachable_database_is_a_runtime_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_partwarden"))
        .arg("migrate")
        // Port 1 on loopback: nothing listens there.
        .env(
            "DATABASE_URL",
            "postgres://partwarden:s3cret@127.0.0.1:1/app",
        )
        .env("PARTWARDEN__DATABASE__CONNECT_TIMEOUT", "2s")
        .env_remove("PARTWARDEN_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("s3cret"), "password leaked: {err}");
}
