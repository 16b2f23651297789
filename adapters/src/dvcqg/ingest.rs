//! The dossier routes: `POST /v1/dossiers` (a dossier to sync) and
//! `POST /v1/dossiers/{MaHoSo}/progress` (a progress entry), role centre. The body is parsed
//! into the portal's types at this edge, and a valid one is queued with `MaHoSo` as its
//! ordering key, so a dossier's sync and its progress reach the portal in the order they were
//! accepted. What is stored is the object the centre sent (progress gets `MaHoSo` from the
//! URL); the wire form is made at each delivery ([`super::model::to_wire`]).
//!
//! The OpenAPI operations are written from the same constraints the parsers enforce.

use hcc_config::Role;
use serde_json::{Value, json};

use super::model::{Dossier, MaHoSo, Progress};
use super::{KIND_PROGRESS, KIND_SYNC};
use crate::FieldError;
use crate::registry::{Ingest, IngestError, IngestRequest, IngestRoute, ingest_operation};

pub(super) static ROUTES: [IngestRoute; 2] = [
    IngestRoute {
        path: "/v1/dossiers",
        openapi_path: "/v1/dossiers",
        kind: KIND_SYNC,
        roles: &[Role::Centre],
        parse: parse_sync,
        operation: sync_operation,
    },
    IngestRoute {
        path: "/v1/dossiers/{ma_ho_so}/progress",
        openapi_path: "/v1/dossiers/{MaHoSo}/progress",
        kind: KIND_PROGRESS,
        roles: &[Role::Centre],
        parse: parse_progress,
        operation: progress_operation,
    },
];

fn parse_sync(req: &IngestRequest<'_>) -> Result<Ingest, IngestError> {
    let dossier = Dossier::parse(req.body()?)?;
    Ok(Ingest::json(dossier.ma_ho_so.as_str(), &dossier.raw)?.naming(Some(dossier.ma_tthc.clone())))
}

/// The dossier in the URL is checked before the body is read, so a bad URL is named as such.
fn parse_progress(req: &IngestRequest<'_>) -> Result<Ingest, IngestError> {
    let ma = MaHoSo::parse(req.param("ma_ho_so")?).map_err(|message| {
        vec![FieldError {
            field: "MaHoSo (path)".into(),
            message,
        }]
    })?;
    let progress = Progress::parse(req.body()?, &ma)?;
    Ingest::json(progress.ma_ho_so.as_str(), &progress.raw)
}

/// [`MaHoSo::parse`] as a pattern: 1 to 100 of `[A-Za-z0-9._-]`, at least one letter or digit
/// (which also rules out the dot segments).
const MA_HO_SO_PATTERN: &str = "^(?=.*[A-Za-z0-9])[A-Za-z0-9._-]{1,100}$";
const MA_HO_SO_RULE: &str = "1 to 100 letters, digits and . - _, at least one letter or digit (no path separators, no dot segments)";

/// [`super::model::PortalDateTime::parse`] as a pattern: `yyyyMMddHHmmss`, a real calendar
/// time (leap days included) in the years 1900 to 2999.
const PORTAL_DATE_PATTERN: &str = concat!(
    "^((19[0-9]{2}|2[0-9]{3})(((0[13578]|1[02])(0[1-9]|[12][0-9]|3[01]))|((0[469]|11)(0[1-9]|[12][0-9]|30))",
    "|(02(0[1-9]|1[0-9]|2[0-8])))|(((19|2[0-9])(0[48]|[2468][048]|[13579][26])|2000|2400|2800)0229))",
    "([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$"
);

fn portal_date() -> Value {
    json!({
        "type": "string",
        "pattern": PORTAL_DATE_PATTERN,
        "description": "yyyyMMddHHmmss, Asia/Ho_Chi_Minh, a real calendar time, years 1900 to 2999"
    })
}

/// A small number the portal takes as a string: a JSON integer in range, or its digits.
fn code(integer: Value, digits: &str, description: &str) -> Value {
    json!({
        "oneOf": [integer, {"type": "string", "pattern": digits}],
        "description": description
    })
}

fn status() -> Value {
    code(
        json!({"type": "integer", "minimum": 1, "maximum": 10}),
        "^0{0,16}([1-9]|10)$",
        "A number or a string of digits; sent to the portal as a string.",
    )
}

/// [`super::model`]'s `Gia`: a whole amount below 10^15 đồng, as a number or a string of at
/// most 18 digits (leading zeros read as decimal).
fn gia() -> Value {
    json!({
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999u64},
            {"type": "string", "pattern": "^0*[0-9]{1,15}$", "maxLength": 18}
        ],
        "description": "A whole amount in VND below 10^15, a number or a string of digits; sent to the portal as a string."
    })
}

/// A fee line, in `DanhSachLePhi` and in a supplement's `DanhSachLePhiBoSung`.
fn fee_line(as_string: &str) -> Value {
    json!({
        "type": "object",
        "required": ["Gia"],
        "properties": {
            "TenPhiLePhi": {"type": "string"},
            "MaPhiLePhi": {"type": "string"},
            "HinhThucThu": code(json!({"type": "integer", "minimum": 0, "maximum": 99}), "^0{0,16}[0-9]{1,2}$", as_string),
            "Gia": gia(),
            "LoaiPhiLePhi": code(json!({"type": "integer", "enum": [1, 2]}), "^0{0,17}[12]$", "1 phí, 2 lệ phí; a number or a string of digits; sent as a string")
        }
    })
}

fn list_or_null(items: Value) -> Value {
    json!({"type": ["array", "null"], "items": items, "description": "null is read as an empty list"})
}

fn dossier_schema() -> Value {
    let as_string = "A number or a string of digits; sent to the portal as a string.";
    json!({
        "type": "object",
        "description": "One dossier as the portal's DongBoHoSoMC takes it. Unknown fields are passed through.",
        "required": ["MaHoSo", "MaTTHC", "TrangThaiHoSo", "NgayTiepNhan"],
        "additionalProperties": true,
        "properties": {
            "MaHoSo": {"type": "string", "pattern": MA_HO_SO_PATTERN, "description": MA_HO_SO_RULE},
            "MaTTHC": {"type": "string", "pattern": "\\S", "maxLength": 100, "description": "not blank; at most 100 characters once trimmed"},
            "TrangThaiHoSo": status(),
            "NgayTiepNhan": portal_date(),
            "NgayHenTra": portal_date(),
            "NgayTra": portal_date(),
            "NgayKetThucXuLy": portal_date(),
            "LoaiDoiTuong": code(
                json!({"type": "integer", "enum": [1, 2, 3, 4]}),
                "^0{0,17}[1-4]$",
                "1 citizen, 2 business, 3 state agency, 4 organisation or other; a number or a string of digits; sent to the portal as a string."
            ),
            "HinhThuc": code(json!({"type": "integer", "enum": [0, 1]}), "^0{0,17}[01]$", as_string),
            "TaiLieuNop": list_or_null(json!({
                "type": "object",
                "properties": {
                    "IsDeleted": {
                        "oneOf": [
                            {"type": "boolean"},
                            {"type": "integer", "enum": [0, 1]},
                            {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|0|1)$"}
                        ],
                        "description": "true/false, \"True\"/\"False\" (any case), 0/1 or \"0\"/\"1\"; sent to the portal as \"True\"/\"False\"."
                    }
                }
            })),
            "DanhSachGiayToKetQua": list_or_null(json!({"type": "object"})),
            "DanhSachLePhi": list_or_null(fee_line(as_string)),
            "DanhSachTepDinhKemKhac": list_or_null(json!({
                "type": "object",
                "properties": {
                    "SoLuong": code(json!({"type": "integer", "minimum": 0, "maximum": 100_000}), "^(0{0,13}[0-9]{1,5}|0{0,12}100000)$", as_string)
                }
            })),
            "DanhSachHoSoBoSung": list_or_null(json!({
                "type": "object",
                "properties": {
                    "TrangThaiBoSung": code(json!({"type": "integer", "minimum": 0, "maximum": 99}), "^0{0,16}[0-9]{1,2}$", as_string),
                    "DanhSachLePhiBoSung": list_or_null(fee_line(as_string))
                }
            }))
        }
    })
}

fn progress_schema() -> Value {
    json!({
        "type": "object",
        "description": "One progress entry as CapNhatTienDoHoSoMC takes it; MaHoSo may be omitted (taken from the URL).",
        "required": ["TrangThai", "ThoiDiemXuLy"],
        "additionalProperties": true,
        "properties": {
            "MaHoSo": {"type": "string", "pattern": MA_HO_SO_PATTERN, "description": "when given, the dossier of the URL"},
            "NguoiXuLy": {"type": "string"},
            "ChucDanh": {"type": "string"},
            "ThoiDiemXuLy": portal_date(),
            "PhongBanXuLy": {"type": "string"},
            "NoiDungXuLy": {"type": "string"},
            "TrangThai": status(),
            "NgayBatDau": portal_date(),
            "NgayKetThucTheoQuyDinh": portal_date()
        }
    })
}

fn sync_operation() -> Value {
    ingest_operation(
        KIND_SYNC,
        "Queue a dossier sync (DongBoHoSoMC) for the portal",
        "Role centre. Ordering key MaHoSo.",
        Vec::new(),
        dossier_schema(),
    )
}

fn progress_operation() -> Value {
    ingest_operation(
        KIND_PROGRESS,
        "Queue a progress entry (CapNhatTienDoHoSoMC)",
        "Role centre. Ordering key MaHoSo, the dossier of the URL.",
        vec![json!({
            "name": "MaHoSo",
            "in": "path",
            "required": true,
            "schema": {"type": "string", "pattern": MA_HO_SO_PATTERN},
            "description": MA_HO_SO_RULE
        })],
        progress_schema(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(route: &IngestRoute, params: &[(&str, &str)], body: Result<&Value, &str>) -> Result<Ingest, IngestError> {
        (route.parse)(&IngestRequest::new(params, body))
    }

    fn dossier() -> Value {
        json!({"MaHoSo": "H46-1", "MaTTHC": "1.001", "TrangThaiHoSo": 1, "NgayTiepNhan": "20241126080000"})
    }

    #[test]
    fn a_dossier_is_queued_under_its_code_as_sent() {
        let body = dossier();
        let got = run(&ROUTES[0], &[], Ok(&body)).expect("valid");
        assert_eq!(got.ordering_key, "H46-1");
        assert_eq!(serde_json::from_slice::<Value>(&got.payload).ok(), Some(body));
        let bad = json!({"MaHoSo": "a/b"});
        assert!(matches!(run(&ROUTES[0], &[], Ok(&bad)), Err(IngestError::Invalid(e)) if e.iter().any(|e| e.field == "/MaHoSo")));
    }

    #[test]
    fn progress_takes_its_dossier_from_the_url_and_checks_the_url_first() {
        let body = json!({"TrangThai": 2, "ThoiDiemXuLy": "20241126090000"});
        let got = run(&ROUTES[1], &[("ma_ho_so", "H46-1")], Ok(&body)).expect("valid");
        assert_eq!(got.ordering_key, "H46-1");
        let stored: Value = serde_json::from_slice(&got.payload).expect("json");
        assert_eq!(stored["MaHoSo"], "H46-1");
        // A bad URL is reported as the URL's, even when the body is not JSON either.
        match run(&ROUTES[1], &[("ma_ho_so", "..")], Err("malformed JSON")) {
            Err(IngestError::Invalid(e)) => assert_eq!(e[0].field, "MaHoSo (path)"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(&ROUTES[1], &[("ma_ho_so", "H46-1")], Err("malformed JSON")),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn the_operations_carry_the_patterns_and_the_path_parameter() {
        let op = sync_operation();
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["properties"]["NgayTiepNhan"]["pattern"], PORTAL_DATE_PATTERN);
        assert_eq!(schema["properties"]["MaHoSo"]["pattern"], MA_HO_SO_PATTERN);
        let progress = progress_operation();
        assert_eq!(progress["parameters"][0]["name"], "MaHoSo");
        assert_eq!(progress["parameters"][1]["name"], "Idempotency-Key");
    }
}
