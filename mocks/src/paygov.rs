//! The national payment platform, as the payments notes (§1 and its 2026-11 evidence) describe
//! it, written from the notes and never from the gateway's adapter:
//! - INIT at `/paygov/init` and QUERY (or GET_BILL) at `/paygov/query`, each message checked by
//!   `MaXacThuc` (SHA-256 of the fields joined with `|`, secret last);
//! - INIT refused when its receipt (`ThongTinBienLai`) lacks what public clients mark
//!   mandatory (with `MaDVC`: both public clients send a non-empty one, evidence 2026-12), when
//!   the optional `TenDVC`, `HuyenNguoiNop`, `TinhNguoiNop` are present but empty or not text,
//!   or when amounts come as JSON numbers where public clients send strings;
//! - QUERY finds a payment only by its reference **and** the `ThoiGianGD` of its INIT;
//! - INIT answered in either envelope seen in public clients, and a bearer token required when
//!   configured (`POST /_mock/paygov/config`);
//! - a control call that "pays" a reference by sending the platform's confirmation: once or
//!   several times, late, tampered, with another amount, failed (`MaLoi` not `00`), a second
//!   time with a new transaction (money paid twice), or not at all (a lost callback);
//! - for the hostile tests, a platform (or whatever sits in front of it) gone bad, through
//!   `POST /_mock/paygov/config`: INIT answered with a redirect, a payment page that is not
//!   `https`, or a QUERY amount written loosely (`+`, leading zeros). `GET /_mock/paygov/queries`
//!   counts the QUERY messages answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone)]
struct Tx {
    amount: u64,
    /// `ThoiGianGD` of the INIT: QUERY must repeat it.
    init_time: String,
    paid: Option<String>,
    failed: bool,
}

/// Behaviour switched at run time through `POST /_mock/paygov/config`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PaygovBehaviour {
    /// Answer INIT as `{"error_code": "0", "message": "<JSON text>"}` instead of plainly.
    #[serde(default)]
    pub wrapped_envelope: bool,
    /// Require `Authorization: Bearer <token>` on INIT and QUERY.
    #[serde(default)]
    pub require_bearer: Option<String>,
    /// Answer INIT with `302 Found` and this `Location` instead of an answer (nothing is
    /// recorded): what a hijacked proxy in front of the platform would do.
    #[serde(default)]
    pub init_redirect: Option<String>,
    /// Answer a taken INIT with exactly this `UrlThanhToan` (`http://...`, `javascript:...`).
    #[serde(default)]
    pub init_payment_url: Option<String>,
    /// Answer a paid QUERY with exactly this `SoTien` text (`"0100000"`, `"+100000"`).
    #[serde(default)]
    pub query_amount_text: Option<String>,
}

/// At most this many INIT messages are kept for inspection.
const KEPT_INITS: usize = 200;

#[derive(Clone)]
pub struct PaygovState {
    partner: String,
    secret: String,
    txs: Arc<Mutex<HashMap<String, Tx>>>,
    behaviour: Arc<Mutex<PaygovBehaviour>>,
    inits: Arc<Mutex<Vec<Value>>>,
    /// QUERY messages answered (checksum and partner good).
    queries: Arc<std::sync::atomic::AtomicU64>,
    /// The next this-many requests fail with `fail_status` (0 = a dropped connection).
    fail: Arc<Mutex<(u32, u16)>>,
    client: reqwest::Client,
}

const INIT: &[&str] = &[
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "LoaiHinhThanhToan",
    "MaKenhThanhToan",
    "MaThietBi",
    "NgonNgu",
    "MaTienTe",
    "MaNganHang",
    "ThongTinGiaoDich",
    "ThoiGianGD",
    "Ip",
];
const CONFIRM: &[&str] = &[
    "LoaiBanTin",
    "MaLoi",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "MaTienTe",
    "MaGiaoDich",
    "MaNganHang",
    "ThoiGianGD",
    "ThongTinGiaoDich",
];
const QUERY: &[&str] = &["LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD"];

fn s(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn mac(m: &Map<String, Value>, fields: &[&str], secret: &str) -> String {
    let joined = fields
        .iter()
        .map(|f| s(m, f))
        .chain(std::iter::once(secret.to_string()))
        .collect::<Vec<_>>()
        .join("|");
    hcc_signing::sha256_hex(joined.as_bytes())
}

impl PaygovState {
    pub fn new(partner: &str, secret: &str) -> Self {
        PaygovState {
            partner: partner.into(),
            secret: secret.into(),
            txs: Arc::default(),
            behaviour: Arc::default(),
            inits: Arc::default(),
            queries: Arc::default(),
            fail: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tx>> {
        self.txs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn known(&self, reference: &str) -> bool {
        self.lock().contains_key(reference)
    }

    /// The INIT messages accepted so far, oldest first (the last [`KEPT_INITS`]).
    pub fn inits(&self) -> Vec<Value> {
        self.inits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn behaviour(&self) -> PaygovBehaviour {
        self.behaviour.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn routes(state: PaygovState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/paygov/init", web::post().to(init_endpoint))
            .route("/paygov/query", web::post().to(query_endpoint))
            .route("/_mock/paygov/pay", web::post().to(pay))
            .route("/_mock/paygov/config", web::post().to(configure))
            .route("/_mock/paygov/inits", web::get().to(list_inits))
            .route("/_mock/paygov/queries", web::get().to(count_queries))
            .route("/_mock/paygov/faults", web::post().to(faults));
    }
}

fn error(code: &str, text: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"MaLoi": code, "MoTaLoi": text}))
}

#[derive(Deserialize)]
struct FailNext {
    fail_next: u32,
    #[serde(default)]
    status: u16,
}

async fn faults(state: web::Data<PaygovState>, f: web::Json<FailNext>) -> HttpResponse {
    *state.fail.lock().unwrap_or_else(|p| p.into_inner()) = (f.fail_next, f.status);
    HttpResponse::NoContent().finish()
}

async fn configure(state: web::Data<PaygovState>, b: web::Json<PaygovBehaviour>) -> HttpResponse {
    *state.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = b.into_inner();
    HttpResponse::NoContent().finish()
}

async fn list_inits(state: web::Data<PaygovState>) -> HttpResponse {
    HttpResponse::Ok().json(state.inits())
}

async fn count_queries(state: web::Data<PaygovState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"queries": state.queries.load(std::sync::atomic::Ordering::SeqCst)}))
}

/// Which endpoint a message arrived at: each takes only its own kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Init,
    Query,
}

async fn init_endpoint(req: actix_web::HttpRequest, state: web::Data<PaygovState>, body: web::Json<Value>) -> HttpResponse {
    endpoint(req, state, body, Endpoint::Init).await
}

async fn query_endpoint(req: actix_web::HttpRequest, state: web::Data<PaygovState>, body: web::Json<Value>) -> HttpResponse {
    endpoint(req, state, body, Endpoint::Query).await
}

/// What the receipt of an administrative-procedure fee (`MaDichVu` 2) must carry, as public
/// clients send it; `None` when it is complete.
fn receipt_problem(m: &Map<String, Value>) -> Option<String> {
    let Some(Value::Object(r)) = m.get("ThongTinBienLai") else {
        return Some("thiếu ThongTinBienLai".into());
    };
    let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("");
    for k in [
        "MaDichVu",
        "MaTTHC",
        "TenTTHC",
        "TKThuHuong",
        "MaNHThuHuong",
        "TenTKThuHuong",
        "NoiDungThanhToan",
        "HoTenNguoiNop",
        "SoCMNDNguoiNop",
        "DiaChiNguoiNop",
        // Both public clients send a non-empty MaDVC (payments notes, evidence 2026-12).
        "MaDVC",
    ] {
        if text(k).is_empty() {
            return Some(format!("ThongTinBienLai thiếu {k}"));
        }
    }
    // Optional receipt fields (OpenCPS sends the payer's district and province): when present,
    // non-empty text, as a client writes them.
    for k in ["TenDVC", "HuyenNguoiNop", "TinhNguoiNop"] {
        if r.contains_key(k) && text(k).is_empty() {
            return Some(format!("ThongTinBienLai: {k} phải là chuỗi không rỗng"));
        }
    }
    if text("MaDichVu") == "2" {
        for k in ["MaDonVi", "TenDonVi", "MaHoSo"] {
            if text(k).is_empty() {
                return Some(format!("MaDichVu 2 bắt buộc {k}"));
            }
        }
    }
    let Some(Value::Array(lines)) = r.get("PhiLePhi") else {
        return Some("ThongTinBienLai thiếu PhiLePhi".into());
    };
    if lines.is_empty() {
        return Some("PhiLePhi rỗng".into());
    }
    let mut total: u64 = 0;
    for l in lines {
        let kind = l.get("LoaiPhiLePhi").and_then(Value::as_str).unwrap_or("");
        let amount = l.get("SoTien").and_then(Value::as_str).and_then(|x| x.parse::<u64>().ok());
        let (Some(amount), "1" | "2") = (amount, kind) else {
            return Some("PhiLePhi: LoaiPhiLePhi và SoTien phải là chuỗi (\"1\"/\"2\", số tiền)".into());
        };
        if l.get("MaPhiLePhi").and_then(Value::as_str).unwrap_or("").is_empty()
            || l.get("TenPhiLePhi").and_then(Value::as_str).unwrap_or("").is_empty()
        {
            return Some("PhiLePhi thiếu MaPhiLePhi hoặc TenPhiLePhi".into());
        }
        total = total.saturating_add(amount);
    }
    if Some(total) != m.get("SoTien").and_then(Value::as_str).and_then(|x| x.parse().ok()) {
        return Some("Tổng PhiLePhi khác SoTien".into());
    }
    None
}

async fn endpoint(req: actix_web::HttpRequest, state: web::Data<PaygovState>, body: web::Json<Value>, at: Endpoint) -> HttpResponse {
    if let Some(token) = state.behaviour().require_bearer {
        let sent = req.headers().get("authorization").and_then(|h| h.to_str().ok()).unwrap_or("");
        if sent != format!("Bearer {token}") {
            return HttpResponse::Unauthorized().json(json!({"error": "invalid bearer token"}));
        }
    }
    let injected = {
        let mut f = state.fail.lock().unwrap_or_else(|p| p.into_inner());
        if f.0 > 0 {
            f.0 -= 1;
            Some(f.1)
        } else {
            None
        }
    };
    match injected {
        Some(0) => return crate::centre::dropped_connection(),
        Some(code) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY))
                .finish();
        }
        None => {}
    }
    let behaviour = state.behaviour();
    if let (Some(location), Endpoint::Init) = (&behaviour.init_redirect, at) {
        return HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, location.as_str()))
            .finish();
    }
    let Some(m) = body.as_object() else {
        return error("01", "Dữ liệu không hợp lệ");
    };
    let kind = s(m, "LoaiBanTin");
    let fields = match (kind.as_str(), at) {
        ("INIT", Endpoint::Init) => INIT,
        ("QUERY" | "GET_BILL", Endpoint::Query) => QUERY,
        _ => return error("01", "LoaiBanTin không hợp lệ tại địa chỉ này"),
    };
    if s(m, "MaXacThuc") != mac(m, fields, &state.secret) {
        return error("02", "Sai mã xác thực");
    }
    if s(m, "MaDoiTac") != state.partner {
        return error("03", "Sai mã đối tác");
    }
    let reference = s(m, "MaThamChieu");
    let time = s(m, "ThoiGianGD");
    if time.len() != 14 || !time.bytes().all(|b| b.is_ascii_digit()) || time[8..10].parse::<u8>().map_or(true, |h| h > 23) {
        return error("01", "ThoiGianGD phải là yyyyMMddHHmmss (24 giờ)");
    }
    if kind == "INIT" {
        // Public clients send SoTien as a string; the platform is only known to take that.
        let Some(Ok(amount)) = m.get("SoTien").and_then(Value::as_str).map(str::parse::<u64>) else {
            return error("01", "SoTien phải là chuỗi chữ số");
        };
        if s(m, "MaNganHang").is_empty() {
            return error("01", "MaNganHang không được để trống");
        }
        match s(m, "Ip").parse::<std::net::IpAddr>() {
            Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => {}
            _ => return error("01", "Ip phải là địa chỉ của máy chủ đối tác"),
        }
        if let Some(problem) = receipt_problem(m) {
            return error("06", &problem);
        }
        if reference.is_empty() || state.lock().contains_key(&reference) {
            return error("04", "MaThamChieu trùng hoặc trống");
        }
        state.lock().insert(
            reference.clone(),
            Tx {
                amount,
                init_time: time.clone(),
                paid: None,
                failed: false,
            },
        );
        {
            let mut kept = state.inits.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() >= KEPT_INITS {
                kept.remove(0);
            }
            kept.push(body.clone());
        }
        let url = behaviour
            .init_payment_url
            .clone()
            .unwrap_or_else(|| format!("https://paygov.example.vn/pay/{reference}"));
        let answer = json!({"MaLoi": "00", "MoTaLoi": "Thành công", "MaThamChieu": reference, "UrlThanhToan": url});
        return if behaviour.wrapped_envelope {
            HttpResponse::Ok().json(json!({"error_code": "0", "message": answer.to_string()}))
        } else {
            HttpResponse::Ok().json(answer)
        };
    }
    state.queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // The platform finds a payment by its reference and the time of its INIT.
    let tx = state.lock().get(&reference).filter(|t| t.init_time == time).cloned();
    match tx {
        None => error("05", "Không tìm thấy giao dịch"),
        Some(Tx {
            paid: Some(txn), amount, ..
        }) => {
            let amount = behaviour.query_amount_text.clone().unwrap_or_else(|| amount.to_string());
            HttpResponse::Ok().json(json!({"MaLoi": "00", "TrangThaiGD": "1", "SoTien": amount, "MaGiaoDich": txn}))
        }
        Some(Tx { failed: true, .. }) => HttpResponse::Ok().json(json!({"MaLoi": "00", "TrangThaiGD": "4"})),
        Some(Tx { paid: None, .. }) => HttpResponse::Ok().json(json!({"MaLoi": "00", "TrangThaiGD": "3"})),
    }
}

#[derive(Deserialize)]
struct PayRequest {
    #[serde(rename = "MaThamChieu")]
    reference: String,
    /// Where to send the confirmation; several URLs share the copies round-robin.
    #[serde(default)]
    callback_urls: Vec<String>,
    #[serde(default = "one")]
    copies: usize,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    tamper: bool,
    /// Confirm another amount than the one initiated.
    amount: Option<u64>,
    /// `false`: mark paid but never call back.
    #[serde(default = "yes")]
    notify: bool,
    /// `MaLoi` of the confirmation: `00` paid, anything else a failed payment.
    #[serde(default = "ok_code")]
    ma_loi: String,
}

fn ok_code() -> String {
    "00".into()
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

async fn pay(state: web::Data<PaygovState>, r: web::Json<PayRequest>) -> HttpResponse {
    let paid = r.ma_loi == "00";
    // A failed payment carries no bank transaction.
    let txn = if paid {
        format!("PG{}", fastrand::u64(10_000_000_000..99_999_999_999))
    } else {
        String::new()
    };
    let amount = {
        let mut txs = state.lock();
        let Some(tx) = txs.get_mut(&r.reference) else {
            return HttpResponse::NotFound().json(json!({"error": "unknown MaThamChieu"}));
        };
        if paid {
            tx.paid = Some(txn.clone());
        } else if tx.paid.is_none() {
            tx.failed = true;
        }
        tx.amount
    };
    if !r.notify || r.callback_urls.is_empty() {
        return HttpResponse::Ok().json(json!({"MaGiaoDich": txn, "sent": 0}));
    }
    let mut m = Map::new();
    let now = chrono_like_now();
    for (k, v) in [
        ("LoaiBanTin", "PAYMENT"),
        ("MaLoi", r.ma_loi.as_str()),
        ("MaDoiTac", state.partner.as_str()),
        ("MaThamChieu", r.reference.as_str()),
        ("MaTienTe", "VND"),
        ("MaGiaoDich", txn.as_str()),
        ("MaNganHang", "VCB"),
        ("ThoiGianGD", now.as_str()),
        ("ThongTinGiaoDich", "Thanh toan le phi"),
    ] {
        m.insert(k.into(), json!(v));
    }
    m.insert("SoTien".into(), json!(r.amount.unwrap_or(amount)));
    let checksum = mac(&m, CONFIRM, &state.secret);
    m.insert("MaXacThuc".into(), json!(checksum));
    if r.tamper {
        // Changed after signing: the checksum no longer holds.
        m.insert("SoTien".into(), json!(r.amount.unwrap_or(amount) + 1));
    }
    if r.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(r.delay_ms)).await;
    }
    let body = Value::Object(m);
    let sends = (0..r.copies).map(|i| {
        let url = r.callback_urls[i % r.callback_urls.len()].clone();
        let (client, body) = (state.client.clone(), body.clone());
        tokio::spawn(async move {
            match client.post(&url).json(&body).send().await {
                Ok(resp) => resp.json::<Value>().await.unwrap_or(Value::Null),
                Err(e) => json!({"error": e.to_string()}),
            }
        })
    });
    let mut replies = Vec::new();
    for s in sends.collect::<Vec<_>>() {
        replies.push(s.await.unwrap_or(Value::Null));
    }
    HttpResponse::Ok().json(json!({"MaGiaoDich": txn, "sent": r.copies, "replies": replies}))
}

/// `yyyyMMddHHmmss` in UTC+7, 24-hour clock.
pub fn chrono_like_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + 7 * 3600;
    let (days, sod) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{:04}{m:02}{d:02}{:02}{:02}{:02}",
        yoe + era * 400 + i64::from(m <= 2),
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INIT written out by hand from the notes, with its checksum string spelled out.
    fn init_by_hand() -> Map<String, Value> {
        let v = json!({
            "LoaiBanTin": "INIT", "PhienBan": "1.0.6", "MaDoiTac": "HCC-DEV", "MaThamChieu": "HCC241126ABCDEFGH",
            "SoTien": "100000", "LoaiHinhThanhToan": "PAY", "MaKenhThanhToan": "1", "MaThietBi": "1", "NgonNgu": "vi-VN",
            "MaTienTe": "VND", "MaNganHang": "PAYMENT", "ThongTinGiaoDich": "Le phi ho so", "ThoiGianGD": "20241126133005",
            "Ip": "203.0.113.10",
            "ThongTinBienLai": {
                "MaDichVu": "2", "MaDonVi": "000.00.22.H46", "TenDonVi": "Trung tâm PVHCC", "MaHoSo": "000.00.22.H46-241125-0001",
                "MaTTHC": "1.004227", "TenTTHC": "Cấp GCN", "TKThuHuong": "0011004123456", "MaNHThuHuong": "970436",
                "TenTKThuHuong": "VP UBND", "NoiDungThanhToan": "Le phi ho so", "HoTenNguoiNop": "Nguyễn Thị Lan",
                "SoCMNDNguoiNop": "022190000123", "DiaChiNguoiNop": "Hạ Long", "MaDVC": "1.004227.01",
                "TenDVC": "Cấp GCN", "HuyenNguoiNop": "Hạ Long", "TinhNguoiNop": "Quảng Ninh",
                "PhiLePhi": [{"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí", "SoTien": "100000"}]
            }
        });
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_checksum_is_the_notes_field_order_with_the_secret_last() {
        let m = init_by_hand();
        let by_hand =
            "INIT|1.0.6|HCC-DEV|HCC241126ABCDEFGH|100000|PAY|1|1|vi-VN|VND|PAYMENT|Le phi ho so|20241126133005|203.0.113.10|s3cret";
        assert_eq!(mac(&m, INIT, "s3cret"), hcc_signing::sha256_hex(by_hand.as_bytes()));
        let q =
            json!({"LoaiBanTin": "QUERY", "PhienBan": "1.0.6", "MaDoiTac": "HCC-DEV", "MaThamChieu": "R1", "ThoiGianGD": "20241126133005"});
        assert_eq!(
            mac(q.as_object().unwrap(), QUERY, "s3cret"),
            hcc_signing::sha256_hex(b"QUERY|1.0.6|HCC-DEV|R1|20241126133005|s3cret")
        );
    }

    #[test]
    fn a_receipt_missing_a_mandatory_field_is_refused() {
        assert_eq!(receipt_problem(&init_by_hand()), None);
        for k in [
            "MaDichVu",
            "MaDonVi",
            "TenDonVi",
            "MaHoSo",
            "TKThuHuong",
            "MaNHThuHuong",
            "TenTKThuHuong",
            "SoCMNDNguoiNop",
            "MaDVC",
            "PhiLePhi",
        ] {
            let mut m = init_by_hand();
            if let Some(Value::Object(r)) = m.get_mut("ThongTinBienLai") {
                r.remove(k);
            }
            assert!(receipt_problem(&m).is_some(), "{k} missing was accepted");
        }
        let mut m = init_by_hand();
        m["ThongTinBienLai"]["PhiLePhi"][0]["SoTien"] = json!(100_000);
        assert!(receipt_problem(&m).is_some(), "a number where clients send a string");
        let mut m = init_by_hand();
        m["ThongTinBienLai"]["PhiLePhi"][0]["SoTien"] = json!("90000");
        assert!(receipt_problem(&m).is_some(), "fee lines that do not add up");
        // The optional fields may be absent, but not empty or other than text.
        for k in ["TenDVC", "HuyenNguoiNop", "TinhNguoiNop"] {
            let mut m = init_by_hand();
            if let Some(Value::Object(r)) = m.get_mut("ThongTinBienLai") {
                r.remove(k);
            }
            assert_eq!(receipt_problem(&m), None, "{k} absent");
            for bad in [json!(""), json!(7)] {
                let mut m = init_by_hand();
                m["ThongTinBienLai"][k] = bad.clone();
                assert!(receipt_problem(&m).is_some(), "{k} = {bad}");
            }
        }
        assert!(receipt_problem(&Map::new()).is_some());
    }
}
