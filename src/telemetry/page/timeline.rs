//! A table's partitions along a time axis, as inline SVG: one block per range partition
//! (its width is its time range, its colour its state), the default partition in a box of
//! its own at the right, and markers for now, the end of the insert coverage and the
//! retention cutoff.

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};

use super::html::{day, esc, minute, rows_text};
use super::model::{DefaultRows, PagePartition, PageTable};
use super::state::states;

const WIDTH: f64 = 1000.0;
const PAD: f64 = 8.0;
const DEFAULT_BOX: f64 = 104.0;
const BAR_Y: f64 = 22.0;
const BAR_H: f64 = 44.0;
/// A marker's label gets a line of its own under the bar: labels never overlap.
const LABEL_Y0: f64 = BAR_H + BAR_Y + 22.0;
const LABEL_DY: f64 = 16.0;
/// The retention cutoff widens the axis only when that costs the partitions little room;
/// further back it is drawn at the left edge, pointing left.
const CUTOFF_STRETCH: f64 = 0.25;

/// The time axis: instants to x.
struct Axis {
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    x0: f64,
    x1: f64,
}

impl Axis {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.hi - self.lo).num_seconds().max(1) as f64;
        let f = (t - self.lo).num_seconds() as f64 / span;
        self.x0 + f.clamp(0.0, 1.0) * (self.x1 - self.x0)
    }

    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.lo <= t && t <= self.hi
    }
}

pub fn svg(out: &mut String, t: &PageTable, now: DateTime<Utc>) {
    let ranges: Vec<&PagePartition> = t
        .partitions
        .iter()
        .filter(|p| !p.is_default && p.from.is_some() && p.to.is_some())
        .collect();
    let default = t.partitions.iter().find(|p| p.is_default);
    let x1 = WIDTH
        - PAD
        - if default.is_some() {
            DEFAULT_BOX + PAD
        } else {
            0.0
        };
    let axis = axis(&ranges, t, now, PAD, x1);
    let markers = markers(t, now);
    let height = LABEL_Y0 + LABEL_DY * markers.len().saturating_sub(1) as f64 + 8.0;
    let _ = write!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"partitions of {} along time\">",
        esc(&t.label)
    );
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
        axis.x0,
        axis.x1,
        y = BAR_Y + BAR_H + 4.0
    );
    for p in &ranges {
        partition_block(out, p, t, &axis, now);
    }
    if let Some(d) = default {
        let count = match t.default_rows {
            DefaultRows::Rows(r) => r,
            DefaultRows::NoDefault => d.rows,
        };
        default_block(out, d, count, x1 + PAD);
    }
    for (i, m) in markers.iter().enumerate() {
        marker(out, m, &axis, LABEL_Y0 + LABEL_DY * i as f64);
    }
    out.push_str("</svg>");
}

fn axis(ranges: &[&PagePartition], t: &PageTable, now: DateTime<Utc>, x0: f64, x1: f64) -> Axis {
    let mut lo = now;
    let mut hi = now;
    for p in ranges {
        lo = lo.min(p.from.unwrap_or(lo));
        hi = hi.max(p.to.unwrap_or(hi));
    }
    if let Some(c) = t.covered_until {
        hi = hi.max(c);
    }
    if hi - lo < Duration::days(2) {
        lo -= Duration::days(1);
        hi += Duration::days(1);
    }
    if let Some(cutoff) = t.retention_cutoff {
        let stretch = (hi - lo).num_seconds() as f64 * CUTOFF_STRETCH;
        if cutoff < lo && ((lo - cutoff).num_seconds() as f64) <= stretch {
            lo = cutoff;
        }
    }
    // A little room at both ends, so a marker at an end is seen.
    let margin = (hi - lo) / 100;
    Axis {
        lo: lo - margin,
        hi: hi + margin,
        x0,
        x1,
    }
}

fn partition_block(
    out: &mut String,
    p: &PagePartition,
    t: &PageTable,
    axis: &Axis,
    now: DateTime<Utc>,
) {
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return;
    };
    let st = states(p, now, t.retention_cutoff);
    let class = st.first().map(|s| s.class()).unwrap_or("past");
    let (xa, xb) = (axis.x(from), axis.x(to));
    let w = (xb - xa).max(1.0);
    let title = format!(
        "{}: {} to {}, {} rows, {}, {}",
        p.name,
        day(from),
        day(to),
        rows_text(p.rows),
        p.size_pretty,
        st.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
    );
    let _ = write!(
        out,
        "<g class=\"p {class}\"><title>{}</title>\
         <rect x=\"{xa:.1}\" y=\"{BAR_Y}\" width=\"{w:.1}\" height=\"{BAR_H}\" rx=\"3\"/>",
        esc(&title)
    );
    if let Some(label) = block_label(from, t.interval.as_deref(), w) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            xa + w / 2.0,
            BAR_Y + BAR_H / 2.0 + 4.0,
            esc(&label)
        );
    }
    out.push_str("</g>");
}

/// The partition's start, as long as fits its block (about 6.5 px a character).
fn block_label(from: DateTime<Utc>, interval: Option<&str>, width: f64) -> Option<String> {
    let candidates = match interval {
        Some("month") => [from.format("%b %Y"), from.format("%b")],
        Some("day") => [from.format("%Y-%m-%d"), from.format("%d")],
        _ => [from.format("%Y-%m-%d"), from.format("%m-%d")],
    };
    candidates
        .iter()
        .map(ToString::to_string)
        .find(|s| s.chars().count() as f64 * 6.5 + 6.0 <= width)
}

fn default_block(out: &mut String, d: &PagePartition, count: Option<i64>, x: f64) {
    let warn = if count.is_some_and(|n| n > 0) {
        " warn"
    } else {
        ""
    };
    let cx = x + DEFAULT_BOX / 2.0;
    let _ = write!(
        out,
        "<g class=\"p default{warn}\"><title>{}: default partition, {} rows, {}</title>\
         <rect x=\"{x:.1}\" y=\"{BAR_Y}\" width=\"{DEFAULT_BOX}\" height=\"{BAR_H}\" rx=\"3\"/>\
         <text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\">default</text>\
         <text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\">{} rows</text></g>",
        esc(&d.name),
        rows_text(count),
        esc(&d.size_pretty),
        BAR_Y + 17.0,
        BAR_Y + 34.0,
        rows_text(count)
    );
}

struct Marker {
    class: &'static str,
    at: DateTime<Utc>,
    label: String,
}

fn markers(t: &PageTable, now: DateTime<Utc>) -> Vec<Marker> {
    let mut m = vec![Marker {
        class: "now",
        at: now,
        label: format!("now {}", minute(now)),
    }];
    if let Some(c) = t.covered_until {
        m.push(Marker {
            class: "cover",
            at: c,
            label: format!("inserts covered until {}", day(c)),
        });
    }
    if let Some(c) = t.retention_cutoff {
        m.push(Marker {
            class: "cutoff",
            at: c,
            label: format!("retention cutoff {}", day(c)),
        });
    }
    m
}

fn marker(out: &mut String, m: &Marker, axis: &Axis, label_y: f64) {
    let x = axis.x(m.at);
    let mut label = m.label.clone();
    if !axis.contains(m.at) {
        label = if m.at < axis.lo {
            format!("◀ {label} (further back)")
        } else {
            format!("{label} (further ahead) ▶")
        };
    }
    let anchor = if x < (axis.x0 + axis.x1) / 2.0 {
        "start"
    } else {
        "end"
    };
    let _ = write!(
        out,
        "<g class=\"m {}\"><line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\"/>\
         <text x=\"{x:.1}\" y=\"{label_y}\" text-anchor=\"{anchor}\">{}</text></g>",
        m.class,
        BAR_Y - 10.0,
        label_y - 11.0,
        esc(&label)
    );
}
