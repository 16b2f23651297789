//! The share endpoint: the catalogue (`LayDanhSachTTHC`, `LayThuTuc`), the lists the mock keeps
//! empty, and `getfile`, which the push side answers.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::PortalState;
use super::session::{envelope, inject, json_body, lgsp_gate, refused};

pub(super) async fn share(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
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
    let service = match envelope(&mut s, &b) {
        Ok(sv) => sv,
        Err(r) => return *r,
    };
    match service.as_str() {
        "LayDanhSachTTHC" => {
            let mut codes: Vec<&String> = s.catalogue.iter().collect();
            codes.sort();
            HttpResponse::Ok().json(json!({"error_code": 0, "data": codes.iter().map(|c| json!({"MaTTHC": c})).collect::<Vec<_>>()}))
        }
        "LayThuTuc" => {
            let code = b.get("maTTHC").and_then(Value::as_str).unwrap_or("");
            if s.catalogue.contains(code) {
                HttpResponse::Ok().json(json!({"error_code": 0, "data": {"MaTTHC": code}}))
            } else {
                refused(2, "Không tìm thấy thủ tục")
            }
        }
        "getfile" => state.push.getfile(&b, &req),
        "LayDanhMucCoQuan" | "LayDanhMucLinhVuc" => HttpResponse::Ok().json(json!({"error_code": 0, "data": []})),
        other => refused(4, &format!("Dịch vụ {other} không được hỗ trợ")),
    }
}
