//! The HTTP side of the metrics listener: one request per connection, GET
//! or HEAD of `/metrics`, `/healthz` or `/readyz`. No web framework: that
//! is all a scraper or a load balancer's probe needs.
//!
//! Whoever can reach the port can send anything, so every connection is
//! bounded: the request head in bytes and in time, the connections
//! answered at once, the whole exchange in time. A hostile client costs a
//! slot for a few seconds and never the TURN service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::super::driver::Shared;
use super::super::health::Readiness;
use super::{Format, negotiate, render};

/// Scrapes answered at once; more connections are closed unanswered.
const MAX_SCRAPES_AT_ONCE: usize = 16;

/// Longest request head read (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 8192;

/// A client has this long to send its request head (slowloris).
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// The whole exchange, answer written included, ends within this.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);

/// Serves the endpoints on `listener` until the server stops.
pub async fn run(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    // A failed accept is backed off like the TURN listeners', and scrapes
    // at once are few: the endpoint must not spend the relays' files.
    let mut acceptor = super::super::accept::Acceptor::without_reserve(listener);
    let scrapes = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES_AT_ONCE));
    loop {
        let (stream, _) = acceptor.accept().await;
        let Ok(permit) = scrapes.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let _ = tokio::time::timeout(EXCHANGE_DEADLINE, answer(&mut stream, &shared)).await;
            // The slot first, then the connection: a client that sees its
            // connection closed finds the slot free again.
            drop(permit);
            drop(stream);
        });
    }
}

/// What a request asked for, as far as the answer depends on it.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The path, without a query.
    path: &'a str,
    accept: Option<&'a str>,
}

/// Why a request head could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadRequest {
    /// Longer than [`MAX_REQUEST_HEAD`] without its end.
    TooLarge,
    /// Not an HTTP/1 request line.
    Malformed,
}

/// Reads the request head; `Ok(None)` if the client went away first.
async fn read_head(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, BadRequest> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return Err(BadRequest::TooLarge);
        }
        let room = (MAX_REQUEST_HEAD - head.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The request line and the Accept header of `head`.
fn parse(head: &[u8]) -> Result<Request<'_>, BadRequest> {
    let head = std::str::from_utf8(head).map_err(|_| BadRequest::Malformed)?;
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(BadRequest::Malformed);
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(BadRequest::Malformed);
    }
    let path = target.split('?').next().unwrap_or(target);
    let accept = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim());
    Ok(Request {
        method,
        path,
        accept,
    })
}

/// An answer: status line, content type, body, and extra header lines.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    extra: &'static str,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra: "",
        }
    }
}

async fn answer(stream: &mut TcpStream, shared: &Shared) -> Result<()> {
    let head = match tokio::time::timeout(REQUEST_DEADLINE, read_head(stream)).await {
        // Too slow: the slot is wanted by a real scraper.
        Err(_) | Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(head))) => Ok(head),
        Ok(Err(e)) => Err(e),
    };
    let (answer, send_body) = match head.as_deref().map_err(|e| *e).and_then(parse) {
        Err(BadRequest::TooLarge) => (
            Answer::text(
                "431 Request Header Fields Too Large",
                "request head too large\n",
            ),
            true,
        ),
        Err(BadRequest::Malformed) => (Answer::text("400 Bad Request", "bad request\n"), true),
        Ok(request) => route(&request, shared),
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len(),
        answer.extra,
    );
    stream.write_all(head.as_bytes()).await?;
    if send_body {
        stream.write_all(answer.body.as_bytes()).await?;
    }
    stream.shutdown().await?;
    Ok(())
}

/// The answer to `request`, and whether its body is sent (not for HEAD).
fn route(request: &Request<'_>, shared: &Shared) -> (Answer, bool) {
    let known = matches!(request.path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        let body = "edgeice serves /metrics, /healthz and /readyz\n";
        return (
            Answer::text("404 Not Found", body),
            request.method != "HEAD",
        );
    }
    let head = match request.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut answer = Answer::text("405 Method Not Allowed", "only GET and HEAD\n");
            answer.extra = "Allow: GET, HEAD\r\n";
            return (answer, true);
        }
    };
    let answer = match request.path {
        "/healthz" => match shared.health.alive(Instant::now()) {
            Ok(()) => Answer::text("200 OK", "alive\n"),
            Err(why) => Answer::text("503 Service Unavailable", format!("{why}\n")),
        },
        "/readyz" => match not_ready(shared) {
            None => Answer::text("200 OK", "ready\n"),
            Some(why) => Answer::text("503 Service Unavailable", format!("{why}\n")),
        },
        _ => metrics(shared, negotiate(request.accept)),
    };
    (answer, !head)
}

/// Why the server should not be sent clients now, if it should not.
fn not_ready(shared: &Shared) -> Option<String> {
    // Stalled timers may mean a shard lock held: say so without waiting
    // for one.
    if let Err(why) = shared.health.alive(Instant::now()) {
        return Some(why);
    }
    let why = match shared.health.readiness() {
        Readiness::Starting => Some("starting: the listeners are not all up yet"),
        Readiness::Draining => Some("draining: taking no new allocations"),
        Readiness::Ready if !shared.can_authenticate() => {
            Some("no users loaded: every Allocate would be refused")
        }
        Readiness::Ready => None,
    };
    why.map(str::to_owned)
}

fn metrics(shared: &Shared, format: Format) -> Answer {
    let mut snapshot = shared.snapshot();
    snapshot.process = match super::process::read() {
        Ok(process) => Some(process),
        Err(e) => {
            tracing::debug!("process metrics: cannot read /proc: {e}");
            None
        }
    };
    match render(snapshot, format) {
        Ok(body) => Answer {
            status: "200 OK",
            content_type: format.content_type(),
            body,
            extra: "",
        },
        Err(e) => Answer::text("500 Internal Server Error", format!("{e:#}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_and_accept_are_read() {
        let request = parse(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\naCCept:  application/openmetrics-text\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            request,
            Request {
                method: "GET",
                path: "/metrics",
                accept: Some("application/openmetrics-text"),
            }
        );
        let request = parse(b"HEAD /readyz HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            (request.method, request.path, request.accept),
            ("HEAD", "/readyz", None)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse(bad), Err(BadRequest::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn any_bytes_parse_or_are_refused_without_panicking() {
        // A small xorshift: the same sequence every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"GETHAD /?:\r\n\t\xff\x00metricsacp;q=,HTTP/1.";
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let head: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(request) = parse(&head) {
                assert!(request.path.starts_with('/'));
                let _ = super::negotiate(request.accept);
            }
        }
    }
}
