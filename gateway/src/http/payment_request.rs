//! The body of `POST /v1/payments`, parsed at the edge into a [`NewPayment`]: the portal's
//! vocabulary (`MaHoSo`, `SoTien`, `PhiLePhi`, the payer), amounts as numbers or strings of
//! digits, fee lines that add up, a configured agency, and the fields the chosen provider needs.
//! Every problem is named by its JSON Pointer; nothing is looked up until all of it is valid.

use std::net::IpAddr;

use hcc_adapters::domain::MaHoSo;
use hcc_adapters::fields::{Fields, non_empty_text};
use hcc_adapters::payments::{FeeKind, FeeLine, Payer, PublicService};
use hcc_adapters::registry::Registry;
use serde_json::Value;

use super::problem::FieldError;
use crate::payments::{NewPayment, Payments};

/// The fields of `POST /v1/payments` (contract v2), in the portal's vocabulary.
const PAYMENT_FIELDS: &[&str] = &[
    "MaHoSo",
    "SoTien",
    "provider",
    "MaDonVi",
    "MaTTHC",
    "TenTTHC",
    "PhiLePhi",
    "HoTenNguoiNop",
    "SoCMNDNguoiNop",
    "DiaChiNguoiNop",
    "IpNguoiNop",
    "MaDVC",
    "TenDVC",
    "HuyenNguoiNop",
    "TinhNguoiNop",
];
/// A receipt lists a handful of fees; a caller cannot grow the list without bound.
pub(super) const MAX_FEE_LINES: usize = 50;
/// The largest amount taken, in đồng (a trillion: far above any fee, far below overflow).
pub(super) const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// The fee lines' total, or `None` when it would not fit in a `u64`: an overflow is refused,
/// never wrapped. With [`MAX_FEE_LINES`] lines of at most [`MAX_AMOUNT`] it cannot overflow
/// today; the check keeps that true if either bound is ever raised.
pub(super) fn fee_total(fees: &[FeeLine]) -> Option<u64> {
    fees.iter().try_fold(0u64, |total, l| total.checked_add(l.amount))
}

/// A whole, positive amount of đồng: a JSON number or a string of digits, as centres send it.
pub(super) fn amount(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    n.filter(|n| (1..=MAX_AMOUNT).contains(n))
        .ok_or_else(|| "must be a whole, positive amount in VND (a number or a string of digits)".to_string())
}

/// Text for a receipt: trimmed, non-empty, at most `max` characters, no control characters.
fn receipt_text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let t = non_empty_text(max)(v)?;
        if t.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(t)
    }
}

/// A CMND (9 digits) or CCCD (12 digits). The message never repeats the value.
fn identity_number(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if (s.len() == 9 || s.len() == 12) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.to_string()),
        _ => Err("must be a CMND (9 digits) or CCCD (12 digits) number, as a string".into()),
    }
}

fn fee_kind(v: &Value) -> Result<FeeKind, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    match n {
        Some(1) => Ok(FeeKind::Phi),
        Some(2) => Ok(FeeKind::LePhi),
        _ => Err("must be 1 (phí) or 2 (lệ phí)".into()),
    }
}

/// Parses a payment request into a [`NewPayment`], reporting every problem by JSON Pointer.
pub(super) fn parse_payment(v: &Value, payments: &Payments, registry: &Registry) -> Result<NewPayment, Vec<FieldError>> {
    let Some(obj) = v.as_object() else {
        return Err(vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        }]);
    };
    let mut errors = Vec::new();
    for k in obj.keys().filter(|k| !PAYMENT_FIELDS.contains(&k.as_str())).take(10) {
        errors.push(FieldError {
            field: format!("/{}", k.replace('~', "~0").replace('/', "~1").chars().take(64).collect::<String>()),
            message: "is not a field of a payment request".into(),
        });
    }
    let mut f = Fields::new(obj, String::new(), &mut errors);
    let ma_ho_so = f.required("MaHoSo", |v| MaHoSo::parse(v.as_str().ok_or("must be a dossier code")?));
    let so_tien = f.required("SoTien", amount);
    let provider = f.required("provider", |v| {
        v.as_str()
            .and_then(|id| registry.creating(id))
            .ok_or_else(|| format!("must be {}", registry.creating_ids().join(" or ")))
    });
    let ma_don_vi = f.optional("MaDonVi", receipt_text(50));
    let ma_tthc = f.required("MaTTHC", receipt_text(100));
    let ten_tthc = f.required("TenTTHC", receipt_text(500));
    let ho_ten = f.required("HoTenNguoiNop", receipt_text(200));
    let dia_chi = f.optional("DiaChiNguoiNop", receipt_text(500));
    let so_cmnd = f.optional("SoCMNDNguoiNop", identity_number);
    // The public service and the payer's district and province: optional receipt fields both
    // public PayGov clients send (docs/paygov.md).
    let ma_dvc = f.optional("MaDVC", receipt_text(100));
    let ten_dvc = f.optional("TenDVC", receipt_text(500));
    let huyen = f.optional("HuyenNguoiNop", receipt_text(200));
    let tinh = f.optional("TinhNguoiNop", receipt_text(200));
    let ip = f.optional("IpNguoiNop", |v| {
        v.as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .ok_or_else(|| "must be an IPv4 or IPv6 address".to_string())
    });
    let fee_count = match f.get("PhiLePhi") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(a)) => a.len(),
        Some(_) => usize::MAX,
    };
    let mut fees = Vec::new();
    if fee_count == 0 {
        f.error("PhiLePhi", "is required: at least one fee line");
    } else if fee_count != usize::MAX && fee_count > MAX_FEE_LINES {
        f.error("PhiLePhi", format!("must have at most {MAX_FEE_LINES} fee lines"));
    } else {
        fees = f.list("PhiLePhi", |i| {
            let kind = i.required("LoaiPhiLePhi", fee_kind);
            let code = i.required("MaPhiLePhi", receipt_text(50));
            let name = i.required("TenPhiLePhi", receipt_text(500));
            let amount = i.required("SoTien", amount);
            Some(FeeLine {
                kind: kind?,
                code: code?,
                name: name?,
                amount: amount?,
            })
        });
        if fees.len() == fee_count && so_tien.is_some() {
            match fee_total(&fees) {
                None => f.error("PhiLePhi", "the fee lines add up to more than any amount this gateway takes"),
                Some(total) if Some(total) != so_tien => f.error("PhiLePhi", "the fee lines must add up to SoTien"),
                Some(_) => {}
            }
        }
    }
    let agency = match payments.agency(ma_don_vi.as_deref()) {
        Ok(a) => Some(a.clone()),
        Err(m) => {
            f.error("MaDonVi", m);
            None
        }
    };
    // The fields this provider needs beyond the common ones; a field given but invalid has
    // its own error already.
    for required in provider.and_then(|k| k.creates).unwrap_or_default() {
        if f.get(required.field).is_none() {
            f.error(required.field, required.message);
        }
    }
    let provider = provider.map(|k| k.id);
    match (ma_ho_so, so_tien, provider, agency, ma_tthc, ten_tthc, ho_ten) {
        (Some(ma_ho_so), Some(amount), Some(provider), Some(agency), Some(ma_tthc), Some(ten_tthc), Some(ho_ten)) if errors.is_empty() => {
            Ok(NewPayment {
                ma_ho_so,
                amount,
                provider,
                agency,
                ma_tthc,
                ten_tthc,
                service: PublicService { ma_dvc, ten_dvc },
                fees,
                payer: Payer {
                    ho_ten,
                    so_cmnd,
                    dia_chi,
                    huyen,
                    tinh,
                    ip,
                },
            })
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(amount: u64) -> FeeLine {
        FeeLine {
            kind: FeeKind::LePhi,
            code: "LP01".into(),
            name: "Lệ phí".into(),
            amount,
        }
    }

    #[test]
    fn fee_lines_are_summed_without_wrapping() {
        assert_eq!(fee_total(&[]), Some(0));
        assert_eq!(fee_total(&[line(80_000), line(20_000)]), Some(100_000));
        assert_eq!(fee_total(&[line(u64::MAX - 1), line(1)]), Some(u64::MAX));
        // u64::MAX + 1 wraps to 0 and 2 × 2^63 wraps to 0: both would "add up" to a tiny SoTien.
        assert_eq!(fee_total(&[line(u64::MAX), line(1)]), None);
        assert_eq!(fee_total(&[line(1 << 63), line(1 << 63)]), None);
        assert_eq!(fee_total(&[line(u64::MAX), line(u64::MAX), line(2)]), None);
        // The largest request the edge takes is far from overflow.
        let most = vec![line(MAX_AMOUNT); MAX_FEE_LINES];
        assert_eq!(fee_total(&most), Some(MAX_AMOUNT * MAX_FEE_LINES as u64));
    }
}
