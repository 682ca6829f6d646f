//! The HTML of the page: one self-contained document (the style inline, the timeline
//! inline SVG, no script, nothing fetched). Every string from the database or the
//! configuration goes through [`esc`]; the numbers the browser test compares with
//! `/status` are also in `data-*` attributes.
//!
//! Written by hand with `write!` rather than with a templating engine: the page is a few
//! fixed blocks, and a dependency would add more than it saves.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

use super::model::{ActionRow, Actions, DefaultRows, Origin, PageDoc, PagePartition, PageTable};
use super::state::{states, State};
use super::timeline;

const STYLE: &str = include_str!("style.css");

pub fn document(doc: &PageDoc) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let title = match doc.origin {
        Origin::Daemon { .. } => "partwarden status",
        Origin::Cli => "partwarden status (CLI)",
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body data-now=\"{}\">\n",
        iso(doc.now)
    );
    header(&mut out, doc);
    if doc.tables.is_empty() {
        out.push_str("<p class=\"muted\">No table is configured.</p>\n");
    }
    for t in &doc.tables {
        table_block(&mut out, t, doc);
    }
    let source = match doc.origin {
        Origin::Daemon { .. } => {
            "Drawn from memory by the daemon, from the same data as <code>/status</code> (JSON); \
             reload for the latest statistics."
        }
        Origin::Cli => "Written by <code>partwarden status --html</code>.",
    };
    let _ = write!(
        out,
        "<footer>partwarden {} · {source}</footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn header(out: &mut String, doc: &PageDoc) {
    let _ = write!(out, "<header");
    match &doc.origin {
        Origin::Daemon {
            database_up,
            database_error,
            unreachable_since,
            leader,
            maintenance_running,
        } => {
            let _ = write!(
                out,
                " data-database-up=\"{database_up}\" data-leader=\"{leader}\">\
                 <h1>partwarden <small>as of {}</small></h1><p class=\"badges\">",
                minute(doc.now)
            );
            if *database_up {
                out.push_str("<span class=\"badge ok\">database up</span>");
            } else {
                let since = unreachable_since
                    .map(|s| format!(" since {}", minute(s)))
                    .unwrap_or_default();
                let why = database_error.as_deref().unwrap_or("no answer yet");
                let _ = write!(
                    out,
                    "<span class=\"badge bad\">database down{}</span> \
                     <span class=\"why\">{}</span>",
                    esc(&since),
                    esc(why)
                );
            }
            out.push_str(if *leader {
                " <span class=\"badge ok\">leader: this replica maintains the database</span>"
            } else {
                " <span class=\"badge muted\">not the leader: this replica only reports</span>"
            });
            if *maintenance_running {
                out.push_str(" <span class=\"badge busy\">maintenance running</span>");
            }
        }
        Origin::Cli => {
            let _ = write!(
                out,
                " data-database-up=\"true\"><h1>partwarden <small>as of {}</small></h1>\
                 <p class=\"badges\"><span class=\"badge ok\">database read by \
                 <code>partwarden status</code></span>",
                minute(doc.now)
            );
        }
    }
    out.push_str("</p></header>\n");
}

fn table_block(out: &mut String, t: &PageTable, doc: &PageDoc) {
    let default_attr = match t.default_rows {
        DefaultRows::NoDefault => "none".to_string(),
        DefaultRows::Rows(r) => r.map_or_else(|| "unknown".into(), |n| n.to_string()),
    };
    let _ = write!(
        out,
        "<section class=\"tbl\" data-table=\"{}\" data-default-rows=\"{default_attr}\" \
         data-covered-until=\"{}\" data-retention-cutoff=\"{}\" data-partitions=\"{}\">\
         <h2>{}</h2>",
        esc(&t.label),
        t.covered_until.map(iso).unwrap_or_default(),
        t.retention_cutoff.map(iso).unwrap_or_default(),
        t.partitions.len(),
        esc(&t.label)
    );
    facts(out, t);
    if let Some(e) = &t.error {
        let _ = write!(
            out,
            "<p class=\"error\">Its statistics could not be read: {}</p>",
            esc(e)
        );
    } else if t.read_at.is_none() {
        out.push_str(
            "<p class=\"muted\">Not read yet: statistics come once the database answers.</p>",
        );
    }
    if t.read_at.is_some() || !t.partitions.is_empty() {
        kpis(out, t, doc.now);
        timeline::svg(out, t, doc.now);
        legend(out);
        partition_table(out, t, doc.now);
    }
    actions(out, &t.actions, &doc.origin);
    out.push_str("</section>\n");
}

fn facts(out: &mut String, t: &PageTable) {
    let mut parts = Vec::new();
    if let Some(i) = &t.interval {
        let every = match i.as_str() {
            "day" => "daily".to_string(),
            other => format!("{}ly", esc(other)),
        };
        parts.push(format!("{every} partitions"));
    }
    if let Some(p) = t.premake {
        parts.push(format!("premake {p}"));
    }
    if let Some(r) = &t.retention {
        parts.push(format!("retention {}", esc(r)));
    }
    if let Some(r) = t.read_at {
        parts.push(format!("read {}", minute(r)));
    }
    if !parts.is_empty() {
        let _ = write!(out, "<p class=\"facts\">{}</p>", parts.join(" · "));
    }
}

fn kpis(out: &mut String, t: &PageTable, now: DateTime<Utc>) {
    out.push_str("<div class=\"kpis\">");
    let (class, value, sub) = match t.default_rows {
        DefaultRows::NoDefault => ("muted", "none".to_string(), "no default partition"),
        DefaultRows::Rows(None) => (
            "unknown",
            "unknown".to_string(),
            "not analyzed yet: no estimate",
        ),
        DefaultRows::Rows(Some(0)) => ("ok", "0".to_string(), "estimate: none waiting"),
        DefaultRows::Rows(Some(n)) => (
            "warn",
            group(n),
            "rows no partition covers: every query scans them",
        ),
    };
    kpi(
        out,
        &format!("default {class}"),
        "rows in the default partition",
        &value,
        sub,
    );
    match t.covered_until {
        Some(c) => {
            let days = (c - now).num_seconds() as f64 / 86_400.0;
            kpi(
                out,
                "cover ok",
                "inserts covered until",
                &when(c),
                &format!("{days:.1} days ahead"),
            );
        }
        None => kpi(
            out,
            "cover warn",
            "inserts covered until",
            "not covered",
            "no partition contains now: inserts go to the default partition or fail",
        ),
    }
    if let Some(c) = t.retention_cutoff {
        let at = if c.num_seconds_from_midnight() == 0 {
            String::new()
        } else {
            c.format("at %H:%M UTC; ").to_string()
        };
        let sub = format!(
            "{at}retention {}: partitions ending by then expire",
            t.retention.as_deref().unwrap_or("?")
        );
        kpi(out, "cutoff", "retention cutoff", &day(c), &sub);
    }
    let ranges: Vec<&PagePartition> = t.partitions.iter().filter(|p| !p.is_default).collect();
    let future = ranges
        .iter()
        .filter(|p| p.from.is_some_and(|f| f > now))
        .count();
    kpi(
        out,
        "count",
        "partitions",
        &ranges.len().to_string(),
        &format!("{future} future, besides the default one"),
    );
    out.push_str("</div>");
}

fn kpi(out: &mut String, class: &str, key: &str, value: &str, sub: &str) {
    let _ = write!(
        out,
        "<div class=\"kpi {class}\"><span class=\"k\">{}</span><span class=\"v\">{}</span>\
         <span class=\"s\">{}</span></div>",
        esc(key),
        esc(value),
        esc(sub)
    );
}

fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for s in State::ALL {
        let _ = write!(
            out,
            "<span><i class=\"sw {}\"></i>{}</span>",
            s.class(),
            esc(s.label())
        );
    }
    out.push_str(
        "<span><i class=\"ln now\"></i>now</span><span><i class=\"ln cover\"></i>coverage end</span>\
         <span><i class=\"ln cutoff\"></i>retention cutoff</span></p>",
    );
}

fn partition_table(out: &mut String, t: &PageTable, now: DateTime<Utc>) {
    out.push_str(
        "<table class=\"parts\"><thead><tr><th>partition</th><th>from</th><th>to</th>\
         <th class=\"num\">rows (est.)</th><th class=\"num\">size</th><th>indexes</th>\
         <th>RLS</th><th>state</th></tr></thead><tbody>",
    );
    for p in &t.partitions {
        let st = states(p, now, t.retention_cutoff);
        let mut labels: Vec<&str> = st.iter().map(|s| s.label()).collect();
        if p.indexes_building > 0 {
            labels.push("index building");
        }
        let mut class = st.first().map(|s| s.class()).unwrap_or("").to_string();
        if p.is_default && p.rows.is_some_and(|n| n > 0) {
            class.push_str(" warn");
        }
        let rows_attr = p.rows.map_or_else(|| "unknown".into(), |n| n.to_string());
        let bytes_attr = p.bytes.map(|b| b.to_string()).unwrap_or_default();
        let _ = write!(
            out,
            "<tr class=\"{class}\" data-partition=\"{}\" data-schema=\"{}\" data-from=\"{}\" \
             data-to=\"{}\" data-rows=\"{rows_attr}\" data-bytes=\"{bytes_attr}\" \
             data-state=\"{}\"><td class=\"name\"><i class=\"sw {class}\"></i>{}</td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(&p.schema),
            p.from.map(iso).unwrap_or_default(),
            p.to.map(iso).unwrap_or_default(),
            esc(&labels.join(", ")),
            esc(&p.name),
            p.from.map(when).unwrap_or_else(|| "-".into()),
            p.to.map(when).unwrap_or_else(|| "-".into()),
            rows_text(p.rows),
            esc(&p.size_pretty),
            p.indexes_valid,
            p.indexes_expected,
            if p.rls_ok { "ok" } else { "DRIFT" },
            esc(&labels.join(", ")),
        );
    }
    out.push_str("</tbody></table>");
}

fn actions(out: &mut String, actions: &Actions, origin: &Origin) {
    match actions {
        Actions::NoRunYet => {
            let why = match origin {
                Origin::Daemon { leader: false, .. } => {
                    " This replica is not the leader: the leader runs maintenance."
                }
                _ => "",
            };
            let _ = write!(
                out,
                "<div class=\"actions\" data-actions=\"0\" data-run=\"none\"><h3>Last maintenance \
                 run</h3><p class=\"muted\">No run on this table since the daemon started.{why}</p></div>"
            );
        }
        Actions::LastRun {
            started_at,
            seconds,
            error,
            rows,
            notes,
        } => {
            let failed = error.is_some() || rows.iter().any(|r| r.status == "failed");
            let _ = write!(
                out,
                "<div class=\"actions\" data-actions=\"{}\" data-run=\"{}\" data-run-started=\"{}\">\
                 <h3>Last maintenance run</h3><p class=\"run {}\">",
                rows.len(),
                if failed { "failed" } else { "succeeded" },
                started_at.map(iso).unwrap_or_default(),
                if failed { "bad" } else { "ok" },
            );
            if let Some(s) = started_at {
                let _ = write!(out, "started {}", minute(*s));
            }
            if let Some(s) = seconds {
                let _ = write!(out, ", took {s:.2} s");
            }
            let _ = write!(
                out,
                ": {}",
                match rows.len() {
                    0 if error.is_none() => "nothing to do".to_string(),
                    n => format!("{n} action(s)"),
                }
            );
            out.push_str("</p>");
            if let Some(e) = error {
                let _ = write!(out, "<p class=\"error\">FAILED: {}</p>", esc(e));
            }
            action_table(out, rows, "detail");
            note_list(out, notes);
            out.push_str("</div>");
        }
        Actions::Pending { rows, notes } => {
            let _ = write!(
                out,
                "<div class=\"actions\" data-actions=\"{}\" data-run=\"pending\">\
                 <h3>Pending actions</h3><p class=\"muted\">What <code>partwarden maintain</code> \
                 would do now, from the plan: <code>partwarden status</code> keeps no record of \
                 the daemon's runs (the daemon's own page, <code>/</code>, shows its last run).{}\
                 </p>",
                rows.len(),
                if rows.is_empty() {
                    " Nothing to do."
                } else {
                    ""
                }
            );
            action_table(out, rows, "why");
            note_list(out, notes);
            out.push_str("</div>");
        }
    }
}

fn action_table(out: &mut String, rows: &[ActionRow], detail: &str) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<table class=\"acts\"><thead><tr><th>action</th><th>partition</th><th>status</th>\
         <th>{detail}</th></tr></thead><tbody>"
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr class=\"action {}\" data-kind=\"{}\" data-target=\"{}\" data-status=\"{}\">\
             <td>{}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td></tr>",
            esc(&r.status),
            esc(&r.kind),
            esc(&r.partition),
            esc(&r.status),
            esc(&r.kind.replace('_', " ")),
            esc(&r.partition),
            esc(&r.status),
            esc(&r.detail)
        );
    }
    out.push_str("</tbody></table>");
}

fn note_list(out: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    out.push_str("<ul class=\"notes\">");
    for n in notes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    out.push_str("</ul>");
}

/// Text and attribute values (always written in double quotes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// For `data-*`: RFC 3339, as `/status` writes instants.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A bound or a cutoff: the date, and the time of day when it is not midnight.
pub fn when(t: DateTime<Utc>) -> String {
    if t.num_seconds_from_midnight() == 0 {
        day(t)
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A row count as people read it; an unknown one says so (never 0).
pub fn rows_text(rows: Option<i64>) -> String {
    rows.map_or_else(|| "unknown".into(), group)
}

/// 1234567 → 1,234,567.
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}
