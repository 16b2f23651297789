//! EMC's tracking body, made from what the centre handed the portal, without I/O: the stored
//! dossier (`dossier.sync`) or progress entry (`dossier.progress`) read in the portal's
//! vocabulary (`adapters/src/dvcqg/model.rs`), and the `TrackingMCDT` JSON in EMC's.
//!
//! Every EMC code goes out as a JSON **string**, as both public clients send it (the Thanh Hóa
//! fork's `EMCRequestBody` has `string` properties; OpenCPS posts a form, all strings); only
//! `siteId` is an integer (`int?` in the fork). What each field is filled from, and which
//! values are guesses, is in `docs/emc.md`.

use serde_json::{Map, Value, json};

use crate::dvcqg::model::DossierStatus;
use crate::dvcqg::{KIND_PROGRESS, KIND_SYNC};
use crate::fields::whole_in;

/// EMC's status for a portal status (`TrangThaiHoSo`, progress `TrangThai`), as the Thanh Hóa
/// fork maps it: 1 new and 2 received → `"1"` received; 4 processing → `"2"` processing; 9
/// done and 10 result returned → `"3"` result returned; anything else → `"0"` other. EMC's
/// `"4"` (assigned, `PhanCongXuLy`) exists in its vocabulary, but no public code sends it and
/// the portal's codes have no step that means it, so it is never sent.
pub fn status_code(status: DossierStatus) -> &'static str {
    match status.code() {
        1 | 2 => "1",
        4 => "2",
        9 | 10 => "3",
        _ => "0",
    }
}

/// What EMC is told about a dossier's procedure and how it is handled, learned from a sync
/// and used again for the dossier's progress entries, which carry none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// `MaTTHC`.
    pub code: String,
    /// `TenTTHC`, empty when the centre sent none.
    pub name: String,
    pub forms_reception: &'static str,
    pub forms_payments: &'static str,
    pub level: &'static str,
    /// The `user` string: empty, or a short JSON object naming the applicant's account.
    pub user: String,
}

impl Procedure {
    /// A procedure known only by its code and name (a progress entry that names it, with no
    /// sync of its dossier seen): every handling field at its default.
    pub fn named(code: String, name: String) -> Procedure {
        Procedure {
            name,
            ..procedure(&Map::new(), code)
        }
    }
}

/// One message as EMC is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A dossier sync: its code, EMC status and procedure.
    Sync {
        ma_ho_so: String,
        status: &'static str,
        procedure: Procedure,
    },
    /// A progress entry: its dossier, EMC status, and the procedure's code and name when the
    /// centre put them in the entry (the portal's progress object has neither).
    Progress {
        ma_ho_so: String,
        status: &'static str,
        named: Option<(String, String)>,
    },
}

/// Why a stored message cannot be told to EMC. The ingest routes checked it, so these are
/// bugs or an old payload, never the centre's mistake to retry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the stored message is not a JSON object")]
    NotAnObject,
    #[error("EMC takes no messages of kind {0}")]
    Kind(String),
    #[error("the stored message has no valid {0}")]
    Field(&'static str),
}

/// Reads a stored message of `kind`.
pub fn read(kind: &str, payload: &[u8]) -> Result<Step, WireError> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| WireError::NotAnObject)?;
    let obj = value.as_object().ok_or(WireError::NotAnObject)?;
    let ma_ho_so = obj
        .get("MaHoSo")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(WireError::Field("MaHoSo"))?
        .to_string();
    match kind {
        KIND_SYNC => {
            let status = status_of(obj, "TrangThaiHoSo")?;
            let code = text(obj, "MaTTHC").ok_or(WireError::Field("MaTTHC"))?;
            Ok(Step::Sync {
                ma_ho_so,
                status,
                procedure: procedure(obj, code),
            })
        }
        KIND_PROGRESS => {
            let status = status_of(obj, "TrangThai")?;
            let named = text(obj, "MaTTHC").map(|code| (code, text(obj, "TenTTHC").unwrap_or_default()));
            Ok(Step::Progress { ma_ho_so, status, named })
        }
        other => Err(WireError::Kind(other.to_string())),
    }
}

fn status_of(obj: &Map<String, Value>, field: &'static str) -> Result<&'static str, WireError> {
    obj.get(field)
        .and_then(DossierStatus::from_json)
        .map(status_code)
        .ok_or(WireError::Field(field))
}

/// A non-blank text field, trimmed.
fn text(obj: &Map<String, Value>, field: &str) -> Option<String> {
    obj.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A small code sent as a number or a string of digits, as the centre's software sends them.
fn code(obj: &Map<String, Value>, field: &str) -> Option<i64> {
    obj.get(field).and_then(|v| whole_in(0, 99)(v).ok())
}

/// The procedure and handling of a dossier, in EMC's codes. The portal's dossier object has
/// none of EMC's handling fields, so each is read from the field the Thanh Hóa fork reads when
/// the centre sends it (unknown fields pass through ingest), else a documented default:
///
/// - `formsReception` from `KenhThucHien` as the fork maps it (1 at the desk → `"2"` direct;
///   2 or 3 online → `"1"` online); default `"2"`: a one-stop centre receives at its desk;
/// - `formsPayments`: `"0"` (no payment) without a fee line of a positive `Gia`, else `"2"`
///   (paid directly, a guess: the portal's `HinhThucThu` codes are not published);
/// - `level` from `MucDo` as the fork maps it (3 or 4 → `"4"`, else `"3"`); default `"3"`;
/// - `user`: the applicant's portal account (`MaDoiTuong`) as the fork's JSON string
///   `{"ID_local", "ID_QG"}`, or empty; never an identity number, which the portal vocabulary
///   does not carry here.
fn procedure(obj: &Map<String, Value>, code_tthc: String) -> Procedure {
    let forms_reception = match code(obj, "KenhThucHien") {
        Some(2 | 3) => "1",
        _ => "2",
    };
    let paid = obj.get("DanhSachLePhi").and_then(Value::as_array).is_some_and(|fees| {
        fees.iter().any(|f| {
            f.get("Gia")
                .and_then(|g| whole_in(0, 999_999_999_999_999)(g).ok())
                .is_some_and(|g| g > 0)
        })
    });
    let level = match code(obj, "MucDo") {
        Some(3 | 4) => "4",
        _ => "3",
    };
    let user = text(obj, "MaDoiTuong")
        .map(|id| json!({"ID_local": id, "ID_QG": id}).to_string())
        .unwrap_or_default();
    Procedure {
        code: code_tthc,
        name: text(obj, "TenTTHC").unwrap_or_default(),
        forms_reception,
        forms_payments: if paid { "2" } else { "0" },
        level,
        user,
    }
}

/// The `TrackingMCDT` body. `isFromDVCQG` is `"0"`: the centre's dossiers are its own (the fork
/// sends `"1"` only for dossiers the portal pushed down). `isDVCBC` is `"0"` (result handed
/// over at the desk): the portal's `HinhThuc` may say postal delivery, but its meaning is not
/// settled. `data` is empty, as OpenCPS sends it.
pub fn body(site_id: i64, ma_ho_so: &str, status: &str, p: &Procedure) -> Value {
    json!({
        "codeProfile": ma_ho_so,
        "siteId": site_id,
        "codeTTHC": p.code,
        "nameTTHC": p.name,
        "maHoSo": ma_ho_so,
        "status": status,
        "formsReception": p.forms_reception,
        "formsPayments": p.forms_payments,
        "level": p.level,
        "isFromDVCQG": "0",
        "isDVCBC": "0",
        "data": "",
        "user": p.user,
    })
}
