//! The integration endpoint: `DongBoHoSoMC` (create or update dossiers), `CapNhatTienDoHoSoMC`
//! (progress), `TraCuuHoSo` (look-up), `LayThuTuc` (one procedure, in `catalogue`), and what is recorded of each write that is taken.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::checks::{allowed, digit_code, fee_lines, real_date, tai_lieu_flags};
use super::session::{envelope, inject, json_body, lgsp_gate, refused};
use super::{Arrival, Inner, PortalState};

pub(super) async fn integration(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    *state.lock().per_second.entry(second).or_default() += 1;
    if let Some(r) = lgsp_gate(&state, &req) {
        return r;
    }
    if let Some(r) = inject(&state).await {
        return r;
    }
    let Some(b) = json_body(&body) else {
        return refused(1, "Dữ liệu không hợp lệ: không phải JSON");
    };
    let mut s = state.lock();
    let mut codes = Vec::new();
    named_codes(&Value::Object(b.clone()), &mut codes);
    let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string);
    s.bodies.push_back(super::Received {
        sha256: hcc_signing::sha256_hex(&body),
        codes,
        traceparent,
    });
    if s.bodies.len() > 100_000 {
        s.bodies.pop_front();
    }
    let service = match envelope(&mut s, &b) {
        Ok(sv) => sv,
        Err(r) => return *r,
    };
    if matches!(service.as_str(), "DongBoHoSoMC" | "CapNhatTienDoHoSoMC")
        && let Some(answer) = chosen_refusal(&s, &b)
    {
        s.counters.refused += 1;
        return HttpResponse::Ok().json(answer);
    }
    let answer = match service.as_str() {
        "DongBoHoSoMC" => sync(&mut s, &b),
        "CapNhatTienDoHoSoMC" => progress(&mut s, &b).map_err(Refusal::from),
        "TraCuuHoSo" => return lookup(&mut s, &b),
        "LayThuTuc" => return super::catalogue::detail(&mut s, &b),
        "DongBoTrangThaiHoSo" => state.push.inbound_status(&b).map_err(Refusal::from),
        _ => Err(Refusal::from(format!("Dịch vụ {service} không được hỗ trợ"))),
    };
    match answer {
        Ok(n) => HttpResponse::Ok().json(json!({"error_code": 0, "message": format!("Đồng bộ thành công {n} bản ghi")})),
        Err(r) => {
            s.counters.refused += 1;
            HttpResponse::Ok().json(json!({"error_code": r.code, "message": r.message}))
        }
    }
}

/// A refusal of a write: `error_code` and message. Most are code 2, "bad data".
struct Refusal {
    code: Value,
    message: String,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal { code: json!(2), message }
    }
}

/// The answer the control API chose for a write naming one of its dossiers, if any.
fn chosen_refusal(s: &Inner, b: &serde_json::Map<String, Value>) -> Option<Value> {
    let items = b.get("data")?.as_array()?;
    items
        .iter()
        .filter_map(|i| i.get("MaHoSo")?.as_str())
        .find_map(|ma| s.refusals.get(ma).cloned())
}

fn data_items(b: &serde_json::Map<String, Value>) -> Result<&Vec<Value>, String> {
    match b.get("data") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_object) => Ok(a),
        _ => Err("Dữ liệu không hợp lệ: data phải là danh sách đối tượng".into()),
    }
}

fn record(s: &mut Inner, service: &str, ma: &str, status: u8, is_updating: Option<String>, item: &Value) {
    let fingerprint = format!("{service}|{item}");
    if !s.seen_items.insert(fingerprint) {
        s.counters.duplicates += 1;
    }
    if let Some(prev) = s.last_status.insert(ma.to_string(), status)
        && !allowed(prev, status)
    {
        s.counters.backwards += 1;
    }
    s.counters.accepted += 1;
    s.arrivals.push(Arrival {
        service: service.into(),
        ma_ho_so: ma.into(),
        status,
        is_updating,
        item: item.clone(),
    });
}

fn sync(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<usize, Refusal> {
    let updating = match b.get("isUpdating").and_then(Value::as_str) {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(Refusal::from("isUpdating phải là \"True\" hoặc \"False\"".to_string())),
    };
    let items = data_items(b)?;
    // Check every item before storing any: the portal takes a batch whole or not at all.
    let mut checked = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ma = item
            .get("MaHoSo")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or(format!("data[{i}]: thiếu MaHoSo"))?;
        let tthc = item.get("MaTTHC").and_then(Value::as_str).unwrap_or("");
        if !super::catalogue::knows(s, tthc) {
            return Err(format!("data[{i}]: Mã thủ tục hành chính {tthc} không tồn tại").into());
        }
        let status = digit_code(item, "TrangThaiHoSo", 1..=10, i)?.ok_or(format!("data[{i}]: thiếu TrangThaiHoSo"))?;
        if !real_date(item.get("NgayTiepNhan").unwrap_or(&Value::Null)) {
            return Err(format!("data[{i}]: NgayTiepNhan không đúng định dạng yyyyMMddHHmmss").into());
        }
        digit_code(item, "LoaiDoiTuong", 1..=4, i)?;
        digit_code(item, "HinhThuc", 0..=1, i)?;
        tai_lieu_flags(item, i)?;
        fee_lines(item, i)?;
        let exists = s.dossiers.contains_key(ma);
        if updating && !exists {
            return Err(format!("Hồ sơ {ma} không tồn tại, không thể cập nhật").into());
        }
        if !updating && exists {
            let message = format!("Hồ sơ {ma} đã tồn tại");
            return Err(match &s.exists_code {
                Some(code) => Refusal {
                    code: code.clone(),
                    message,
                },
                None => message.into(),
            });
        }
        checked.push((ma.to_string(), status, item.clone()));
    }
    let n = checked.len();
    for (ma, status, item) in checked {
        s.dossiers.insert(ma.clone(), item.clone());
        record(
            s,
            "DongBoHoSoMC",
            &ma,
            status,
            Some(if updating { "True" } else { "False" }.into()),
            &item,
        );
    }
    Ok(n)
}

fn progress(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<usize, String> {
    let items = data_items(b)?;
    let mut checked = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ma = item.get("MaHoSo").and_then(Value::as_str).unwrap_or("");
        if !s.dossiers.contains_key(ma) {
            return Err(format!("data[{i}]: Hồ sơ {ma} không tồn tại"));
        }
        let status = digit_code(item, "TrangThai", 1..=10, i)?.ok_or(format!("data[{i}]: thiếu TrangThai"))?;
        let at = item.get("ThoiDiemXuLy").unwrap_or(&Value::Null);
        if !real_date(at) {
            return Err(format!("data[{i}]: ThoiDiemXuLy không đúng định dạng yyyyMMddHHmmss"));
        }
        checked.push((ma.to_string(), status, at.as_str().unwrap_or("").to_string(), item.clone()));
    }
    let n = checked.len();
    for (ma, status, at, item) in checked {
        if let Some(prev) = s.last_progress_time.insert(ma.clone(), at.clone())
            && prev > at
        {
            s.counters.backwards += 1;
        }
        record(s, "CapNhatTienDoHoSoMC", &ma, status, None, &item);
    }
    Ok(n)
}

/// `TraCuuHoSo`: the dossier in `result`, an array, which is empty for an unknown dossier (the
/// shape OpenCPS reads), unless the control API set another answer.
fn lookup(s: &mut Inner, b: &serde_json::Map<String, Value>) -> HttpResponse {
    s.counters.lookups += 1;
    if let Some(answer) = &s.lookup_answer {
        return HttpResponse::Ok().json(answer);
    }
    let ma = b.get("mahoso").and_then(Value::as_str).unwrap_or("");
    let result: Vec<&Value> = s.dossiers.get(ma).into_iter().collect();
    HttpResponse::Ok().json(json!({"error_code": 0, "message": "Thành công", "result": result}))
}

/// Every `MaHoSo` a body names, at any depth.
fn named_codes(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("MaHoSo", Value::String(code)) => out.push(code.clone()),
                    _ => named_codes(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| named_codes(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvcqg::{DEFAULT_CATALOGUE, PortalConfig};

    #[test]
    fn fee_lines_and_the_already_exists_answer() {
        let ok = json!({"DanhSachLePhi": [{"Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"}, {"TenPhiLePhi": "x"}]});
        assert!(fee_lines(&ok, 0).is_ok());
        for (name, bad) in [
            ("Gia", json!(100000)),
            ("Gia", json!("0100")),
            ("LoaiPhiLePhi", json!(2)),
            ("HinhThucThu", json!("1.0")),
        ] {
            let mut item = ok.clone();
            item["DanhSachLePhi"][0][name] = bad.clone();
            assert!(fee_lines(&item, 0).is_err(), "{name} {bad}");
        }
        let state = PortalState::new(PortalConfig::default());
        let item = json!({"MaHoSo": "E-1", "MaTTHC": DEFAULT_CATALOGUE[0], "TrangThaiHoSo": "1",
            "NgayTiepNhan": "20241125083000", "LoaiDoiTuong": "4"});
        state.seed_dossier(item.clone()).unwrap();
        let create = json!({"isUpdating": "False", "data": [item]});
        let create = create.as_object().unwrap();
        let mut s = state.lock();
        let r = sync(&mut s, create).err().unwrap();
        assert_eq!((r.code, r.message.contains("đã tồn tại")), (json!(2), true));
        s.exists_code = Some(json!("-3"));
        assert_eq!(sync(&mut s, create).err().unwrap().code, json!("-3"));
        let mut update = create.clone();
        update.insert("isUpdating".into(), json!("True"));
        assert_eq!(sync(&mut s, &update).ok(), Some(1), "LoaiDoiTuong 4 is taken");
    }
}
