//! The status page (issue 12.10) in a real browser: the daemon's `/` and
//! `partwarden status --html` render in headless chromium with the numbers `/status` has
//! (partitions, bounds, rows, sizes, default-partition rows, coverage, retention cutoff,
//! the last run's actions), and a screenshot of each is kept in `target/test-artefacts/`.
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use serde_json::Value;
use sqlx::{Executor, PgPool};
use support::browser;
use support::daemon::{wait_for, Daemon};
use support::TestDb;

const TABLE: &str = "public.archon_ga4_events";
/// Next month's partition for the run to make, and a retention two old partitions are
/// past, of which the run expires one: the page then has partitions past, current,
/// future, expiring, one never analyzed, and the default one.
const CONFIG: &str = "[[tables]]\nname = \"archon_ga4_events\"\npremake = 1\n\
                      retention = \"3 months\"\nmax_expire_per_run = 1\n";
const TENANT: &str = "00000000-0000-0000-0000-00000000000a";

#[tokio::test]
async fn the_status_page_renders_in_a_browser_with_the_numbers_of_status() {
    let db = TestDb::migrated("html_page").await;
    let pool = db.owner_pool().await;
    support::drop_future_partitions(&pool).await;
    let kept = support::cli::old_partition(&pool, 2).await;
    let expiring = support::cli::old_partition(&pool, 5).await;
    let expired = support::cli::old_partition(&pool, 6).await;
    // Rows this month and two months back, and rows a year ahead, beyond premake: they
    // stay in the default partition. Analyzed, so their counts are known; the partition
    // the run makes never is.
    insert_rows(&pool, "date_trunc('month', now())", 300).await;
    insert_rows(
        &pool,
        "date_trunc('month', now()) - interval '2 months'",
        200,
    )
    .await;
    insert_rows(&pool, "now() + interval '1 year'", 25).await;
    pool.execute("ANALYZE archon_ga4_events").await.unwrap();

    let config = support::cli::write_config(CONFIG);
    // No refresh but the one after the run: `/status` holds still while the browser reads.
    let d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__STATS_INTERVAL", "1h".into()),
        ],
        Some(&config),
    );
    let status = wait_for(
        Duration::from_secs(60),
        &format!("a run and the statistics after it (log:\n{})", d.log()),
        || {
            let doc: Value = serde_json::from_str(&d.get("/status")?.1).ok()?;
            let run = &doc["last_runs"][TABLE];
            let ended = instant(&run["started_at"])?
                + chrono::Duration::milliseconds((run["seconds"].as_f64()? * 1000.0) as i64);
            (instant(&doc["tables"][TABLE]["read_at"])? > ended).then_some(doc)
        },
    );
    let run = &status["last_runs"][TABLE];
    let table = &status["tables"][TABLE];
    assert_eq!(
        run["report"]["expired_partitions"],
        serde_json::json!([expired]),
        "{run}"
    );
    assert_eq!(
        run["report"]["created_partitions"].as_array().map(Vec::len),
        Some(1)
    );
    let names: Vec<&str> = partitions(table)
        .iter()
        .map(|p| p["partition_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&kept.as_str()) && names.contains(&expiring.as_str()),
        "{names:?}"
    );
    assert!(
        table["default_partition_rows"]
            .as_i64()
            .is_some_and(|n| n > 0),
        "{table}"
    );

    let (code, body) = d.get("/").unwrap();
    assert_eq!(code, 200);
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    let url = format!("http://127.0.0.1:{}/", d.port);
    let dom = browser::dump_dom(&url);
    check_table(&dom, table, &status_cutoff(table));
    check_states(&dom, &expiring);
    check_actions(&dom, &outcomes(run), "failed|succeeded");
    assert!(
        dom.contains("data-database-up=\"true\"") && dom.contains("database up"),
        "{dom}"
    );

    let artefacts = artefacts();
    let png = artefacts.join("status-page.png");
    browser::screenshot(&url, &png, 1280, 900);
    check_png(&png);
    std::fs::write(artefacts.join("status-page.html"), &body).unwrap();
    // Nothing was refreshed meanwhile: the browser saw the statistics compared above.
    let again: Value = serde_json::from_str(&d.get("/status").unwrap().1).unwrap();
    assert_eq!(again["tables"][TABLE]["read_at"], table["read_at"]);

    // `status --html`: the same partitions, read by the CLI, with its pending actions.
    let scratch = support::cli::scratch_dir("html-page");
    let file = scratch.path().join("status.html");
    let file_arg = file.to_str().unwrap();
    let run = support::cli::partwarden(&db, Some(CONFIG), &[], &["status", "--html", file_arg]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out
            .contains(&format!("status page written to {file_arg}")),
        "{}",
        run.out
    );
    let json = support::cli::partwarden(&db, Some(CONFIG), &[], &["status", "--json"]);
    assert_eq!(json.code, 0, "{}", json.out);
    let cli: Value = serde_json::from_str(&json.out).unwrap();
    let cli_table = &cli["tables"][0];
    let file_url = format!("file://{}", file.display());
    let dom = browser::dump_dom(&file_url);
    let now = instant(&attr_of(&dom, "body", "data-now")).unwrap();
    let cutoff = now.checked_sub_months(Months::new(3)).unwrap();
    // The CLI read the same partitions as the daemon; its cutoff is its own now's.
    check_table(&dom, table, &Some(cutoff));
    check_states(&dom, &expiring);
    let pending: Vec<(String, String, String)> = cli_table["pending_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                text(&a["kind"]),
                text(&a["partition"]),
                "pending".to_string(),
            )
        })
        .collect();
    assert!(
        pending
            .iter()
            .any(|(k, p, _)| k == "expire_partition" && *p == expiring),
        "the CLI's plan expires the partition the run left: {pending:?}"
    );
    check_actions(&dom, &pending, "pending");
    assert!(dom.contains("keeps no record of"), "{dom}");
    let png = artefacts.join("status-page-cli.png");
    browser::screenshot(&file_url, &png, 1280, 900);
    check_png(&png);
}

/// The errors of `status --html`: with `--json` (clap), and a file that cannot be written.
#[tokio::test]
async fn status_html_refuses_json_and_names_a_file_it_cannot_write() {
    let db = TestDb::migrated("html_page_errors").await;
    let both = support::cli::partwarden(&db, None, &[], &["status", "--json", "--html", "x.html"]);
    assert_eq!(both.code, 2, "{}", both.out);
    assert!(both.out.contains("cannot be used with"), "{}", both.out);
    let scratch = support::cli::scratch_dir("html-page-errors");
    let missing = scratch.path().join("no-such-dir/status.html");
    let run = support::cli::partwarden(
        &db,
        None,
        &[],
        &["status", "--html", missing.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{}", run.out);
    assert!(
        run.out.contains(&format!(
            "partwarden: error: cannot write the status page to {}",
            missing.display()
        )),
        "{}",
        run.out
    );
    assert!(!run.out.contains("panicked"), "{}", run.out);
    // `-` is stdout.
    let run = support::cli::partwarden(&db, None, &[], &["status", "--html", "-"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(
        run.out.starts_with("<!DOCTYPE html>") && run.out.contains(TABLE),
        "{}",
        run.out
    );
}

/// `rows` events of the tenant at `from` + 1 s, 2 s, … (SQL).
async fn insert_rows(pool: &PgPool, from: &str, rows: u32) {
    let mut tx = support::tenant_tx(pool, TENANT).await;
    tx.execute(
        format!(
            "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp)
             SELECT '{TENANT}', 'p', 'e', {from} + g * interval '1 second'
               FROM generate_series(1, {rows}) g"
        )
        .as_str(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Checks the page's block of `table` (its `/status` entry) and every partition row, in
/// the data attributes and in the text people read.
fn check_table(dom: &str, table: &Value, cutoff: &Option<DateTime<Utc>>) {
    let blocks = browser::elements(dom, "section", "data-table");
    let block = blocks
        .iter()
        .find(|b| b.attr("data-table") == TABLE)
        .unwrap_or_else(|| panic!("no block for {TABLE}: {blocks:?}"));
    let default_rows = count_text(&table["default_partition_rows"]);
    assert_eq!(block.attr("data-default-rows"), default_rows);
    assert!(
        block.inner.contains(&format!(
            "<span class=\"v\">{}</span>",
            grouped(&default_rows)
        )),
        "the default partition's rows are shown: {}",
        block.inner
    );
    assert_eq!(
        instant(&Value::from(block.attr("data-covered-until"))),
        instant(&table["covered_until"])
    );
    assert_eq!(
        instant(&Value::from(block.attr("data-retention-cutoff"))),
        *cutoff
    );
    let rows = browser::elements(dom, "tr", "data-partition");
    let expected = partitions(table);
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, p) in rows.iter().zip(expected) {
        let name = text(&p["partition_name"]);
        assert_eq!(row.attr("data-partition"), name);
        assert_eq!(row.attr("data-schema"), text(&p["schema"]));
        for (attr, key) in [("data-from", "range_start"), ("data-to", "range_end")] {
            assert_eq!(
                instant(&Value::from(row.attr(attr))),
                instant(&p[key]),
                "{name} {attr}"
            );
        }
        let rows_text = count_text_of_partition(p);
        assert_eq!(row.attr("data-rows"), rows_text, "{name}");
        assert_eq!(
            row.attr("data-bytes"),
            p["size_bytes"].to_string(),
            "{name}"
        );
        let cells = row.cells();
        assert_eq!(cells[0], name);
        assert_eq!(cells[3].replace(',', ""), rows_text, "{name}: {cells:?}");
        assert_eq!(cells[4], text(&p["size_pretty"]), "{name}");
    }
}

/// The states the rows are coloured by: one past retention, one current, the default one.
fn check_states(dom: &str, expiring: &str) {
    let rows = browser::elements(dom, "tr", "data-partition");
    let class_of = |name: &str| {
        rows.iter()
            .find(|r| r.attr("data-partition") == name)
            .map(|r| r.attr("class").to_string())
            .unwrap_or_default()
    };
    assert_eq!(class_of(expiring), "expiring");
    assert!(
        rows.iter().any(|r| r.attr("class") == "current"),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.attr("class") == "future"), "{rows:?}");
    assert!(
        rows.iter().any(|r| r.attr("class") == "default warn"),
        "{rows:?}"
    );
    for marker in ["class=\"m now\"", "class=\"m cover\"", "class=\"m cutoff\""] {
        assert!(dom.contains(marker), "{marker} missing");
    }
}

/// The actions section: `expected` (kind, partition, status) in order.
fn check_actions(dom: &str, expected: &[(String, String, String)], run: &str) {
    let section = browser::elements(dom, "div", "data-actions");
    assert_eq!(section.len(), 1, "{section:?}");
    assert_eq!(section[0].attr("data-actions"), expected.len().to_string());
    assert!(run.split('|').any(|r| r == section[0].attr("data-run")));
    let rows: Vec<(String, String, String)> = browser::elements(dom, "tr", "data-kind")
        .iter()
        .map(|r| {
            (
                r.attr("data-kind").to_string(),
                r.attr("data-target").to_string(),
                r.attr("data-status").to_string(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
}

fn outcomes(run: &Value) -> Vec<(String, String, String)> {
    run["report"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (text(&o["kind"]), text(&o["partition"]), text(&o["status"])))
        .collect()
}

fn partitions(table: &Value) -> &Vec<Value> {
    table["partitions"].as_array().unwrap()
}

fn status_cutoff(table: &Value) -> Option<DateTime<Utc>> {
    instant(&table["retention_cutoff"])
}

/// What the page must say of a count in `/status`: unknown when `null`.
fn count_text(v: &Value) -> String {
    v.as_i64()
        .map_or_else(|| "unknown".into(), |n| n.to_string())
}

/// The same for a partition, whichever way `/status` says a count is unknown.
fn count_text_of_partition(p: &Value) -> String {
    if p["rows_known"] == Value::Bool(false) {
        "unknown".into()
    } else {
        count_text(&p["row_count"])
    }
}

/// 1234 → 1,234 (as the page shows counts).
fn grouped(n: &str) -> String {
    let mut out = String::new();
    for (i, c) in n.chars().enumerate() {
        if i > 0 && (n.len() - i).is_multiple_of(3) && n.chars().all(|c| c.is_ascii_digit()) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn attr_of(dom: &str, tag: &str, attr: &str) -> Value {
    let el = browser::elements(dom, tag, attr);
    Value::from(
        el.first()
            .map(|e| e.attr(attr).to_string())
            .unwrap_or_default(),
    )
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PNG of the window's size with something on it: a page of one colour compresses to a
/// few kB, this one is tens.
fn check_png(path: &Path) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(
        (be(16), be(20)),
        (1280, 900),
        "{}: IHDR size",
        path.display()
    );
    assert!(
        png.len() > 30_000,
        "{} is nearly blank: {} bytes",
        path.display(),
        png.len()
    );
}
