//! Output that fits where it goes (issue 12.7): `check-config` prints the configuration in
//! force as TOML and says what it read; `status` shows a state for every partition and
//! the vector index; a drop shows the rows and bytes it removes.
mod support;

use partwarden::config::Config;
use sqlx::Executor;
use support::cli::{
    grant_app, insert_event, old_partition, partwarden, partwarden_at, write_config,
};
use support::TestDb;

#[test]
fn check_config_prints_the_configuration_in_force_as_toml_naming_the_file() {
    let file = write_config(
        "[database]\nlock_wait = \"90ms\"\n[schedule]\nstats_interval = \"2min\"\n\
         [[tables]]\nname = \"events\"\nretention = \"6 months\"\npremake = 2\n",
    );
    let url = "postgres://someone:hunter2@127.0.0.1:1/x";
    let run = partwarden_at(
        url,
        None,
        &[("PARTWARDEN__DATABASE__CONNECT_TIMEOUT", "1500ms")],
        &["check-config", "--offline", file.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out
            .contains(&format!("# read {}, then the environment", file.display())),
        "{}",
        run.out
    );
    // Durations as written, in the file and in the environment; defaults in full.
    for line in [
        "lock_wait = \"90ms\"",
        "stats_interval = \"2min\"",
        "connect_timeout = \"1500ms\"",
        "lock_timeout = \"2s\"",
        "retention = \"6 months\"",
        "premake = 2",
        "name = \"events\"",
        "default_partition = true",
    ] {
        assert!(run.out.lines().any(|l| l == line), "{line}\n{}", run.out);
    }
    assert!(
        !run.out.contains("hunter2"),
        "the password is printed: {}",
        run.out
    );
    assert!(
        !run.out.contains("Duration"),
        "Rust's Debug output: {}",
        run.out
    );
    // What it prints is a configuration file that loads to the same configuration.
    let toml: String = run
        .out
        .lines()
        .filter(|l| !l.starts_with("partwarden: warning"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("someone:***@", "someone:hunter2@");
    let printed = Config::from_sources(Some(&toml), &[]).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let original = Config::from_sources(
        Some(&std::fs::read_to_string(&file).unwrap()),
        &[
            ("DATABASE_URL".into(), url.into()),
            (
                "PARTWARDEN__DATABASE__CONNECT_TIMEOUT".into(),
                "1500ms".into(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(printed.database.lock_wait, original.database.lock_wait);
    assert_eq!(
        printed.database.connect_timeout,
        original.database.connect_timeout
    );
    assert_eq!(printed.tables, original.tables);
    assert_eq!(printed.schedule, original.schedule);

    let run = partwarden_at(url, None, &[], &["check-config", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.contains("# no configuration file given"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("name = \"archon_ga4_events\""),
        "{}",
        run.out
    );
}

#[tokio::test]
async fn status_shows_past_and_expiring_partitions_and_vector_indexes_and_drops_say_what_they_remove(
) {
    let db = TestDb::migrated("output_status").await;
    let pool = db.owner_pool().await;
    grant_app(&pool, "public").await;
    let expiring = old_partition(&pool, 30).await;
    let past = old_partition(&pool, 2).await;
    let month_start = |back: i64| {
        use partwarden::calendar::Interval;
        Interval::Month.shift(Interval::Month.floor(chrono::Utc::now()), -back)
    };
    let app = db.app_pool().await;
    for i in 0..3 {
        insert_event(
            &app,
            "00000000-0000-0000-0000-00000000000a",
            month_start(30) + chrono::Duration::hours(i),
        )
        .await
        .unwrap();
    }
    pool.execute(&*format!("ANALYZE {expiring}")).await.unwrap();
    let toml = "[[tables]]\nname = \"archon_ga4_events\"\n[tables.vector_index]\nmin_rows = 1000\n";

    let run = partwarden(
        &db,
        Some(toml),
        &[],
        &["status", "--table", "archon_ga4_events"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let header = run.out.lines().nth(1).unwrap_or_default();
    assert!(header.contains("VECTOR"), "{}", run.out);
    let line = |p: &str| {
        run.out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{p} ")))
            .unwrap_or_else(|| panic!("{p}: {}", run.out))
            .to_string()
    };
    let l = line(&expiring);
    assert!(l.contains("past, expires"), "{l}");
    assert!(l.contains(" 3 "), "3 rows: {l}");
    assert!(line(&past).trim_end().ends_with("past"), "{}", line(&past));
    assert!(line("archon_ga4_events_default").contains("default"));
    // The current partition has fewer vectors than min_rows: no vector index wanted yet.
    let current = partwarden::calendar::partition_name(
        "archon_ga4_events",
        partwarden::calendar::Interval::Month,
        month_start(0),
    );
    let l = line(&current);
    assert!(l.contains(" - ") && l.contains("current"), "{l}");

    let run = partwarden(
        &db,
        Some(toml),
        &[],
        &["maintain", "--dry-run", "--table", "archon_ga4_events"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    let drop = run
        .out
        .lines()
        .find(|l| l.contains(&format!("drop {expiring} ")))
        .unwrap_or_else(|| panic!("{}", run.out));
    assert!(
        drop.contains("(3 rows, ") && drop.contains(" kB)"),
        "{drop}"
    );
}

#[tokio::test]
async fn logs_have_no_colour_when_stderr_is_not_a_terminal() {
    let db = TestDb::migrated("output_no_ansi").await;
    let run = partwarden(
        &db,
        None,
        &[("RUST_LOG", "debug")],
        &["maintain", "--dry-run", "--table", "archon_ga4_events"],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.contains("DEBUG"),
        "no log lines to look at: {}",
        run.out
    );
    assert!(
        !run.out.contains('\u{1b}'),
        "ANSI escapes in a pipe: {:?}",
        run.out
    );
}
