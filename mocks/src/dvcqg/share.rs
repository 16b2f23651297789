//! The share endpoint: the catalogue's lists (`LayDanhSachTTHC`, `LayDanhMucLinhVuc`,
//! `LayDanhMucCoQuan`, answered by `catalogue`) and `getfile`, which the push side answers.

use actix_web::{HttpRequest, HttpResponse, web};

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
    if let Some(r) = super::catalogue::share_service(&mut s, &service) {
        return r;
    }
    match service.as_str() {
        "getfile" => state.push.getfile(&b, &req),
        // `LayThuTuc` included: OpenCPS sends it to the integration endpoint.
        other => refused(4, &format!("Dịch vụ {other} không được hỗ trợ")),
    }
}
