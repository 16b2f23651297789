//! The national payment platform, as `shared/domain/payments.md` §1 describes it: INIT and
//! QUERY at one endpoint, each message checked by `MaXacThuc` (SHA-256 of the fields joined
//! with `|`, secret last), and a control call that "pays" a reference by sending the platform's
//! confirmation to the one-stop system: once or several times, late, tampered, with another
//! amount, or not at all (a lost callback, for reconciliation to find).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone)]
struct Tx {
    amount: u64,
    paid: Option<String>,
}

#[derive(Clone)]
pub struct PaygovState {
    partner: String,
    secret: String,
    txs: Arc<Mutex<HashMap<String, Tx>>>,
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
}

pub fn routes(state: PaygovState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/paygov", web::post().to(endpoint))
            .route("/_mock/paygov/pay", web::post().to(pay))
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

async fn endpoint(state: web::Data<PaygovState>, body: web::Json<Value>) -> HttpResponse {
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
    let Some(m) = body.as_object() else {
        return error("01", "Dữ liệu không hợp lệ");
    };
    let kind = s(m, "LoaiBanTin");
    let fields = match kind.as_str() {
        "INIT" => INIT,
        "QUERY" | "GET_BILL" => QUERY,
        _ => return error("01", "LoaiBanTin không hợp lệ"),
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
        let Ok(amount) = s(m, "SoTien").parse::<u64>() else {
            return error("01", "SoTien không hợp lệ");
        };
        if reference.is_empty() || state.lock().contains_key(&reference) {
            return error("04", "MaThamChieu trùng hoặc trống");
        }
        state.lock().insert(reference.clone(), Tx { amount, paid: None });
        return HttpResponse::Ok().json(json!({"MaLoi": "00", "MoTaLoi": "Thành công", "MaThamChieu": reference, "UrlThanhToan": format!("https://paygov.example.vn/pay/{reference}")}));
    }
    let tx = state.lock().get(&reference).cloned();
    match tx {
        None => error("05", "Không tìm thấy giao dịch"),
        Some(Tx { paid: Some(txn), amount }) => {
            HttpResponse::Ok().json(json!({"MaLoi": "00", "TrangThaiGD": "1", "SoTien": amount, "MaGiaoDich": txn}))
        }
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
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

async fn pay(state: web::Data<PaygovState>, r: web::Json<PayRequest>) -> HttpResponse {
    let txn = format!("PG{}", fastrand::u64(10_000_000_000..99_999_999_999));
    let amount = {
        let mut txs = state.lock();
        let Some(tx) = txs.get_mut(&r.reference) else {
            return HttpResponse::NotFound().json(json!({"error": "unknown MaThamChieu"}));
        };
        tx.paid = Some(txn.clone());
        tx.amount
    };
    if !r.notify || r.callback_urls.is_empty() {
        return HttpResponse::Ok().json(json!({"MaGiaoDich": txn, "sent": 0}));
    }
    let mut m = Map::new();
    let now = chrono_like_now();
    for (k, v) in [
        ("LoaiBanTin", "PAYMENT"),
        ("MaLoi", "00"),
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
