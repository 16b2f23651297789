//! The body of a request: content type checked (415), size limited while reading (413,
//! and a `Content-Length` over the limit is refused before a byte is read), parsed with
//! serde_json's nesting limit so a JSON bomb is a 400, not a stack overflow.
//!
//! Reading a body cannot hold the server (issue 20): it is read chunk by chunk into a buffer
//! that grows with what arrived, never with what `Content-Length` declares; the whole read has
//! a deadline (`server.body_read_timeout_ms`, then 408); and every byte held while bodies are
//! being received counts against one budget shared by all workers
//! (`server.inflight_body_bytes`, then 503 with `Retry-After`). The budget is taken as chunks
//! arrive and given back by a guard when the read ends, however it ends (done, refused, timed
//! out, the connection dropped): nothing can leak it.
//!
//! Bodies are parsed into a [`Value`] only, never straight into a typed struct: serde's type
//! errors quote the offending value (`invalid type: string "001203004567"`) and cannot name
//! where it was. Handlers read the value field by field (`hcc_adapters::fields`), which names
//! every problem by JSON Pointer and quotes nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::problem::{ApiError, FieldError};

/// The configured body limit, shared through app data.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The raw bytes of a JSON body, not yet parsed.
pub struct JsonBytes(pub web::Bytes);

impl JsonBytes {
    /// The body as a JSON value; see [`json_value`].
    pub fn value(&self) -> Result<Value, ApiError> {
        json_value(&self.0)
    }
}

/// Parses a JSON document; a syntax error is a 400 with serde's position but not the input.
pub(crate) fn json_value(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.to_string().contains("recursion limit") {
            "JSON nested too deeply".to_string()
        } else {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        };
        ApiError::BadRequest(what)
    })
}

/// The value as an object that has no members but `allowed`. An unknown member is reported
/// without its name, which is the caller's text.
pub(crate) fn object_of<'a>(v: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::Validation(vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        }]));
    };
    let unknown = obj.keys().filter(|k| !allowed.contains(&k.as_str())).count();
    if unknown > 0 {
        return Err(ApiError::Validation(vec![FieldError {
            field: String::new(),
            message: format!("{unknown} unknown member(s); the members are {}", allowed.join(", ")),
        }]));
    }
    Ok(obj)
}

/// The request's media type, lowercase, without parameters.
pub(crate) fn media_type(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(actix_web::http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

pub(crate) fn is_json(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/json")
}

pub(crate) fn is_xml(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/xml" || m == "text/xml" || m.ends_with("+xml"))
}

/// How request bodies are read: how long one read may take, and the budget of bytes being
/// received, shared by every worker (the app data holds one `Arc`).
#[derive(Clone)]
pub struct BodyReading {
    pub timeout: Duration,
    pub budget: InflightBudget,
}

impl BodyReading {
    pub fn new(timeout: Duration, inflight_bytes: usize) -> Self {
        BodyReading {
            timeout,
            budget: InflightBudget::new(inflight_bytes),
        }
    }
}

/// What a server built without [`BodyReading`] in its app data uses (unit tests of handlers):
/// the configuration's defaults.
static DEFAULT_READING: LazyLock<BodyReading> = LazyLock::new(|| BodyReading::new(Duration::from_secs(10), 64 * 1024 * 1024));

/// The bytes of request bodies being received, against a capacity.
#[derive(Clone)]
pub struct InflightBudget(Arc<BudgetState>);

struct BudgetState {
    capacity: usize,
    used: AtomicUsize,
    /// The most bytes held at once since [`InflightBudget::take_high_water`] last looked.
    high_water: AtomicUsize,
}

impl InflightBudget {
    pub fn new(capacity: usize) -> Self {
        InflightBudget(Arc::new(BudgetState {
            capacity,
            used: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
        }))
    }

    /// The most bytes held at once since the last call, and starts counting afresh from what
    /// is held now.
    pub fn take_high_water(&self) -> usize {
        self.0.high_water.swap(self.in_use(), Ordering::AcqRel)
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    /// An empty reservation, grown as chunks arrive and released when dropped.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.0.clone(),
            held: 0,
        }
    }
}

/// A share of the [`InflightBudget`]; dropping it gives the share back.
pub struct Reservation {
    budget: Arc<BudgetState>,
    held: usize,
}

/// The budget has no room for the bytes asked.
#[derive(Debug, PartialEq, Eq)]
pub struct BudgetFull;

impl Reservation {
    /// Takes `n` more bytes of the budget, or none when they do not fit. Taken first and
    /// handed back on failure, so two readers racing for the last bytes never both get them
    /// (at worst both are refused for a moment).
    pub fn grow(&mut self, n: usize) -> Result<(), BudgetFull> {
        let before = self.budget.used.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > self.budget.capacity {
            self.budget.used.fetch_sub(n, Ordering::AcqRel);
            return Err(BudgetFull);
        }
        self.held += n;
        self.budget.high_water.fetch_max(before + n, Ordering::AcqRel);
        Ok(())
    }

    /// Bytes this reservation holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// How often the budget's watcher looks whether a burst of bodies is over.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// A burst worth giving memory back after: this many body bytes held at once.
const BURST_BYTES: usize = 4 * 1024 * 1024;

/// Until `stop`: every [`WATCH_EVERY`], when the bodies held at once since the last look
/// reached [`BURST_BYTES`] and are now down to a quarter of that, gives the allocator's free
/// memory back to the system ([`crate::memory::return_free_memory`]), off the async threads.
/// Steady traffic of small bodies never triggers it; an attack triggers it once it ends.
pub async fn return_memory_after_bursts(budget: InflightBudget, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(WATCH_EVERY) => {}
        }
        if is_burst_over(budget.take_high_water(), budget.in_use()) {
            let released = tokio::task::spawn_blocking(crate::memory::return_free_memory)
                .await
                .unwrap_or(false);
            tracing::debug!(released, "a burst of request bodies is over: free memory returned to the system");
        }
    }
}

/// Whether a look at the budget finds a burst that is over.
fn is_burst_over(high_water: usize, in_use: usize) -> bool {
    high_water >= BURST_BYTES && in_use <= BURST_BYTES / 4
}

/// The body, at most the configured `server.body_limit_bytes`.
pub(crate) async fn read_limited<S, E>(req: &HttpRequest, payload: &mut S) -> Result<web::Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let limit = req.app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(1024 * 1024);
    read_at_most(req, payload, limit).await
}

/// The body, at most `limit` bytes (a route's own limit), read under the deadline and the
/// budget of [`BodyReading`].
pub(crate) async fn read_at_most<S, E>(req: &HttpRequest, payload: &mut S, limit: usize) -> Result<web::Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let reading = req
        .app_data::<web::Data<BodyReading>>()
        .map_or_else(|| DEFAULT_READING.clone(), |r| r.get_ref().clone());
    let deadline = tokio::time::Instant::now() + reading.timeout;
    let mut reservation = reading.budget.reservation();
    // Grows with what arrives: a declared length is a claim, not a reason to allocate.
    let mut body = web::BytesMut::new();
    // Bounded: each round adds bytes (at most `limit` in all) or ends; the deadline bounds
    // the time.
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next())
            .await
            .map_err(|_| ApiError::BodyTimeout(reading.timeout))?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        reservation.grow(chunk.len()).map_err(|BudgetFull| ApiError::BodiesBusy)?;
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl FromRequest for JsonBytes {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json(&req) {
                return Err(ApiError::UnsupportedMediaType("application/json"));
            }
            Ok(JsonBytes(read_limited(&req, &mut payload).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use futures_util::stream;

    use super::*;

    type Chunk = Result<web::Bytes, std::io::Error>;

    fn chunks(parts: &[&'static [u8]]) -> impl futures_util::Stream<Item = Chunk> + Unpin {
        stream::iter(parts.iter().map(|p| Ok(web::Bytes::from_static(p))).collect::<Vec<Chunk>>())
    }

    fn request(reading: &BodyReading, declared: Option<usize>) -> HttpRequest {
        let mut r = TestRequest::post().app_data(web::Data::new(reading.clone()));
        if let Some(n) = declared {
            r = r.insert_header((actix_web::http::header::CONTENT_LENGTH, n.to_string()));
        }
        r.to_http_request()
    }

    #[test]
    fn a_reservation_gives_back_what_it_holds_when_dropped() {
        let budget = InflightBudget::new(100);
        let mut a = budget.reservation();
        assert_eq!(a.grow(60), Ok(()));
        let mut b = budget.reservation();
        assert_eq!(b.grow(50), Err(BudgetFull), "60 + 50 > 100");
        assert_eq!(budget.in_use(), 60, "a refused grow takes nothing");
        assert_eq!(b.grow(40), Ok(()));
        assert_eq!((a.held(), b.held(), budget.in_use()), (60, 40, 100));
        drop(a);
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_high_water_mark_tells_a_burst_once_it_is_over() {
        let budget = InflightBudget::new(64 * 1024 * 1024);
        let mut a = budget.reservation();
        a.grow(3 * 1024 * 1024).unwrap();
        let mut b = budget.reservation();
        b.grow(2 * 1024 * 1024).unwrap();
        // 5 MiB at once, still held: a burst, not over.
        let hw = budget.take_high_water();
        assert_eq!(hw, 5 * 1024 * 1024);
        assert!(!is_burst_over(hw, budget.in_use()));
        drop(a);
        drop(b);
        // Counting started afresh from what was held (5 MiB): over now.
        let hw = budget.take_high_water();
        assert!(is_burst_over(hw, budget.in_use()));
        // Nothing since: no burst.
        assert!(!is_burst_over(budget.take_high_water(), budget.in_use()));
        // Small bodies one after another never make one.
        for _ in 0..100 {
            let mut r = budget.reservation();
            r.grow(64 * 1024).unwrap();
        }
        assert!(!is_burst_over(budget.take_high_water(), budget.in_use()));
    }

    #[actix_web::test]
    async fn a_body_is_read_whole_and_the_budget_is_back_afterwards() {
        let reading = BodyReading::new(Duration::from_secs(5), 1024);
        let req = request(&reading, Some(11));
        let body = read_at_most(&req, &mut chunks(&[b"hello", b" ", b"world"]), 100).await.unwrap();
        assert_eq!(&body[..], b"hello world");
        assert_eq!(reading.budget.in_use(), 0);
    }

    #[actix_web::test]
    async fn a_body_past_the_budget_is_a_503_and_gives_back_what_it_took() {
        let reading = BodyReading::new(Duration::from_secs(5), 8);
        let mut held = reading.budget.reservation();
        held.grow(5).unwrap();
        let req = request(&reading, None);
        let err = read_at_most(&req, &mut chunks(&[b"ab", b"cd"]), 100).await.unwrap_err();
        assert!(matches!(err, ApiError::BodiesBusy), "{err:?}");
        assert_eq!(reading.budget.in_use(), 5, "the refused read gave its first chunk back");
        let resp = actix_web::ResponseError::error_response(&err);
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get(actix_web::http::header::RETRY_AFTER).is_some());
        drop(held);
        assert_eq!(reading.budget.in_use(), 0);
    }

    #[actix_web::test]
    async fn a_body_that_stops_coming_is_a_408_and_gives_back_its_budget() {
        let reading = BodyReading::new(Duration::from_millis(200), 1024);
        let req = request(&reading, Some(100));
        // Two bytes, then nothing more, ever.
        let mut slow = Box::pin(stream::iter(vec![Ok::<_, std::io::Error>(web::Bytes::from_static(b"ab"))]).chain(stream::pending()));
        let err = read_at_most(&req, &mut slow, 100).await.unwrap_err();
        assert!(matches!(err, ApiError::BodyTimeout(_)), "{err:?}");
        assert_eq!(actix_web::ResponseError::status_code(&err), 408);
        assert_eq!(reading.budget.in_use(), 0);
    }

    #[actix_web::test]
    async fn a_read_dropped_midway_gives_back_its_budget() {
        let reading = BodyReading::new(Duration::from_secs(30), 1024);
        let req = request(&reading, None);
        let mut slow = Box::pin(stream::iter(vec![Ok::<_, std::io::Error>(web::Bytes::from_static(b"abcd"))]).chain(stream::pending()));
        {
            let read = read_at_most(&req, &mut slow, 100);
            // The connection goes away while the read waits: the future is dropped.
            let cut = tokio::time::timeout(Duration::from_millis(100), read).await;
            assert!(cut.is_err());
        }
        assert_eq!(reading.budget.in_use(), 0);
    }

    #[actix_web::test]
    async fn over_the_route_limit_is_a_413_declared_or_not() {
        let reading = BodyReading::new(Duration::from_secs(5), 1024);
        let err = read_at_most(&request(&reading, Some(9)), &mut chunks(&[b"x"]), 8)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge(8)));
        let err = read_at_most(&request(&reading, None), &mut chunks(&[b"12345", b"6789"]), 8)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge(8)));
        assert_eq!(reading.budget.in_use(), 0);
    }
}
