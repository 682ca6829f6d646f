//! The status page: what `/status` says, as a picture. Served by the daemon at `/` and
//! written by `partwarden status --html`. Pure: a [`PageDoc`] in, one self-contained
//! HTML5 document out (nothing fetched, no script), so it works offline, behind any proxy
//! and from a file.
//!
//! [`model`] reads the JSON documents (`/status`, `status --json`), [`state`] says what
//! each partition's colour is, `timeline` draws the SVG and `html` the rest.

mod html;
pub mod model;
pub mod state;
mod timeline;

pub use model::{Actions, PageDoc, PageTable};

/// The page as one HTML document.
pub fn render(doc: &PageDoc) -> String {
    html::document(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn partition(
        name: &str,
        from: Option<&str>,
        to: Option<&str>,
        rows: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "partition_name": name, "row_count": rows, "size_bytes": 16384,
            "size_pretty": "16 kB", "schema": "public",
            "range_start": from, "range_end": to, "is_default": from.is_none(),
            "detach_pending": false, "index_bytes": 8192, "indexes_expected": 2,
            "indexes_valid": 2, "indexes_invalid": 0, "indexes_building": 0, "rls_ok": true,
        })
    }

    /// A daemon's `/status` with one table named `label`.
    fn status(label: &str, default_rows: serde_json::Value) -> serde_json::Value {
        json!({
            "version": "0.1.0", "database_up": true,
            "database": {"up": true, "error": null, "unreachable_since": null},
            "leader": true, "maintenance_running": false,
            "last_runs": { label: {
                "table": label, "started_at": "2026-05-15T11:00:00Z", "seconds": 0.5,
                "error": null, "usage_error": false,
                "report": {"outcomes": [
                    {"kind": "create_partition", "partition": "ev_p2026_08", "status": "done",
                     "detail": "created", "reason": "premake", "attempts": 1, "seconds": 0.1},
                    {"kind": "sync_rls", "partition": "ev_p2026_05", "status": "failed",
                     "detail": "<b>lock</b> timeout", "reason": "drift", "attempts": 3, "seconds": 2.0},
                ], "plan": {"notes": ["about 42 row(s) in the default partition"]}},
            }},
            "tables": { label: {
                "table": label, "interval": "month", "premake": 3, "retention": "2 months",
                "retention_cutoff": "2026-03-15T12:00:00Z",
                "partitions": [
                    partition("ev_p2026_02", Some("2026-02-01T00:00:00Z"), Some("2026-03-01T00:00:00Z"), json!(10)),
                    partition("ev_p2026_05", Some("2026-05-01T00:00:00Z"), Some("2026-06-01T00:00:00Z"), json!(1234567)),
                    partition("ev_p2026_06", Some("2026-06-01T00:00:00Z"), Some("2026-07-01T00:00:00Z"), json!(null)),
                    partition("ev_default", None, None, default_rows.clone()),
                ],
                "future_partitions": 1, "covered_until": "2026-07-01T00:00:00Z",
                "default_partition_rows": default_rows, "estimated_rows": 1234577,
                "read_at": "2026-05-15T12:00:00Z",
            }},
        })
    }

    fn page(label: &str, default_rows: serde_json::Value) -> String {
        let doc = PageDoc::from_daemon_status(
            &status(label, default_rows),
            &[label.to_string()],
            at("2026-05-15T12:00:00Z"),
        );
        render(&doc)
    }

    #[test]
    fn the_page_is_one_document_with_nothing_to_fetch() {
        let html = page("public.events", json!(0));
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.trim_end().ends_with("</html>"));
        let lower = html.to_lowercase();
        for fetches in [
            "<link", "<script", "<img", "<iframe", "<object", "<embed", "src=", "href=", "url(",
            "@import", "http://", "https://", "//fonts",
        ] {
            assert!(
                !lower.contains(fetches),
                "the page fetches something: {fetches}"
            );
        }
        assert!(lower.contains("<style>") && lower.contains("<svg"));
    }

    #[test]
    fn names_from_the_database_are_escaped() {
        let evil = "public.\"x\"<script>alert('x')</script>&";
        let html = page(evil, json!(0));
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert('x')"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
        assert!(html.contains("data-table=\"public.&quot;x&quot;&lt;script&gt;"));
        // An action's detail (a server's error text) too.
        assert!(html.contains("&lt;b&gt;lock&lt;/b&gt; timeout") && !html.contains("<b>lock"));
    }

    #[test]
    fn an_unknown_row_count_is_unknown_not_zero() {
        let html = page("public.events", json!(null));
        let row = |name: &str| {
            let start = html.find(&format!("data-partition=\"{name}\"")).unwrap();
            html[start..start + html[start..].find("</tr>").unwrap()].to_string()
        };
        let june = row("ev_p2026_06");
        assert!(
            june.contains("data-rows=\"unknown\"") && june.contains(">unknown<"),
            "{june}"
        );
        assert!(!june.contains(">0<"), "{june}");
        assert!(row("ev_p2026_05").contains("data-rows=\"1234567\""));
        assert!(row("ev_p2026_05").contains(">1,234,567<"));
        assert!(html.contains("data-default-rows=\"unknown\""));
        // The same when the document flags the count rather than nulling it.
        let mut doc = status("public.events", json!(5));
        doc["tables"]["public.events"]["partitions"][1]["rows_known"] = json!(false);
        let html = render(&PageDoc::from_daemon_status(
            &doc,
            &[],
            at("2026-05-15T12:00:00Z"),
        ));
        assert!(html.contains("data-partition=\"ev_p2026_05\"") && !html.contains("1,234,567"));
    }

    #[test]
    fn markers_states_default_rows_and_the_last_run_are_shown() {
        let html = page("public.events", json!(42));
        for marker in ["class=\"m now\"", "class=\"m cover\"", "class=\"m cutoff\""] {
            assert!(html.contains(marker), "{marker} missing");
        }
        assert!(html.contains("retention cutoff 2026-03-15"));
        assert!(html.contains("inserts covered until 2026-07-01"));
        assert!(html.contains("data-covered-until=\"2026-07-01T00:00:00Z\""));
        assert!(html.contains("data-retention-cutoff=\"2026-03-15T12:00:00Z\""));
        // Rows waiting in the default partition stand out.
        assert!(html.contains("data-default-rows=\"42\""));
        assert!(html.contains("kpi default warn"));
        assert!(html.contains("class=\"p default warn\""));
        // Each partition's state: the oldest is past retention, May is now, June ahead.
        assert!(html.contains("<tr class=\"expiring\" data-partition=\"ev_p2026_02\""));
        assert!(html.contains("<tr class=\"current\" data-partition=\"ev_p2026_05\""));
        assert!(html.contains("<tr class=\"future\" data-partition=\"ev_p2026_06\""));
        assert!(html.contains("<tr class=\"default warn\" data-partition=\"ev_default\""));
        // The last run: both actions, the failure marked.
        assert!(html.contains("data-actions=\"2\" data-run=\"failed\""));
        assert!(html
            .contains("data-kind=\"sync_rls\" data-target=\"ev_p2026_05\" data-status=\"failed\""));
        assert!(html.contains("started 2026-05-15 11:00:00 UTC, took 0.50 s: 2 action(s)"));
        assert!(html.contains("<li>about 42 row(s) in the default partition</li>"));
    }

    #[test]
    fn a_database_that_is_down_says_why_and_tables_not_read_yet_say_so() {
        let doc = json!({
            "database": {"up": false, "error": "cannot connect to db:5432: Connection refused",
                         "unreachable_since": "2026-05-15T11:59:00Z"},
            "leader": false, "maintenance_running": false, "last_runs": {}, "tables": {},
        });
        let html = render(&PageDoc::from_daemon_status(
            &doc,
            &["public.events".into()],
            at("2026-05-15T12:00:00Z"),
        ));
        assert!(html.contains("data-database-up=\"false\""));
        assert!(html.contains("database down since 2026-05-15 11:59:00 UTC"));
        assert!(html.contains("Connection refused"));
        assert!(html.contains("data-table=\"public.events\""));
        assert!(html.contains("Not read yet"));
        assert!(html.contains("not the leader"));
    }

    #[test]
    fn the_cli_page_shows_pending_actions_instead_of_a_last_run() {
        let mut entry = status("public.events", json!(0))["tables"]["public.events"].clone();
        entry["pending_actions"] = json!([
            {"kind": "create_partition", "partition": "ev_p2026_07", "reason": "premake: 2 ahead"}
        ]);
        let doc = PageDoc {
            origin: model::Origin::Cli,
            now: at("2026-05-15T12:00:00Z"),
            tables: vec![PageTable::from_status_entry(
                "public.events",
                &entry,
                Actions::from_pending(&entry),
            )],
        };
        let html = render(&doc);
        assert!(html.contains("<h3>Pending actions</h3>"));
        assert!(html.contains("keeps no record of the daemon's runs"));
        assert!(html.contains("data-actions=\"1\" data-run=\"pending\""));
        assert!(html.contains("premake: 2 ahead"));
        assert!(!html.contains("Last maintenance run"));
    }

    #[test]
    fn a_cutoff_far_before_every_partition_points_left_instead_of_squashing_them() {
        let mut doc = status("public.events", json!(0));
        doc["tables"]["public.events"]["retention_cutoff"] = json!("2020-01-01T00:00:00Z");
        let html = render(&PageDoc::from_daemon_status(
            &doc,
            &[],
            at("2026-05-15T12:00:00Z"),
        ));
        assert!(
            html.contains("◀ retention cutoff 2020-01-01 (further back)"),
            "{html}"
        );
    }
}
