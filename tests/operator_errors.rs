//! Errors say what to do (issue 12, point 6): the operator's first mistakes against the
//! real server — not migrated, no pgvector, tables owned by another role — each answered
//! with the command that fixes it, the table named once, and a failure logged once.
mod support;

use std::time::Duration;

use sqlx::Executor;
use support::cli::{partwarden, partwarden_at};
use support::daemon::Daemon;
use support::{drop_future_partitions, TestDb};

const TABLE: &str = "public.archon_ga4_events";
const RUN_MIGRATE: &str = "run `partwarden migrate`";

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Every command against a database `partwarden migrate` never ran in says to run it,
/// names the table once, and exits 1: the configuration is right, the database is not
/// ready (it used to be exit 2, "tables[…].name: … does not exist", the table three times).
#[tokio::test]
async fn an_unmigrated_database_says_run_migrate() {
    let db = TestDb::empty("unmigrated").await;
    for args in [
        &["status"][..],
        &["maintain"],
        &["maintain", "--dry-run"],
        &["check-config"],
    ] {
        let run = partwarden(&db, None, &[], args);
        // check-config prints the effective configuration first; the error is its last line.
        let out = match args {
            ["check-config"] => run.out.lines().last().unwrap_or_default().to_string(),
            _ => run.out.clone(),
        };
        assert_eq!(run.code, 1, "{args:?}:\n{}", run.out);
        assert!(
            out.contains(RUN_MIGRATE) && out.contains(&format!("database {:?}", db.name)),
            "{args:?}:\n{out}"
        );
        assert_eq!(occurrences(&out, TABLE), 1, "{args:?}:\n{out}");
    }
    let migrate = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(migrate.code, 0, "{}", migrate.out);
    let status = partwarden(&db, None, &[], &["status"]);
    assert_eq!(status.code, 0, "the advice works:\n{}", status.out);
}

/// A configured table a migrated database does not have is the configuration's mistake:
/// exit 2, the key, the database it looked in, and the table's name once.
#[tokio::test]
async fn a_table_missing_from_a_migrated_database_is_named_once() {
    let db = TestDb::migrated("missing_table").await;
    let toml = "[[tables]]\nname = \"no_such_table\"\n";
    let maintain = partwarden(&db, Some(toml), &[], &["maintain"]);
    assert_eq!(maintain.code, 2, "{}", maintain.out);
    assert!(
        maintain.out.contains(&format!(
            "public.no_such_table: FAILED: name: no such table in database {:?}",
            db.name
        )),
        "{}",
        maintain.out
    );
    assert_eq!(
        occurrences(&maintain.out, "no_such_table"),
        1,
        "{}",
        maintain.out
    );
    let check = partwarden(&db, Some(toml), &[], &["check-config"]);
    assert_eq!(check.code, 2, "{}", check.out);
    let error = check.out.lines().last().unwrap_or_default();
    assert!(
        error.starts_with("partwarden: error: tables[public.no_such_table].name: no such table"),
        "{}",
        check.out
    );
    assert_eq!(occurrences(error, "no_such_table"), 1, "{error}");
}

/// `migrate` where pgvector is installed but not created: a superuser must create it
/// (it is not a trusted extension), in this database; then `migrate` succeeds.
#[tokio::test]
async fn migrate_without_the_extension_says_a_superuser_must_create_it() {
    let db = TestDb::bare("no_vector").await;
    let run = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(run.code, 1, "{}", run.out);
    let expected = format!(
        "A superuser must run `CREATE EXTENSION vector;` once in database {:?}, then \
         `partwarden migrate` again",
        db.name
    );
    for text in [
        "migration 1 needs extension \"vector\" (pgvector), which role partwarden may not create",
        &expected,
    ] {
        assert!(run.out.contains(text), "{text}\n{}", run.out);
    }
    let su = db.superuser_pool().await;
    su.execute("CREATE EXTENSION vector").await.unwrap();
    let again = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(again.code, 0, "the advice works:\n{}", again.out);
}

/// `migrate` on a server without pgvector's files (here: an extension path with nothing
/// in it, PostgreSQL 18's `extension_control_path`): the package must be installed first.
#[tokio::test]
async fn migrate_where_pgvector_is_not_installed_says_install_it() {
    let db = TestDb::bare("no_pgvector").await;
    let su = db.superuser_pool().await;
    su.execute(
        format!(
            "ALTER DATABASE {} SET extension_control_path = '/nonexistent'",
            db.name
        )
        .as_str(),
    )
    .await
    .unwrap();
    let run = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(run.code, 1, "{}", run.out);
    for text in [
        "migration 1 needs extension \"vector\" (pgvector), which is not installed on the \
         PostgreSQL 18 server",
        "postgresql-18-pgvector",
        &format!(
            "then a superuser runs `CREATE EXTENSION vector;` once in database {:?}",
            db.name
        ),
        "extension \"vector\" is not available (SQLSTATE 0A000)",
    ] {
        assert!(run.out.contains(text), "{text}\n{}", run.out);
    }
}

/// A partition owned by another role: the refusal names the role partwarden connects as,
/// every relation of the table it does not own with its owner, and the statement that
/// fixes it — once, however many actions it refused; run as said, the next run succeeds.
#[tokio::test]
async fn a_partition_of_another_owner_names_role_owner_and_fix() {
    let db = TestDb::migrated("not_owner").await;
    let owner = db.owner_pool().await;
    drop_future_partitions(&owner).await;
    let su = db.superuser_pool().await;
    su.execute("ALTER TABLE archon_ga4_events_default OWNER TO postgres")
        .await
        .unwrap();
    let run = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(run.code, 1, "{}", run.out);
    let fix = "ALTER TABLE public.archon_ga4_events_default OWNER TO partwarden;";
    for text in [
        "archon_ga4_events_default (SQLSTATE 42501): partwarden connects as role partwarden, \
         which must own every table it maintains",
        "it does not own public.archon_ga4_events_default (owner postgres).",
        fix,
    ] {
        assert!(run.out.contains(text), "{text}\n{}", run.out);
    }
    // Three partitions refused: the log and the report explain it once each, the other
    // refusals point back to it.
    assert_eq!(occurrences(&run.out, fix), 2, "{}", run.out);
    assert_eq!(
        occurrences(
            &run.out,
            "as explained at `create archon_ga4_events_2027_01"
        ),
        4,
        "{}",
        run.out
    );
    su.execute(fix).await.unwrap();
    let again = partwarden(&db, None, &[], &["maintain"]);
    assert_eq!(again.code, 0, "the advice works:\n{}", again.out);
}

/// `migrate` as the maintenance role over tables a superuser created: which tables, whose.
#[tokio::test]
async fn migrate_over_tables_of_another_owner_names_them() {
    let db = TestDb::empty("migrate_not_owner").await;
    let (ok, out) = db.psql_file(
        "postgres",
        &support::repo_path("migrations/0001_ga4_schema.sql"),
    );
    assert!(ok, "{out}");
    let run = partwarden(&db, None, &[], &["migrate"]);
    assert_eq!(run.code, 1, "{}", run.out);
    for text in [
        "must be owner of table archon_ga4_events (SQLSTATE 42501): partwarden connects as \
         role partwarden",
        "public.archon_ga4_events (owner postgres)",
        "ALTER TABLE public.archon_ga4_events OWNER TO partwarden;",
    ] {
        assert!(run.out.contains(text), "{text}\n{}", run.out);
    }
}

/// A managed table in a schema the maintenance role may not create in: the grant to run.
#[tokio::test]
async fn a_schema_without_create_names_the_grant() {
    let db = TestDb::migrated("no_create").await;
    let su = db.superuser_pool().await;
    sqlx::raw_sql(
        "CREATE SCHEMA ops AUTHORIZATION postgres;
         GRANT USAGE ON SCHEMA ops TO partwarden;
         CREATE TABLE ops.events (ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
         ALTER TABLE ops.events OWNER TO partwarden;",
    )
    .execute(&su)
    .await
    .unwrap();
    let toml = "[[tables]]\nschema = \"ops\"\nname = \"events\"\ncolumn = \"ts\"\n\
                default_partition = false\nretention = \"12 months\"\n";
    let run = partwarden(&db, Some(toml), &[], &["maintain"]);
    assert_eq!(run.code, 1, "{}", run.out);
    let grant = "GRANT USAGE, CREATE ON SCHEMA ops TO partwarden;";
    for text in [
        "permission denied for schema ops (SQLSTATE 42501): partwarden connects as role \
         partwarden, which needs USAGE and CREATE on schema ops (owned by postgres)",
        grant,
    ] {
        assert!(run.out.contains(text), "{text}\n{}", run.out);
    }
    su.execute(grant).await.unwrap();
    let again = partwarden(&db, Some(toml), &[], &["maintain"]);
    assert_eq!(again.code, 0, "the advice works:\n{}", again.out);
}

/// The daemon logs a table that fails once per failure: one `maintenance failed` event
/// with the table as its field and not again in its message (the manager and the worker
/// both logged it), and the statistics' error once, not at every refresh.
#[tokio::test]
async fn a_failing_table_is_logged_once() {
    let db = TestDb::empty("logged_once").await;
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__LOG__FORMAT", "json".into()),
        ],
        None,
    );
    d.wait_metric(
        &format!("partwarden_maintenance_runs_total{{table=\"{TABLE}\",result=\"failure\"}}"),
        Duration::from_secs(30),
        |v| v == 1.0,
    );
    // A few statistics refreshes (every second here) after the failed run.
    std::thread::sleep(Duration::from_secs(4));
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0), "{}", d.log());
    let log = d.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let messages = |prefix: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .collect()
    };
    let failed = messages("maintenance failed");
    assert_eq!(failed.len(), 1, "{log}");
    let message = failed[0]["fields"]["message"].as_str().unwrap_or_default();
    assert_eq!(failed[0]["fields"]["table"], TABLE, "{log}");
    assert!(
        message.contains(RUN_MIGRATE) && !message.contains(TABLE),
        "{message}"
    );
    assert_eq!(messages("statistics:").len(), 1, "{log}");
}

/// `status --json` gives a table's error beside its name, not repeating it.
#[tokio::test]
async fn status_json_gives_the_error_beside_the_table() {
    let db = TestDb::empty("status_json").await;
    let run = partwarden_at(&db.owner_url(), None, &[], &["status", "--json"]);
    assert_eq!(run.code, 1, "{}", run.out);
    let doc: serde_json::Value = serde_json::from_str(&run.out).unwrap_or_default();
    assert_eq!(doc["tables"][0]["table"], TABLE, "{}", run.out);
    assert_eq!(
        doc["tables"][0]["error"],
        format!(
            "does not exist: database {:?} is not migrated; run `partwarden migrate`",
            db.name
        ),
        "{}",
        run.out
    );
}
