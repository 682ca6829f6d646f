//! A stand-in for a PostgreSQL server of a version no test cluster runs (an old one): it
//! answers the startup handshake — no TLS, no password, its `server_version` — and then
//! reads until the client hangs up. Enough for a client that checks the version it
//! announces at startup; any query gets no answer.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct FakeServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// How many startup handshakes it completed.
    pub handshakes: Arc<AtomicUsize>,
}

impl FakeServer {
    /// Listens on a free loopback port, announcing `server_version` (e.g. `13.14 (Debian
    /// 13.14-0+deb11u1)`) to every client.
    pub fn start(server_version: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (s, h, version) = (stop.clone(), handshakes.clone(), server_version.to_string());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (h, version) = (h.clone(), version.clone());
                        std::thread::spawn(move || {
                            if serve(conn, &version).is_ok() {
                                h.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeServer {
            port,
            stop,
            handshakes,
        }
    }

    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_i32(conn: &mut TcpStream) -> std::io::Result<i32> {
    let mut b = [0u8; 4];
    conn.read_exact(&mut b)?;
    Ok(i32::from_be_bytes(b))
}

/// A backend message: type byte, length (itself included), body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn serve(mut conn: TcpStream, server_version: &str) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    // SSLRequest (80877103) or GSSENCRequest (80877104) first: refused with 'N'; then
    // the StartupMessage (protocol 3.0).
    loop {
        let len = read_i32(&mut conn)?;
        let code = read_i32(&mut conn)?;
        let mut rest = vec![0u8; (len - 8).max(0) as usize];
        conn.read_exact(&mut rest)?;
        if code == 80_877_103 || code == 80_877_104 {
            conn.write_all(b"N")?;
            continue;
        }
        break;
    }
    let mut out = message(b'R', &0i32.to_be_bytes()); // AuthenticationOk
    for (name, value) in [
        ("server_version", server_version),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        let mut body = Vec::new();
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
        out.extend(message(b'S', &body));
    }
    let mut key = Vec::new();
    key.extend_from_slice(&4242i32.to_be_bytes());
    key.extend_from_slice(&7i32.to_be_bytes());
    out.extend(message(b'K', &key)); // BackendKeyData
    out.extend(message(b'Z', b"I")); // ReadyForQuery, idle
    conn.write_all(&out)?;
    // Whatever comes next (Terminate, a query) is read and dropped until the client goes.
    let mut sink = [0u8; 1024];
    while conn.read(&mut sink)? > 0 {}
    Ok(())
}
