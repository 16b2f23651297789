//! `querydr` (`POST /merchant_webapi/api/transaction`): the request checked, answered from
//! the ledger, signed, and bent as the control says.

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::{HttpResponse, http::StatusCode, web};
use serde_json::{Map, Value, json};

use super::sign::{QUERYDR_ANSWER, QUERYDR_REQUEST, hash_ok, pipe_hash, random_hex, valid_timestamp};
use super::{AnswerControl, Ledger, MAX_QUERIES_KEPT, VERSION, VnpayState};

fn message(code: &str) -> &'static str {
    match code {
        "00" => "QueryDR Success",
        "02" => "Invalid TmnCode",
        "03" => "Invalid data format",
        "91" => "Transaction not found",
        "94" => "Duplicate request",
        "97" => "Invalid Checksum",
        _ => "Unknown error",
    }
}

/// A signed answer: `fields` in any order, signed over the answer list (absent = empty), then
/// bent as the control says.
pub(super) fn signed_answer(state: &VnpayState, mut fields: HashMap<&'static str, String>, control: &AnswerControl) -> Value {
    if let Some(code) = &control.response_code {
        fields.insert("vnp_Message", message(code).into());
        fields.insert("vnp_ResponseCode", code.clone());
    }
    if fields.get("vnp_ResponseCode").map(String::as_str) == Some("00") {
        if let Some(a) = control.amount_vnd {
            fields.insert("vnp_Amount", a.saturating_mul(100).to_string());
        }
        if let Some(t) = &control.amount_text {
            fields.insert("vnp_Amount", t.clone());
        }
        if let Some(s) = &control.transaction_status {
            fields.insert("vnp_TransactionStatus", s.clone());
        }
    }
    let values: Vec<&str> = QUERYDR_ANSWER
        .iter()
        .map(|k| fields.get(k).map(String::as_str).unwrap_or(""))
        .collect();
    let hash = pipe_hash(&values, &state.hash_secret);
    let mut out = Map::new();
    for k in QUERYDR_ANSWER {
        if let Some(v) = fields.get(k) {
            out.insert(k.into(), json!(v));
        }
    }
    if control.amount_as_number
        && let Some(n) = fields.get("vnp_Amount").and_then(|a| a.parse::<u64>().ok())
    {
        out.insert("vnp_Amount".into(), json!(n));
    }
    if control.tamper {
        let a = fields.get("vnp_Amount").and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        out.insert("vnp_Amount".into(), json!((a + 100).to_string()));
    }
    out.insert("vnp_SecureHash".into(), json!(hash));
    Value::Object(out)
}

/// Answers one `querydr` body: the answer's fields, before signing.
fn answer_querydr(state: &VnpayState, ledger: &mut Ledger, body: &[u8]) -> HashMap<&'static str, String> {
    let mut fields: HashMap<&'static str, String> = HashMap::new();
    fields.insert("vnp_ResponseId", random_hex(32));
    fields.insert("vnp_Command", "querydr".into());
    fields.insert("vnp_TmnCode", state.tmn_code.clone());
    let fail = |fields: &mut HashMap<&'static str, String>, code: &str| {
        fields.insert("vnp_ResponseCode", code.into());
        fields.insert("vnp_Message", message(code).into());
    };
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        fail(&mut fields, "03");
        return fields;
    };
    // Every request field is a JSON string.
    let mut v: HashMap<&str, &str> = HashMap::new();
    for k in QUERYDR_REQUEST.iter().chain(["vnp_SecureHash"].iter()) {
        match req.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => {
                v.insert(k, s.as_str());
            }
            _ => {
                fail(&mut fields, "03");
                return fields;
            }
        }
    }
    if let Some(r) = v.get("vnp_TxnRef") {
        fields.insert("vnp_TxnRef", (*r).to_string());
    }
    let id = v["vnp_RequestId"];
    let well_formed = v["vnp_Command"] == "querydr"
        && v["vnp_Version"] == VERSION
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && valid_timestamp(v["vnp_TransactionDate"])
        && valid_timestamp(v["vnp_CreateDate"])
        && v["vnp_IpAddr"].parse::<IpAddr>().is_ok();
    if !well_formed {
        fail(&mut fields, "03");
        return fields;
    }
    if v["vnp_TmnCode"] != state.tmn_code {
        fail(&mut fields, "02");
        return fields;
    }
    let values: Vec<&str> = QUERYDR_REQUEST.iter().map(|k| v[k]).collect();
    if !hash_ok(v["vnp_SecureHash"], &pipe_hash(&values, &state.hash_secret)) {
        fail(&mut fields, "97");
        return fields;
    }
    if !ledger.request_ids.insert((id.to_string(), v["vnp_CreateDate"][..8].to_string())) {
        fail(&mut fields, "94");
        return fields;
    }
    let found = ledger
        .orders
        .get(v["vnp_TxnRef"])
        .filter(|o| o.create_date.as_deref() == Some(v["vnp_TransactionDate"]));
    let Some(o) = found else {
        fail(&mut fields, "91");
        return fields;
    };
    fail(&mut fields, "00");
    fields.insert("vnp_Amount", o.amount_x100.to_string());
    fields.insert("vnp_OrderInfo", o.order_info.clone());
    fields.insert("vnp_TransactionType", "01".into());
    fields.insert("vnp_TransactionStatus", o.status.clone());
    for (k, val) in [
        ("vnp_BankCode", &o.bank_code),
        ("vnp_PayDate", &o.pay_date),
        ("vnp_TransactionNo", &o.transaction_no),
    ] {
        if !val.is_empty() {
            fields.insert(k, val.clone());
        }
    }
    fields
}

pub(super) async fn transaction_api(state: web::Data<VnpayState>, body: web::Bytes) -> HttpResponse {
    let mut ledger = state.ledger();
    let control = ledger.control.clone();
    if let Some(t) = ledger.control.times.as_mut() {
        *t = t.saturating_sub(1);
        if *t == 0 {
            ledger.control = AnswerControl::default();
        }
    }
    let request = serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    let answer = match control.http_status {
        Some(status) => Err(status),
        None => Ok(answer_querydr(&state, &mut ledger, &body)),
    };
    let (code, response) = match answer {
        Err(status) => (
            Value::Null,
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)).finish(),
        ),
        Ok(fields) => {
            let code = json!(fields.get("vnp_ResponseCode"));
            (code, HttpResponse::Ok().json(signed_answer(&state, fields, &control)))
        }
    };
    if ledger.queries.len() == MAX_QUERIES_KEPT {
        ledger.queries.remove(0);
    }
    ledger.queries.push(json!({"request": request, "vnp_ResponseCode": code}));
    response
}
