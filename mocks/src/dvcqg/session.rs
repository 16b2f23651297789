//! The front door every portal call passes: the LGSP's `dstcode` gate, injected faults, the
//! login, the envelope check (live session, `madonvi`, `service`), and the portal's refusals.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Inner, PortalState};
use crate::faults::Injected;

pub(super) fn refused(code: i64, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"error_code": code, "message": message}))
}

/// The portal's ways of saying "stale session", chosen at random so clients must know them all.
fn stale_session() -> HttpResponse {
    match fastrand::u8(0..4) {
        0 => HttpResponse::Unauthorized().json(json!({"message": "Unauthorized"})),
        1 => refused(401, "Unauthorized"),
        2 => refused(-1, "Session expired"),
        _ => refused(99, "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"),
    }
}

/// The LGSP's gate: with a `dstcode` required, a call without exactly that header is turned
/// away with 403 before the portal sees it (the login too).
pub(super) fn lgsp_gate(state: &PortalState, req: &HttpRequest) -> Option<HttpResponse> {
    let mut s = state.lock();
    let required = s.required_dstcode.as_deref()?;
    if req.headers().get("dstcode").and_then(|v| v.to_str().ok()) == Some(required) {
        return None;
    }
    s.counters.dstcode_refused += 1;
    Some(HttpResponse::Forbidden().json(json!({"message": "Forbidden: missing or unknown dstcode"})))
}

/// Faults apply to the portal's own endpoints, never to the control API.
pub(super) async fn inject(state: &PortalState) -> Option<HttpResponse> {
    let faults = state.lock().faults.clone();
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match faults.roll() {
        Injected::Pass => None,
        Injected::Fail(code) => {
            state.lock().counters.failed_by_fault += 1;
            let status = actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            Some(HttpResponse::build(status).json(json!({"message": "injected failure"})))
        }
        Injected::Drop => {
            state.lock().counters.failed_by_fault += 1;
            Some(crate::centre::dropped_connection())
        }
    }
}

pub(super) fn json_body(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

pub(super) async fn auth(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = lgsp_gate(&state, &req) {
        return r;
    }
    if let Some(r) = inject(&state).await {
        return r;
    }
    let Some(b) = json_body(&body) else {
        return refused(1, "Dữ liệu không hợp lệ");
    };
    let mut s = state.lock();
    let ok = b.get("username").and_then(Value::as_str) == Some(s.cfg.username.as_str())
        && b.get("password").and_then(Value::as_str) == Some(s.cfg.password.as_str());
    if !ok {
        return refused(1, "Sai tên đăng nhập hoặc mật khẩu");
    }
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let until = Instant::now() + s.cfg.session_lifetime;
    s.sessions.insert(token.clone(), until);
    s.counters.logins += 1;
    HttpResponse::Ok().json(json!({"error_code": 0, "message": "Thành công", "session": token}))
}

/// Checks the envelope every operation shares; `Err` is the answer to give.
pub(super) fn envelope(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<String, Box<HttpResponse>> {
    let session = b.get("session").and_then(Value::as_str).unwrap_or("");
    let live = s.sessions.get(session).is_some_and(|until| *until > Instant::now());
    if !live {
        s.counters.stale_session_answers += 1;
        if let Some(answer) = &s.stale_answer {
            return Err(Box::new(HttpResponse::Ok().json(answer)));
        }
        return Err(Box::new(stale_session()));
    }
    if b.get("madonvi").and_then(Value::as_str) != Some(s.cfg.madonvi.as_str()) {
        s.counters.refused += 1;
        return Err(Box::new(refused(3, "Mã đơn vị không hợp lệ")));
    }
    b.get("service")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Box::new(refused(4, "Thiếu tên dịch vụ (service)")))
}
