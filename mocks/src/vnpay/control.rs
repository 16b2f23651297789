//! The `/_mock/vnpay/...` control and inspection handlers: bend the next `querydr` answers,
//! list the `querydr` requests received and the orders known.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::{AnswerControl, VnpayState};

pub(super) async fn querydr_control(state: web::Data<VnpayState>, c: web::Json<AnswerControl>) -> HttpResponse {
    state.ledger().control = c.into_inner();
    HttpResponse::Ok().json(json!({"ok": true}))
}

pub(super) async fn queries(state: web::Data<VnpayState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.ledger().queries)
}

pub(super) async fn orders(state: web::Data<VnpayState>) -> HttpResponse {
    let l = state.ledger();
    let m: Map<String, Value> = l.orders.iter().map(|(k, o)| (k.clone(), o.json())).collect();
    HttpResponse::Ok().json(Value::Object(m))
}
