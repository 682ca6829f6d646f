//! A private PostgreSQL cluster for the tests that need one of their own (a hot standby),
//! from the same binaries as the shared test cluster, run as `nobody` when we are root.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use super::daemon::free_port;
use super::pg_bin;

pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary as the unprivileged user when we are root.
fn pg(bin: &str, args: &[&str]) {
    let path = pg_bin().join(bin);
    let out = if is_root() {
        Command::new("runuser")
            .arg("-u")
            .arg("nobody")
            .arg("--")
            .arg(&path)
            .args(args)
            .output()
    } else {
        Command::new(&path).args(args).output()
    }
    .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateCluster {
    fn new_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pw-cluster-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("nobody")
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown nobody {}", dir.display());
        }
        dir
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        pg(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    pub fn start(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=80",
            self.port,
            self.dir.display()
        );
        pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                &opts,
            ],
        );
    }

    /// `pg_ctl restart -m immediate`: every session is cut off without a checkpoint, and
    /// the server recovers from its WAL (a crash, as far as sessions can tell).
    pub fn restart_immediate(&self) {
        let data = self.dir.join("data");
        // -l: the restarted server must not inherit our pipes (output() would wait forever).
        let log = self.dir.join("log");
        pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "restart",
            ],
        );
    }

    /// The roles and extension the project expects, as `scripts/pg.sh` sets them up.
    pub fn bootstrap(&self) {
        let sql = "CREATE ROLE partwarden LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE;
                   CREATE ROLE app_user LOGIN NOSUPERUSER NOBYPASSRLS;";
        let out = Command::new(super::pg_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url("postgres", "postgres"),
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new primary with trust authentication on loopback.
    pub fn primary(label: &str) -> PrivateCluster {
        let c = PrivateCluster {
            dir: Self::new_dir(label),
            port: free_port(),
        };
        let data = c.dir.join("data");
        pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        c.start();
        c
    }

    /// A hot standby streaming from `primary`.
    pub fn standby_of(primary: &PrivateCluster, label: &str) -> PrivateCluster {
        let c = PrivateCluster {
            dir: Self::new_dir(label),
            port: free_port(),
        };
        let data = c.dir.join("data");
        let port = primary.port.to_string();
        pg(
            "pg_basebackup",
            &[
                "-D",
                data.to_str().unwrap(),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        c.start();
        c
    }

    /// A login role `role` with `password` and a database `db` it owns, the role
    /// admitted over loopback only with that password (SCRAM), everyone else still by
    /// trust. Returns once the server enforces it.
    pub async fn require_password(&self, role: &str, password: &str, db: &str) {
        use sqlx::{Connection, Executor};
        let mut su = sqlx::PgConnection::connect(&self.url("postgres", "postgres"))
            .await
            .unwrap();
        su.execute(format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'").as_str())
            .await
            .unwrap();
        su.execute(format!("CREATE DATABASE {db} OWNER {role}").as_str())
            .await
            .unwrap();
        // pg_hba.conf is read top down: this line must come before the trust ones.
        let hba = self.dir.join("data").join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        let line = format!("host all {role} 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(&hba, format!("{line}{old}")).unwrap();
        su.execute("SELECT pg_reload_conf()").await.unwrap();
        // The reload is a signal: wait until a connection without the password is refused.
        let start = std::time::Instant::now();
        while sqlx::PgConnection::connect(&self.url(role, db))
            .await
            .is_ok()
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "pg_hba.conf not reloaded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let path = pg_bin().join("pg_ctl");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .arg("-u")
                .arg("nobody")
                .arg("--")
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
