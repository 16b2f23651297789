//! The centre's status of a dossier the portal pushed down, sent back up as
//! `DongBoTrangThaiHoSo` (OpenCPS; `docs/inbound.md`): `type: "2"` and `data` one object, not
//! a list. The payload is read and the wire built without I/O here; the call is the adapter's
//! usual one, classified as a progress entry is.

use serde_json::{Map, Value, json};

use super::answer::Answer;
use super::{Attempt, DvcqgAdapter};
use crate::inbound::{InboundStatus, read_status_payload};
use crate::{Delivery, Outcome};

/// `dvcqg.inbound_status_map` when unset: each code as it is (a guess; OpenCPS itself sends
/// only 2 and 5).
pub(super) const IDENTITY: [u8; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/// The service's fields besides the session: `type` and the one `data` object. `code` is the
/// message's ordering key, the dossier's code; `table` maps the centre's `TrangThai`.
pub(super) fn status_fields(code: &str, status: &InboundStatus, table: &[u8; 10]) -> Map<String, Value> {
    let trang_thai = table
        .get(usize::from(status.trang_thai).wrapping_sub(1))
        .copied()
        .unwrap_or(status.trang_thai);
    let data = json!({
        "MaHoSo": code,
        "MaHoSoDonVi": status.ma_ho_so_don_vi.clone().unwrap_or_default(),
        "NoiDung": status.noi_dung,
        "NgayXuLy": status.ngay_xu_ly,
        "TrangThai": trang_thai.to_string(),
        "TaiLieuXuLy": status.tai_lieu_xu_ly,
    });
    let mut fields = Map::new();
    fields.insert("type".into(), Value::from("2"));
    fields.insert("data".into(), data);
    fields
}

impl DvcqgAdapter {
    /// Sends one status, once per attempt (the stale-session repeat aside), as a progress
    /// entry is: refused by the portal is a rejection, the rest as the call classified it.
    pub(super) async fn inbound_status(&self, d: Delivery<'_>, attempt: Attempt) -> Outcome {
        let status = match read_status_payload(d.payload) {
            Ok((status, _link)) => status,
            Err(why) => return Outcome::reject(why),
        };
        let fields = status_fields(d.ordering_key, &status, &self.cfg.inbound_status);
        match self.call("DongBoTrangThaiHoSo", &fields, attempt).await {
            Ok(Answer::Ok(_)) => Outcome::Delivered,
            Ok(Answer::Refused { code, message, .. }) => {
                Outcome::reject(format!("portal refused DongBoTrangThaiHoSo (error_code {code}): {message}"))
            }
            Err(f) => f.outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(trang_thai: u8, don_vi: Option<&str>) -> InboundStatus {
        InboundStatus {
            trang_thai,
            noi_dung: "Đã tiếp nhận".into(),
            ngay_xu_ly: "20261207093000".into(),
            ma_ho_so_don_vi: don_vi.map(str::to_string),
            tai_lieu_xu_ly: vec![json!({"TenTep": "kq.pdf"})],
            nguoi_xu_ly: None,
            chuc_danh: None,
            phong_ban_xu_ly: None,
        }
    }

    #[test]
    fn the_status_goes_as_one_object_with_the_mapped_code_as_a_string() {
        let f = status_fields("G22.99-261207-0001", &status(2, None), &IDENTITY);
        assert_eq!(
            Value::Object(f),
            json!({"type": "2", "data": {
                "MaHoSo": "G22.99-261207-0001",
                "MaHoSoDonVi": "",
                "NoiDung": "Đã tiếp nhận",
                "NgayXuLy": "20261207093000",
                "TrangThai": "2",
                "TaiLieuXuLy": [{"TenTep": "kq.pdf"}]
            }})
        );
        let mut table = IDENTITY;
        table[8] = 5;
        let f = status_fields("M-1", &status(9, Some("H46-1")), &table);
        assert_eq!(f["data"]["TrangThai"], "5");
        assert_eq!(f["data"]["MaHoSoDonVi"], "H46-1");
    }
}
