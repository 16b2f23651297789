//! `mock-centre`: the centre's one-stop software as a webhook receiver. It checks each
//! Standard Webhooks signature (`shared/domain/payments.md` §4) and the timestamp tolerance,
//! records what arrived in order, counts repeats by `webhook-id`, and notes how many requests
//! for one id or one ordering key overlapped in time, so tests can prove the gateway never
//! delivers one message twice at once nor two messages of one key at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_signing::webhook::WebhookSecret;
use serde::Serialize;

use crate::faults::{Faults, Injected};

#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    /// The body exactly as it came, for verifiers of other makes.
    pub raw: String,
    pub body: serde_json::Value,
    /// Microseconds since the mock started, when the request arrived and when it was answered.
    pub started_us: u64,
    pub finished_us: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub received: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub bad_signatures: u64,
    pub failed_by_fault: u64,
    /// A request for an id arrived while another for the same id was still being answered.
    pub concurrent_same_id: u64,
    /// Same for the `ordering_key` field of the body, when there is one.
    pub concurrent_same_key: u64,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    seen: HashMap<String, u32>,
    in_progress_ids: HashMap<String, u32>,
    in_progress_keys: HashMap<String, u32>,
    counters: Counters,
    faults: Faults,
}

#[derive(Clone)]
pub struct CentreState {
    inner: Arc<Mutex<Inner>>,
    secret: Arc<WebhookSecret>,
    epoch: Instant,
}

impl CentreState {
    pub fn new(secret: WebhookSecret) -> Self {
        CentreState {
            inner: Arc::default(),
            secret: Arc::new(secret),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

pub fn routes(state: CentreState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .route("/webhooks", web::post().to(receive))
            .route("/_mock/received", web::get().to(list))
            .route("/_mock/stats", web::get().to(stats))
            .route("/_mock/faults", web::post().to(set_faults))
            .route("/_mock/reset", web::post().to(reset));
    }
}

pub fn spawn(bind: &str, secret: WebhookSecret) -> std::io::Result<(crate::Running, CentreState)> {
    let state = CentreState::new(secret);
    let running = crate::spawn_server(bind, routes(state.clone()))?;
    Ok((running, state))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<CentreState>) -> HttpResponse {
    let id = header(&req, "webhook-id").to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Err(e) = state.secret.verify(
        &id,
        header(&req, "webhook-timestamp"),
        header(&req, "webhook-signature"),
        &body,
        now,
    ) {
        state.lock().counters.bad_signatures += 1;
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": e.to_string()}));
    }
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return HttpResponse::BadRequest().json(serde_json::json!({"error": "body is not JSON"}));
        }
    };
    let key = json.get("ordering_key").and_then(|v| v.as_str()).map(str::to_string);
    let (faults, started_us) = {
        let mut s = state.lock();
        let started_us = state.now_us();
        let ids = s.in_progress_ids.entry(id.clone()).or_default();
        *ids += 1;
        let overlap_id = *ids > 1;
        let overlap_key = key.as_ref().is_some_and(|k| {
            let n = s.in_progress_keys.entry(k.clone()).or_default();
            *n += 1;
            *n > 1
        });
        if overlap_id {
            s.counters.concurrent_same_id += 1;
        }
        if overlap_key {
            s.counters.concurrent_same_key += 1;
        }
        (s.faults.clone(), started_us)
    };
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = faults.roll();
    let mut s = state.lock();
    if let Some(n) = s.in_progress_ids.get_mut(&id) {
        *n -= 1;
    }
    if let Some(k) = &key
        && let Some(n) = s.in_progress_keys.get_mut(k)
    {
        *n -= 1;
    }
    match injected {
        Injected::Pass => {}
        Injected::Fail(code) => {
            s.counters.failed_by_fault += 1;
            let status = actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = HttpResponse::build(status);
            if let Some(secs) = faults.retry_after_secs {
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            return resp.json(serde_json::json!({"error": "injected failure"}));
        }
        Injected::Drop => {
            s.counters.failed_by_fault += 1;
            return dropped_connection();
        }
    }
    let finished_us = state.now_us();
    let seen = s.seen.entry(id.clone()).or_default();
    *seen += 1;
    if *seen == 1 {
        s.counters.unique += 1;
    } else {
        s.counters.duplicates += 1;
    }
    s.counters.received += 1;
    s.received.push(Received {
        webhook_id: id,
        timestamp: header(&req, "webhook-timestamp").to_string(),
        signature: header(&req, "webhook-signature").to_string(),
        raw: String::from_utf8_lossy(&body).into_owned(),
        body: json,
        started_us,
        finished_us,
    });
    HttpResponse::NoContent().finish()
}

/// Headers go out, then the connection breaks before the body: the client cannot know whether
/// the request was processed. Clients must treat it as a failure.
pub fn dropped_connection() -> HttpResponse {
    let broken = futures_util::stream::once(async { Err::<web::Bytes, _>(std::io::Error::other("connection dropped by mock")) });
    HttpResponse::Ok().content_type("application/json").streaming(broken)
}

async fn list(state: web::Data<CentreState>) -> HttpResponse {
    HttpResponse::Ok().json(state.received())
}

async fn stats(state: web::Data<CentreState>) -> HttpResponse {
    HttpResponse::Ok().json(state.counters())
}

async fn set_faults(state: web::Data<CentreState>, f: web::Json<Faults>) -> HttpResponse {
    state.set_faults(f.into_inner());
    HttpResponse::NoContent().finish()
}

async fn reset(state: web::Data<CentreState>) -> HttpResponse {
    let mut s = state.lock();
    let faults = s.faults.clone();
    *s = Inner {
        faults,
        ..Default::default()
    };
    HttpResponse::NoContent().finish()
}
