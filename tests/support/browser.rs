//! A real browser: Debian's `chromium`, headless (scripts/test.sh installs it), to render
//! a page and dump its DOM or take a screenshot; and a few lines of DOM reading for what
//! the tests compare (attributes of one kind of element, the text of its cells).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A browser that hangs is killed (with every process it started) after this long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The DOM of `url` once the page has loaded, as chromium serializes it.
pub fn dump_dom(url: &str) -> String {
    let dir = super::cli::scratch_dir("chromium");
    let out = dir.path().join("dom.html");
    chromium(dir.path(), &["--dump-dom", url], &out);
    std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()))
}

/// A `width`×`height` PNG of `url`, written to `png`.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32) {
    let dir = super::cli::scratch_dir("chromium");
    let log = dir.path().join("stdout.txt");
    chromium(
        dir.path(),
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},{height}"),
            "--hide-scrollbars",
            url,
        ],
        &log,
    );
}

/// Runs headless chromium with `args` (its own profile in `dir`, stdout to `stdout`);
/// panics with its output when it fails, is missing, or outlives [`TIMEOUT`].
fn chromium(dir: &Path, args: &[&str], stdout: &Path) {
    let stderr_path = dir.join("stderr.txt");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        // As root chromium refuses to start with its sandbox; the page is our own.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(stdout).unwrap())
    .stderr(std::fs::File::create(&stderr_path).unwrap())
    // Its own process group, so a timeout kills the renderer and GPU processes too.
    .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run chromium ({e}): the status page's browser test needs Debian's \
             chromium; scripts/test.sh installs it (apt-get install -y chromium)"
        )
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish within {TIMEOUT:?}; its stderr:\n{}",
                tail(&stderr_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium {args:?} failed ({status}); its stderr:\n{}",
        tail(&stderr_path)
    );
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One element of a serialized DOM: its attributes and what is inside it.
#[derive(Debug, Clone)]
pub struct Element {
    pub attrs: BTreeMap<String, String>,
    pub inner: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.attrs))
    }

    /// The text of each `<td>`, tags left out and entities decoded.
    pub fn cells(&self) -> Vec<String> {
        self.inner
            .split("<td")
            .skip(1)
            .map(|cell| {
                let body = cell.split_once('>').map(|(_, b)| b).unwrap_or_default();
                let body = body.split("</td>").next().unwrap_or_default();
                unescape(&strip_tags(body))
            })
            .collect()
    }
}

/// Every `<tag …>` element of `dom` that has attribute `marker` (elements of that tag
/// are not nested in the pages tested).
pub fn elements(dom: &str, tag: &str, marker: &str) -> Vec<Element> {
    let open = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let end = tag_end(rest);
        let attrs = attributes(&rest[..end]);
        let after = &rest[end + 1..];
        let inner = after.find(&close).map(|j| &after[..j]).unwrap_or(after);
        if attrs.contains_key(marker) {
            out.push(Element {
                attrs,
                inner: inner.to_string(),
            });
        }
    }
    out
}

/// The `>` that ends a start tag whose attributes begin `s` (quoted values may hold `>`).
fn tag_end(s: &str) -> usize {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return i,
            _ => {}
        }
    }
    s.len()
}

/// `name="value"` pairs (chromium writes every value in double quotes).
fn attributes(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().rsplit(' ').next().unwrap_or_default();
        let value_start = eq + 2;
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        out.insert(
            name.to_string(),
            unescape(&rest[value_start..value_start + len]),
        );
        rest = &rest[value_start + len + 1..];
    }
    out
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
