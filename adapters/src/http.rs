//! What every HTTP destination shares: a pooled client with explicit timeouts that never follows
//! a redirect, and the usual reading of status codes (2xx delivered; 408, 425, 429 and 5xx
//! retried, honouring `Retry-After`; a redirect retried with an alarm; any other status refused).
//!
//! Redirects are not followed because every destination is configured by URL: a redirect is
//! either a misconfiguration (`http` to `https`, a moved path) or an upstream, or whoever sits in
//! front of it, steering the gateway's requests (bodies, bearer tokens, the portal session) to
//! an address nobody configured. Either way a person must look.

use std::time::{Duration, SystemTime};

use crate::Outcome;
use crate::evidence::{self, Direction, Exchange, Label};

/// The most of an answer read for the evidence log from a counterpart whose answer says nothing
/// but its status (the centre's webhook, EMC): more is noted as too large, and judged by status.
pub const MAX_PLAIN_ANSWER: usize = 64 * 1024;

/// A pooled client whose every request carries a connect and a total timeout, and which
/// answers a redirect with the redirect itself (a 3xx response), never by following it.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("hcc-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The status code alone decides, for destinations whose body carries nothing more.
pub fn classify_status(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let code = status.as_u16();
    if status.is_redirection() {
        // Not the message's fault, so it is kept and retried; the Location is attacker-
        // controllable text and is neither followed nor logged.
        tracing::error!(
            alarm = true,
            status = code,
            "upstream answered a redirect, which is not followed: check the configured URL"
        );
        return Outcome::Retry {
            reason: format!("upstream answered a redirect (HTTP {code}), which is not followed"),
            after: None,
        };
    }
    if matches!(code, 408 | 425 | 429) || status.is_server_error() {
        return Outcome::Retry {
            reason: format!("upstream answered HTTP {code}"),
            after: retry_after(headers, SystemTime::now()),
        };
    }
    Outcome::reject(format!("upstream refused the message: HTTP {code}"))
}

/// Reads the whole answer before judging it: a connection that breaks after the status line
/// leaves the outcome unknown, so it is a retry, never a delivery.
pub async fn classify_response(resp: reqwest::Response) -> Outcome {
    let status = resp.status();
    let headers = resp.headers().clone();
    match resp.bytes().await {
        Ok(_) => classify_status(status, &headers),
        Err(e) => classify_error(&e),
    }
}

/// Transport failures are always transient: the message itself was never judged.
pub fn classify_error(err: &reqwest::Error) -> Outcome {
    Outcome::retry(format!("upstream {}", transport_failure(err)))
}

/// Why an answer's body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is longer than the caller takes: not the counterpart's usual answer.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection broke or timed out while the body was read.
    #[error("the answer could not be read")]
    Transport(#[from] reqwest::Error),
}

/// Reads an answer's body, at most `max` bytes: a declared length over it is refused before
/// anything is read, and the body is read chunk by chunk so an endless one stops at `max`.
pub async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How calls out join the gateway's traces: set once at start-up by the gateway when traces
/// are on ([`propagate_traces`]). Absent, no call carries a `traceparent`.
struct TracePropagation {
    /// The W3C `traceparent` naming a span, when the span is part of a sampled trace.
    traceparent_of: fn(&tracing::Span) -> Option<String>,
    /// Counterparts (by section name) whose calls carry none.
    withheld: Vec<String>,
}

static TRACE_PROPAGATION: std::sync::OnceLock<TracePropagation> = std::sync::OnceLock::new();

/// Makes every call out (every [`send`]) carry the `traceparent` of its own span, except calls
/// to the counterparts in `withheld`. `traceparent_of` is the gateway's reading of a span's
/// trace context (this crate knows spans, not traces). Only the first call takes effect: it
/// returns whether this one did.
pub fn propagate_traces(traceparent_of: fn(&tracing::Span) -> Option<String>, withheld: Vec<String>) -> bool {
    TRACE_PROPAGATION.set(TracePropagation { traceparent_of, withheld }).is_ok()
}

/// Adds the `traceparent` of `span` to a call to `counterpart`, unless traces are off or the
/// counterpart's section withholds them.
fn add_traceparent(span: &tracing::Span, counterpart: &str, headers: &mut reqwest::header::HeaderMap) {
    let Some(p) = TRACE_PROPAGATION.get() else {
        return;
    };
    if p.withheld.iter().any(|w| w == counterpart) {
        return;
    }
    if let Some(value) = (p.traceparent_of)(span).and_then(|t| reqwest::header::HeaderValue::from_str(&t).ok()) {
        headers.insert("traceparent", value);
    }
}

/// Sends `req`. While traces are on ([`propagate_traces`]) it goes inside a span of its own
/// (`<counterpart> <operation>`, a client span: its method, host and answer status, never its
/// path or query, which may hold a token), which the call's `traceparent` names.
///
/// Inside an evidence scope ([`crate::evidence`]) the answer is read here, whole and at most
/// `max_answer` bytes, so that its exact bytes can be digested, and handed back as an answer
/// with the same status, headers and body; the exchange is noted under `label`.
///
/// The request's bytes are its body, or, for a request without one, its path and query.
/// An answer longer than `max_answer` is noted as such and handed back cut at one byte over
/// the bound, which every reader of that counterpart refuses as too large or malformed; a
/// transport failure is noted and returned as it came.
pub async fn send(req: reqwest::RequestBuilder, label: Label, max_answer: usize) -> reqwest::Result<reqwest::Response> {
    let (client, request) = req.build_split();
    let mut request = request?;
    if TRACE_PROPAGATION.get().is_none() {
        // Traces are off: no span, so log lines keep their shape.
        return exchange(client, request, label, max_answer).await;
    }
    let span = tracing::info_span!(
        "call",
        otel.name = %format_args!("{} {}", label.counterpart, label.operation),
        otel.kind = "client",
        counterpart = %label.counterpart,
        operation = %label.operation,
        http.request.method = %request.method(),
        server.address = request.url().host_str().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
    );
    add_traceparent(&span, &label.counterpart, request.headers_mut());
    let sent = tracing::Instrument::instrument(exchange(client, request, label, max_answer), span.clone()).await;
    if let Ok(r) = &sent {
        span.record("http.response.status_code", i64::from(r.status().as_u16()));
    }
    sent
}

/// Executes `request`, noting the exchange inside an evidence scope (see [`send`]).
async fn exchange(
    client: reqwest::Client,
    request: reqwest::Request,
    label: Label,
    max_answer: usize,
) -> reqwest::Result<reqwest::Response> {
    if !evidence::noting() {
        return client.execute(request).await;
    }
    let request_bytes: Vec<u8> = match request.body().and_then(|b| b.as_bytes()) {
        Some(b) => b.to_vec(),
        None => {
            let url = request.url();
            match url.query() {
                Some(q) => format!("{}?{q}", url.path()).into_bytes(),
                None => url.path().as_bytes().to_vec(),
            }
        }
    };
    let mut resp = match client.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            evidence::note(Exchange::new(Direction::Out, &label, &request_bytes, None).failed(transport_failure(&e)));
            return Err(e);
        }
    };
    let status = resp.status();
    let version = resp.version();
    let headers = std::mem::take(resp.headers_mut());
    let mut body = Vec::new();
    let mut over = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > max_answer {
                    body.truncate(max_answer + 1);
                    over = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                evidence::note(
                    Exchange::new(Direction::Out, &label, &request_bytes, None)
                        .status(status.as_u16())
                        .failed(transport_failure(&e)),
                );
                return Err(e);
            }
        }
    }
    let mut exchange = Exchange::new(Direction::Out, &label, &request_bytes, Some(&body)).status(status.as_u16());
    if over {
        exchange = exchange.failed(format!(
            "the answer is larger than {max_answer} bytes (the digest is of the first {} bytes)",
            max_answer + 1
        ));
    }
    evidence::note(exchange);
    let mut rebuilt = ::http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    if over {
        // The length the answer declared no longer describes the body handed on.
        rebuilt.headers_mut().remove(reqwest::header::CONTENT_LENGTH);
    }
    Ok(reqwest::Response::from(rebuilt))
}

/// What went wrong with a transport, in words (never the URL: it may hold a token).
fn transport_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "answer could not be read"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn status_codes_map_to_outcomes() {
        let h = HeaderMap::new();
        assert_eq!(classify_status(StatusCode::OK, &h), Outcome::Delivered);
        assert_eq!(classify_status(StatusCode::NO_CONTENT, &h), Outcome::Delivered);
        assert!(matches!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, &h),
            Outcome::Retry { .. }
        ));
        assert!(matches!(classify_status(StatusCode::TOO_MANY_REQUESTS, &h), Outcome::Retry { .. }));
        assert!(matches!(classify_status(StatusCode::REQUEST_TIMEOUT, &h), Outcome::Retry { .. }));
        assert!(matches!(classify_status(StatusCode::BAD_REQUEST, &h), Outcome::Reject { .. }));
        assert!(matches!(classify_status(StatusCode::NOT_FOUND, &h), Outcome::Reject { .. }));
        for redirect in [
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::FOUND,
            StatusCode::TEMPORARY_REDIRECT,
            StatusCode::PERMANENT_REDIRECT,
        ] {
            assert_eq!(
                classify_status(redirect, &h),
                Outcome::Retry {
                    reason: format!("upstream answered a redirect (HTTP {}), which is not followed", redirect.as_u16()),
                    after: None
                }
            );
        }
    }

    /// A local server answering every request with a redirect to a second one; the client
    /// must hand back the 302 and the second server must never hear a request.
    #[tokio::test]
    async fn the_client_never_follows_a_redirect() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_addr = target.local_addr().unwrap();
        let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirector_addr = redirector.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = redirector.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://{target_addr}/stolen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let c = client(Duration::from_secs(5)).unwrap();
        let resp = c.post(format!("http://{redirector_addr}/")).body("secret").send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
        assert!(matches!(classify_response(resp).await, Outcome::Retry { .. }));
        let reached = tokio::time::timeout(Duration::from_millis(300), target.accept()).await;
        assert!(reached.is_err(), "the redirect target was called");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, SystemTime::now()), Some(Duration::from_secs(7)));
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 12:00:00 GMT").unwrap();
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 25 Nov 2026 12:01:30 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(90)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("whenever"));
        assert_eq!(retry_after(&h, now), None);
        let out = classify_status(StatusCode::TOO_MANY_REQUESTS, &{
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
            h
        });
        assert_eq!(
            out,
            Outcome::Retry {
                reason: "upstream answered HTTP 429".into(),
                after: Some(Duration::from_secs(3))
            }
        );
    }

    /// Inside an evidence scope the answer is read for its digest and handed on unchanged;
    /// the digests are of the exact bytes each side saw; an answer over the bound is noted and
    /// handed on cut one byte over it, which a bounded reader refuses.
    #[tokio::test]
    async fn a_scoped_call_notes_the_exact_bytes_and_hands_the_answer_on() {
        use std::sync::{Arc, Mutex};

        use crate::evidence::{self, Exchange, Recorder, Subject};
        use crate::testing::{Reply, serve};

        #[derive(Default)]
        struct Collect(Mutex<Vec<Exchange>>);
        impl Recorder for Collect {
            fn record(&self, _: &Subject, e: Exchange, _: &str) {
                self.0.lock().unwrap().push(e);
            }
        }
        let (url, seen) = serve(Arc::new(|r: &crate::testing::Request, _| {
            if r.path == "/big" {
                Reply::With(200, "text/plain", vec![b'x'; 100])
            } else {
                Reply::With(201, "application/json", br#"{"ok":true}"#.to_vec())
            }
        }))
        .await;
        let collect = Arc::new(Collect::default());
        let recorder: Arc<dyn Recorder> = collect.clone();
        let c = client(Duration::from_secs(5)).unwrap();
        let (answer, noted) = evidence::scope(Some(&recorder), Subject::default(), async {
            let resp = send(c.post(format!("{url}/x")).body("the request"), Label::new("t", "x"), 1024)
                .await
                .unwrap();
            let status = resp.status();
            let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
            (status, ct, resp.bytes().await.unwrap())
        })
        .await;
        noted.settle("ok");
        assert_eq!(answer.0.as_u16(), 201);
        assert_eq!(answer.1.unwrap(), "application/json");
        assert_eq!(&answer.2[..], br#"{"ok":true}"#);
        assert_eq!(seen.lock().unwrap()[0].body, b"the request");
        {
            let got = collect.0.lock().unwrap();
            assert_eq!(got[0].request_sha256, Some(hcc_core::sha256(b"the request")));
            assert_eq!(got[0].answer_sha256, Some(hcc_core::sha256(br#"{"ok":true}"#)));
            assert_eq!(got[0].status, Some(201));
        }
        let (over, noted) = evidence::scope(Some(&recorder), Subject::default(), async {
            let resp = send(c.get(format!("{url}/big")), Label::new("t", "big"), 10).await.unwrap();
            read_bounded(resp, 10).await
        })
        .await;
        noted.settle("ok");
        assert!(matches!(over, Err(ReadError::TooLarge(10))));
        let got = collect.0.lock().unwrap();
        assert_eq!(got[1].answer_len, 11);
        assert!(got[1].failure.as_deref().is_some_and(|f| f.contains("larger")), "{:?}", got[1]);
        assert_eq!(got[1].request_sha256, Some(hcc_core::sha256(b"/big")), "no body: the path");
    }
}
