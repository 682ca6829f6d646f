//! A deliberately small HTTP/1.1 server for `/metrics`, `/healthz`, `/readyz` and
//! `/status`: GET and HEAD only, one request per connection, bounded request size and
//! read time, so a malformed or slow client costs a task and nothing else.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

const MAX_REQUEST_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoints serve.
pub trait Endpoints: Send + Sync + 'static {
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
    /// Database reachable and configuration valid.
    fn ready(&self) -> Result<(), String>;
    /// JSON document of the last run and the partitions.
    fn status_json(&self) -> String;
}

pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(code: u16, body: impl Into<String>) -> Response {
        Response {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Routes one request line (`GET /metrics HTTP/1.1`).
pub fn route(request_line: &str, endpoints: &dyn Endpoints) -> (Response, bool) {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (Response::text(400, "malformed request line\n"), false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Response::text(400, "unsupported protocol\n"), false);
    }
    let head = method == "HEAD";
    if method != "GET" && !head {
        return (Response::text(405, "only GET and HEAD\n"), head);
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    let resp = match path {
        "/metrics" => Response {
            code: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: endpoints.metrics(),
        },
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => match endpoints.ready() {
            Ok(()) => Response::text(200, "ready\n"),
            Err(why) => Response::text(503, format!("not ready: {why}\n")),
        },
        "/status" => Response {
            code: 200,
            content_type: "application/json",
            body: endpoints.status_json(),
        },
        _ => Response::text(
            404,
            "not found: try /metrics, /healthz, /readyz or /status\n",
        ),
    };
    (resp, head)
}

async fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    head: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        resp.code,
        reason(resp.code),
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head {
        stream.write_all(resp.body.as_bytes()).await?;
    }
    stream.shutdown().await
}

async fn handle(mut stream: TcpStream, endpoints: Arc<dyn Endpoints>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if buf.len() > MAX_REQUEST_BYTES {
                return Ok(false);
            }
        }
    })
    .await;
    let resp = match read {
        Err(_) => Some((Response::text(408, "request timeout\n"), false)),
        Ok(Err(_)) => None,
        Ok(Ok(false)) if buf.len() > MAX_REQUEST_BYTES => {
            Some((Response::text(413, "request too large\n"), false))
        }
        Ok(Ok(false)) => None, // closed before a full request
        Ok(Ok(true)) => {
            let text = String::from_utf8_lossy(&buf);
            let line = text.lines().next().unwrap_or("");
            Some(route(line, endpoints.as_ref()))
        }
    };
    if let Some((resp, head)) = resp {
        if let Err(e) = write_response(&mut stream, &resp, head).await {
            debug!("http write: {e}");
        }
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    endpoints: Arc<dyn Endpoints>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, endpoints.clone()));
                }
                Err(e) => {
                    debug!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(bool);
    impl Endpoints for Fake {
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
        fn ready(&self) -> Result<(), String> {
            if self.0 {
                Ok(())
            } else {
                Err("database unreachable".into())
            }
        }
        fn status_json(&self) -> String {
            "{}".into()
        }
    }

    #[test]
    fn routes() {
        let up = Fake(true);
        assert_eq!(route("GET /metrics HTTP/1.1", &up).0.code, 200);
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0", &up).0.code, 200);
        assert_eq!(route("HEAD /healthz HTTP/1.1", &up).0.code, 200);
        assert_eq!(route("GET /readyz HTTP/1.1", &up).0.code, 200);
        assert_eq!(route("GET /readyz HTTP/1.1", &Fake(false)).0.code, 503);
        assert_eq!(route("GET /nope HTTP/1.1", &up).0.code, 404);
        assert_eq!(route("POST /metrics HTTP/1.1", &up).0.code, 405);
        assert_eq!(route("garbage", &up).0.code, 400);
        assert_eq!(route("GET /metrics SPDY/3", &up).0.code, 400);
        assert_eq!(route("", &up).0.code, 400);
    }
}
