//! `mock-emc`: the Ministry's monitoring system (EMC) as `shared/domain/dvcqg.md` ("EMC
//! tracking") describes it: `POST /TrackingMCDT` with a JSON body in camelCase, `codeProfile`
//! (the dossier code), `siteId` (an integer per province), `codeTTHC`, `nameTTHC`, `maHoSo`,
//! `status` (a string: "1" received, "2" processing, "3" result returned, "4" assigned, "0"
//! other), and the handling fields. The public client reads only the status code, so the mock
//! answers any accepted call with 200 and a small JSON body.
//!
//! It refuses (400) a body that is not a JSON object, a `status` that is not one of the five
//! strings, a `siteId` that is not an integer, and an empty or missing `codeProfile` or
//! `codeTTHC`. Started with a token, it answers 401 to a call without `Authorization: Bearer
//! <token>` (the public client sends none; a deployment may need one). Each accepted call is
//! recorded in order (`GET /_mock/emc/received`). Faults: `POST /_mock/emc/faults` with
//! `{"down": true}` answers 503 to every tracking call, `{"refuse": true}` 400.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The most calls kept; beyond it the oldest are dropped (a long demo must not grow forever).
const MAX_RECEIVED: usize = 100_000;
/// A tracking body is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// One accepted tracking call.
#[derive(Debug, Clone, Serialize)]
pub struct Tracking {
    pub code_profile: String,
    pub site_id: i64,
    pub code_tthc: String,
    pub status: String,
    /// The body as it came.
    pub body: Value,
}

/// The faults a test sets.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmcFaults {
    /// Every tracking call answered 503.
    pub down: bool,
    /// Every tracking call answered 400, as EMC refusing the data.
    pub refuse: bool,
}

#[derive(Default)]
struct Inner {
    received: Vec<Tracking>,
    faults: EmcFaults,
    refused: u64,
}

#[derive(Clone, Default)]
pub struct EmcState {
    inner: Arc<Mutex<Inner>>,
    /// `Some`: calls must carry `Authorization: Bearer <token>`.
    token: Option<Arc<str>>,
}

impl EmcState {
    /// An EMC that asks for no authentication, as the public client's does.
    pub fn new() -> Self {
        EmcState::default()
    }

    /// An EMC that wants `Authorization: Bearer <token>`.
    pub fn with_token(token: &str) -> Self {
        EmcState {
            token: Some(token.into()),
            ..EmcState::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The accepted calls, in the order they came.
    pub fn received(&self) -> Vec<Tracking> {
        self.lock().received.clone()
    }

    /// How many calls were refused (400 or 401).
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    pub fn set_down(&self, down: bool) {
        self.lock().faults.down = down;
    }

    pub fn set_refuse(&self, refuse: bool) {
        self.lock().faults.refuse = refuse;
    }
}

pub fn routes(state: EmcState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("/TrackingMCDT", web::post().to(track))
            .route("/_mock/emc/received", web::get().to(list))
            .route("/_mock/emc/faults", web::post().to(set_faults));
    }
}

pub fn spawn(bind: &str, state: EmcState) -> std::io::Result<crate::Running> {
    crate::spawn_server(bind, routes(state))
}

fn refuse(state: &EmcState, status: u16, message: &str) -> HttpResponse {
    state.lock().refused += 1;
    let code = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(code).json(json!({"success": false, "message": message}))
}

/// A non-empty string member, or why not.
fn non_empty<'a>(body: &'a Value, name: &str) -> Result<&'a str, String> {
    match body.get(name).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(format!("{name} must be a non-empty string")),
    }
}

fn check(body: &Value) -> Result<Tracking, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object".into());
    }
    let code_profile = non_empty(body, "codeProfile")?;
    let code_tthc = non_empty(body, "codeTTHC")?;
    let site_id = body.get("siteId").and_then(Value::as_i64).ok_or("siteId must be an integer")?;
    let status = match body.get("status").and_then(Value::as_str) {
        Some(s @ ("0" | "1" | "2" | "3" | "4")) => s,
        _ => return Err("status must be one of the strings \"0\" to \"4\"".into()),
    };
    Ok(Tracking {
        code_profile: code_profile.to_string(),
        site_id,
        code_tthc: code_tthc.to_string(),
        status: status.to_string(),
        body: body.clone(),
    })
}

async fn track(req: HttpRequest, body: web::Bytes, state: web::Data<EmcState>) -> HttpResponse {
    let faults = state.lock().faults;
    if faults.down {
        return HttpResponse::ServiceUnavailable().json(json!({"success": false, "message": "down (mock fault)"}));
    }
    if let Some(token) = &state.token {
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(&**token) {
            return refuse(&state, 401, "missing or wrong bearer token");
        }
    }
    if faults.refuse {
        return refuse(&state, 400, "refused (mock fault)");
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return refuse(&state, 400, "the body is not JSON"),
    };
    match check(&value) {
        Ok(t) => {
            let mut s = state.lock();
            if s.received.len() >= MAX_RECEIVED {
                s.received.remove(0);
            }
            s.received.push(t);
            HttpResponse::Ok().json(json!({"success": true}))
        }
        Err(why) => refuse(&state, 400, &why),
    }
}

async fn list(state: web::Data<EmcState>) -> HttpResponse {
    HttpResponse::Ok().json(state.received())
}

async fn set_faults(state: web::Data<EmcState>, body: web::Json<EmcFaults>) -> HttpResponse {
    state.lock().faults = body.into_inner();
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(url: &str, auth: Option<&str>, body: &str) -> u16 {
        let mut r = reqwest::Client::new()
            .post(format!("{url}/TrackingMCDT"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send().await.unwrap().status().as_u16()
    }

    fn good() -> Value {
        json!({"codeProfile": "H1", "siteId": 31, "codeTTHC": "1.2", "nameTTHC": "", "maHoSo": "H1", "status": "1",
               "formsReception": "2", "formsPayments": "0", "level": "3", "isFromDVCQG": "0", "isDVCBC": "0", "data": "", "user": ""})
    }

    #[tokio::test]
    async fn accepts_a_tracking_call_and_refuses_what_emc_refuses() {
        let state = EmcState::new();
        let running = spawn("127.0.0.1:0", state.clone()).unwrap();
        let url = running.url();
        assert_eq!(post(&url, None, &good().to_string()).await, 200);
        assert_eq!(post(&url, None, "not json").await, 400);
        for (field, bad) in [
            ("status", json!(1)),
            ("status", json!("5")),
            ("siteId", json!("31")),
            ("siteId", json!(3.5)),
            ("codeProfile", json!("")),
            ("codeTTHC", json!(" ")),
        ] {
            let mut b = good();
            b[field] = bad.clone();
            assert_eq!(post(&url, None, &b.to_string()).await, 400, "{field} = {bad}");
        }
        let mut missing = good();
        missing.as_object_mut().unwrap().remove("codeTTHC");
        assert_eq!(post(&url, None, &missing.to_string()).await, 400);
        assert_eq!(state.received().len(), 1);
        assert_eq!(state.received()[0].status, "1");
        let listed: Value = reqwest::get(format!("{url}/_mock/emc/received"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed[0]["code_profile"], "H1");
        running.stop().await;
    }

    #[tokio::test]
    async fn a_token_is_required_when_set_and_faults_answer_503_or_400() {
        let state = EmcState::with_token("t0k");
        let running = spawn("127.0.0.1:0", state.clone()).unwrap();
        let url = running.url();
        let body = good().to_string();
        assert_eq!(post(&url, None, &body).await, 401);
        assert_eq!(post(&url, Some("Bearer nope"), &body).await, 401);
        assert_eq!(post(&url, Some("Bearer t0k"), &body).await, 200);
        state.set_down(true);
        assert_eq!(post(&url, Some("Bearer t0k"), &body).await, 503);
        let c = reqwest::Client::new();
        let off = c
            .post(format!("{url}/_mock/emc/faults"))
            .json(&json!({"down": false, "refuse": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(off.status().as_u16(), 204);
        assert_eq!(post(&url, Some("Bearer t0k"), &body).await, 400);
        state.set_refuse(false);
        assert_eq!(post(&url, Some("Bearer t0k"), &body).await, 200);
        assert_eq!(state.received().len(), 2);
        running.stop().await;
    }
}
