//! The alert path with the real tools: PostgreSQL → partwarden → Prometheus (Debian's, with
//! the shipped rules) → Alertmanager → a webhook receiver, all on loopback. The table loses
//! its future partitions: PartwardenNoFuturePartitions must reach the receiver; then
//! maintenance runs (SIGHUP) and the alert must be resolved.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::daemon::{free_port, http_get, wait_for, Daemon};
use support::{repo_path, TestDb};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(bin: &str) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{bin} is not installed: scripts/check-prometheus.sh installs Debian's prometheus and prometheus-alertmanager"
    );
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

/// A webhook receiver: collects the JSON bodies Alertmanager posts.
fn webhook() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok() {
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                got2.lock().unwrap().push(v);
            }
            let mut s = stream;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

fn notifications(got: &Mutex<Vec<serde_json::Value>>, alert: &str, status: &str) -> bool {
    got.lock().unwrap().iter().any(|n| {
        n["alerts"].as_array().is_some_and(|alerts| {
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == alert && a["status"] == status)
        })
    })
}

#[tokio::test]
async fn no_future_partitions_alert_fires_and_resolves_through_alertmanager() {
    let prometheus = require("prometheus");
    let alertmanager = require("prometheus-alertmanager");
    let db = TestDb::migrated("alerts_e2e").await;
    // The default schedule (02:00 UTC) would recreate the dropped partitions if the test ran
    // then, and the alert would never fire (it did in a CI run at 02:00).
    let mut d = Daemon::start(
        &[
            ("DATABASE_URL", db.owner_url()),
            ("PARTWARDEN__SCHEDULE__MAINTENANCE", "0 0 0 1 1 *".into()),
        ],
        None,
    );
    d.wait_metric(
        "partwarden_maintenance_runs_total{table=\"public.archon_ga4_events\",result=\"success\"}",
        Duration::from_secs(30),
        |v| v >= 1.0,
    );

    let scratch = support::cli::scratch_dir("alerts");
    let dir = scratch.path().to_path_buf();
    std::fs::create_dir_all(dir.join("prom-data")).unwrap();
    std::fs::create_dir_all(dir.join("am-data")).unwrap();
    let (hook_port, got) = webhook();
    let (prom_port, am_port, am_cluster_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, table]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: partwarden\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            repo_path("deploy/prometheus/alerts.yml").display(),
            d.port
        ),
    )
    .unwrap();
    let _am = Killed(
        Command::new(alertmanager)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg(format!(
                "--cluster.listen-address=127.0.0.1:{am_cluster_port}"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    wait_for(Duration::from_secs(30), "prometheus ready", || {
        http_get(prom_port, "/-/ready").filter(|(c, _)| *c == 200)
    });
    wait_for(Duration::from_secs(30), "alertmanager ready", || {
        http_get(am_port, "/-/ready").filter(|(c, _)| *c == 200)
    });
    wait_for(
        Duration::from_secs(30),
        "prometheus scraping partwarden",
        || {
            http_get(
                prom_port,
                "/api/v1/query?query=partwarden_future_partitions",
            )
            .filter(|(_, b)| b.contains("archon_ga4_events") && b.contains("\"3\""))
        },
    );

    // The table loses its future partitions.
    let pool = db.owner_pool().await;
    support::drop_future_partitions(&pool).await;
    d.wait_metric(
        "partwarden_future_partitions{table=\"public.archon_ga4_events\"}",
        Duration::from_secs(10),
        |v| v == 0.0,
    );
    // `for: 1m` in the shipped rule, then Alertmanager's group_wait.
    wait_for(
        Duration::from_secs(150),
        "PartwardenNoFuturePartitions firing at the webhook",
        || notifications(&got, "PartwardenNoFuturePartitions", "firing").then_some(()),
    );

    // Maintenance now (SIGHUP): partitions come back, the alert resolves.
    let _ = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status();
    d.wait_metric(
        "partwarden_future_partitions{table=\"public.archon_ga4_events\"}",
        Duration::from_secs(20),
        |v| v == 3.0,
    );
    wait_for(
        Duration::from_secs(60),
        "PartwardenNoFuturePartitions resolved at the webhook",
        || notifications(&got, "PartwardenNoFuturePartitions", "resolved").then_some(()),
    );
    assert_eq!(d.terminate().0, Some(0));
}
