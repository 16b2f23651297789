//! Unit tests of the link-up: its section, its wire, and its calls against a scripted link-up.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;
use crate::inbound::{FileContent, InboundStatus, status_payload};
use crate::testing::{self, Reply, Request};

fn built(toml: &str) -> Result<Option<LinkUp>, Vec<String>> {
    let section = hcc_config::Section::from_toml(ID, toml).expect("toml");
    build(&BuildContext::bare(ID, Some(&section))).map_err(|p| p.into_iter().map(|p| p.key).collect())
}

const ON: &str = "base_url = \"http://dvclt.example\"\nusername = \"u\"\npassword = \"hunter2\"\n";

#[test]
fn the_section_is_checked_by_key_and_an_empty_base_url_leaves_it_off() {
    assert!(built("").expect("builds").is_none());
    assert!(built("base_url = \"\"\n").expect("builds").is_none());
    let l = built(ON).expect("builds").expect("on");
    assert_eq!(l.poll_every, Some(Duration::from_secs(60)));
    assert_eq!(l.status_map, wire::DEFAULT_STATUS_MAP);
    assert_eq!(
        built(&format!("{ON}poll_every_secs = 0\n"))
            .expect("builds")
            .expect("on")
            .poll_every,
        None
    );
    let l = built(&format!("{ON}[status_map]\n\"9\" = 7\n")).expect("builds").expect("on");
    assert_eq!(l.status_map[8], 7);
    assert_eq!(
        built(
            "base_url = \"dvclt.example\"\nlist_path = \"api\"\npoll_every_secs = 86401\n[status_map]\n\"11\" = 1\n\"3\" = 8\n\"01\" = 1\n"
        )
        .err(),
        Some(
            [
                "dvclt.base_url",
                "dvclt.username",
                "dvclt.password",
                "dvclt.poll_every_secs",
                "dvclt.list_path",
                "dvclt.status_map.01",
                "dvclt.status_map.11",
                "dvclt.status_map.3",
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert!(built(&format!("{ON}base_uri = \"x\"\n")).is_err(), "unknown key");
    let s: DvcltSettings = hcc_config::Section::from_toml(ID, ON).expect("toml").parse().expect("parses");
    assert!(!format!("{s:?}").contains("hunter2"));
}

fn listed(code: &str, handle: &str) -> Listed {
    Listed {
        code: MaHoSo::parse(code).expect("code"),
        handle: handle.into(),
    }
}

#[test]
fn tokens_and_lists_are_read_and_unusable_entries_skipped() {
    assert_eq!(wire::read_token(br#"{"token":"abc.def","refreshToken":"r"}"#), Ok("abc.def".into()));
    assert!(wire::read_token(br#"{"token":""}"#).is_err());
    assert!(wire::read_token(b"{\"token\":\"a b\"}").is_err(), "a token is one header value");
    assert!(wire::read_token(b"<html>").is_err());
    let list = json!({"data": [
        {"id": "a-1", "maHoSo": "KS.2026-0001", "maTTHC": "1.000656", "module": "KS"},
        {"id": "../x", "maHoSo": "KS.2026-0002"},
        {"id": "a-3", "maHoSo": "KS 2026/3"},
        {"id": 44, "maHoSo": "KT.2026-0004"},
        {"id": "a-5", "maHoSo": "KT.2026-0005"}
    ]})
    .to_string();
    let got = wire::read_list(list.as_bytes(), 10).expect("reads");
    assert_eq!(
        got,
        vec![
            listed("KS.2026-0001", "a-1"),
            listed("KT.2026-0004", "44"),
            listed("KT.2026-0005", "a-5")
        ]
    );
    assert_eq!(wire::read_list(list.as_bytes(), 1).expect("reads").len(), 1);
    assert!(wire::read_list(b"{\"data\": {}}", 10).is_err());
}

fn detail(inner_files: bool) -> Value {
    let files = json!([{"id": 1, "loaiGiayTo": "CCCD", "tenGiayTo": "Căn cước", "tenTepDinhKem": "C:\\scan\\cccd.pdf", "huyGiayTo": false, "duLieuTepDinhKem": "JVBE\nRi0x"}]);
    let mut inner = json!({"maHoSo": "KS.2026-0001", "hoTich": "<hoTich/>", "fileDinhKem": []});
    if inner_files {
        inner["fileDinhKem"] = files.clone();
    }
    json!({"data": {
        "id": "a-1", "maHoSo": "KS.2026-0001", "maTTHC": "1.000656", "module": "KS",
        "data": inner.to_string(),
        "fileDinhKem": if inner_files { json!([]) } else { files }
    }})
}

#[test]
fn a_detail_gives_the_inner_dossier_its_files_and_the_link() {
    for inner_files in [true, false] {
        let d = wire::read_detail(detail(inner_files).to_string().as_bytes(), &listed("KS.2026-0001", "a-1")).expect("reads");
        assert_eq!(d.code.as_str(), "KS.2026-0001");
        assert_eq!(d.procedure.as_deref(), Some("1.000656"));
        assert_eq!(d.fields["hoTich"], "<hoTich/>");
        assert_eq!(
            Value::Object(d.link.clone()),
            json!({"id": "a-1", "maTTHC": "1.000656", "maHoSo": "KS.2026-0001", "module": "KS"})
        );
        assert_eq!(d.files.len(), 1);
        assert_eq!((d.files[0].name.as_str(), d.files[0].label.as_deref()), ("cccd.pdf", Some("CCCD")));
        assert!(matches!(&d.files[0].content, FileContent::Inline(b) if b == b"%PDF-1"));
        if inner_files {
            assert_eq!(d.fields["fileDinhKem"][0]["tenTepDinhKem"], "C:\\scan\\cccd.pdf");
            assert!(
                d.fields["fileDinhKem"][0].get("duLieuTepDinhKem").is_none(),
                "no bytes in the fields"
            );
        }
    }
    let other = wire::read_detail(detail(true).to_string().as_bytes(), &listed("KS.2026-0009", "a-1"));
    assert!(other.is_err(), "the detail must name the listed dossier");
    let mut bad = detail(false);
    bad["data"]["fileDinhKem"][0]["duLieuTepDinhKem"] = json!("***");
    assert_eq!(
        wire::read_detail(bad.to_string().as_bytes(), &listed("KS.2026-0001", "a-1")).err(),
        Some("fileDinhKem/0/duLieuTepDinhKem is not base64".into())
    );
    let mut not_json = detail(false);
    not_json["data"]["data"] = json!("{not json");
    assert!(wire::read_detail(not_json.to_string().as_bytes(), &listed("KS.2026-0001", "a-1")).is_err());
}

#[test]
fn answers_are_judged_by_whole_phrases() {
    assert!(wire::ack_taken("Cập nhật thành công".as_bytes()));
    assert!(wire::ack_taken("\"C\\u1eadp nh\\u1eadt th\\u00e0nh c\\u00f4ng\"".as_bytes()));
    assert!(wire::ack_taken(br#"{"message": "CAP NHAT THANH CONG"}"#));
    assert!(!wire::ack_taken("Cập nhật không thành công".as_bytes()));
    assert!(!wire::ack_taken("Thành công".as_bytes()));
    for taken in [
        "Thêm mới thành công",
        "{\"message\":\"Hồ sơ đã tồn tại\"}",
        "Cập nhật trạng thái thành công!",
    ] {
        assert!(wire::status_taken(taken.as_bytes()), "{taken}");
    }
    for refused in ["Thêm mới không thành công", "Chưa thành công", "Lỗi", "", "thanhcong"] {
        assert!(!wire::status_taken(refused.as_bytes()), "{refused}");
    }
}

fn status(trang_thai: u8, don_vi: Option<&str>) -> InboundStatus {
    InboundStatus {
        trang_thai,
        noi_dung: "Đã trả kết quả".into(),
        ngay_xu_ly: "20261207093005".into(),
        ma_ho_so_don_vi: don_vi.map(str::to_string),
        tai_lieu_xu_ly: vec![json!({"TenTep": "gks.pdf"})],
        nguoi_xu_ly: Some("Cán bộ A".into()),
        chuc_danh: None,
        phong_ban_xu_ly: None,
    }
}

fn link() -> Map<String, Value> {
    json!({"id": "a-1", "maTTHC": "1.000656", "maHoSo": "KS.2026-0001", "module": "KS"})
        .as_object()
        .cloned()
        .expect("object")
}

#[test]
fn the_status_is_built_with_the_mapped_code_and_the_link_ups_time() {
    assert_eq!(wire::link_up_time("20261207093005"), Ok("07/12/2026 09:30:05".into()));
    assert!(wire::link_up_time("20261307093005").is_err());
    let body = wire::status_body("KS.2026-0001", &status(10, None), &link(), &wire::DEFAULT_STATUS_MAP).expect("builds");
    assert_eq!(
        body,
        json!({
            "maTTHC": "1.000656", "soHoSoLT": "KS.2026-0001", "coQuanXuLy": 5, "maHoSo": "KS.2026-0001",
            "trangThai": 4, "thoiGianThucHien": "07/12/2026 09:30:05",
            "ghiChu": "Đã trả kết quả", "noiDungXuLy": "Đã trả kết quả",
            "ketQuaXuLy": "[{\"TenTep\":\"gks.pdf\"}]",
            "nguoiXuLy": "Cán bộ A", "chucDanh": "", "phongBanXuLy": "",
            "ngayBatDau": null, "ngayKetThucTheoQuyDinh": null, "ngayHenTraTruoc": null,
            "ngayHenTraMoi": null, "hanBoSungHoSo": null
        })
    );
    let body = wire::status_body("KS.2026-0001", &status(3, Some("H46-77")), &link(), &wire::DEFAULT_STATUS_MAP).expect("builds");
    assert_eq!((body["trangThai"].clone(), body["maHoSo"].clone()), (json!(6), json!("H46-77")));
    let mut no_tthc = link();
    no_tthc.remove("maTTHC");
    assert!(wire::status_body("KS.2026-0001", &status(3, None), &no_tthc, &wire::DEFAULT_STATUS_MAP).is_err());
}

/// A link-up on loopback: tokens `T-1`, `T-2`, ... in order; the first token is refused on
/// every call but the token call when `stale_first`; `answer` answers the rest.
async fn link_up(stale_first: bool, answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> (LinkUp, testing::Seen) {
    let tokens = AtomicUsize::new(0);
    let (url, seen) = testing::serve(Arc::new(move |r: &Request, _| {
        if r.path == "/api/tokens" {
            let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
            return testing::json(200, json!({"token": format!("T-{n}"), "refreshToken": "R"}));
        }
        if stale_first && r.header("authorization") == Some("Bearer T-1") {
            return testing::text(401, "Unauthorized");
        }
        answer(r)
    }))
    .await;
    let section = hcc_config::Section::from_toml(ID, &format!("base_url = \"{url}\"\nusername = \"u\"\npassword = \"p\"\n")).expect("toml");
    let l = build(&BuildContext::bare(ID, Some(&section))).expect("builds").expect("on");
    (l, seen)
}

fn paths(seen: &testing::Seen) -> Vec<String> {
    seen.lock().unwrap().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_call_made_again() {
    let (l, seen) = link_up(true, |_| {
        testing::json(200, json!({"data": [{"id": "a-1", "maHoSo": "KS.2026-0001"}]}))
    })
    .await;
    assert_eq!(l.list(500).await.expect("listed"), vec![listed("KS.2026-0001", "a-1")]);
    assert_eq!(
        paths(&seen),
        [
            "POST /api/tokens",
            "GET /api/lienthongdvclt/hosolienthong",
            "POST /api/tokens",
            "GET /api/lienthongdvclt/hosolienthong"
        ]
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests[0].json(), json!({"userName": "u", "password": "p"}));
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(requests[3].header("authorization"), Some("Bearer T-2"));
    assert_eq!(requests[3].header("accept"), Some("application/json"));
    assert_eq!(requests[3].json(), json!({}));
    // The new token is kept.
    l.list(500).await.expect("listed");
    assert_eq!(paths(&seen).len(), 5);

    // A fresh token refused too: an alarm, and no third token.
    let (l, seen) = link_up(false, |_| testing::text(401, "Unauthorized")).await;
    let e = l.list(500).await.expect_err("refused");
    assert!(e.alarm, "{e}");
    assert_eq!(paths(&seen).iter().filter(|p| p.ends_with("/api/tokens")).count(), 2);
}

#[tokio::test]
async fn a_detail_is_fetched_by_its_id_and_an_acknowledgement_confirmed_by_its_words() {
    let (l, seen) = link_up(false, |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/lienthongdvclt/hosolienthong/a-1") => testing::json(200, detail(true)),
        ("PUT", "/api/lienthongdvclt/hosolienthong/danhan") if r.json()["maHoSo"] == "KS.2026-0001" => {
            testing::text(200, "Cập nhật thành công")
        }
        ("PUT", _) => testing::text(200, "Cập nhật không thành công"),
        _ => testing::text(404, "Not Found"),
    })
    .await;
    let d = l.fetch(&listed("KS.2026-0001", "a-1")).await.expect("fetched");
    assert_eq!(d.files.len(), 1);
    assert!(l.fetch(&listed("KS.2026-0001", "../a")).await.expect_err("not a segment").alarm);
    l.acknowledge(&d.code, &d.link).await.expect("acknowledged");
    let refused = l
        .acknowledge(&MaHoSo::parse("KS.2026-0002").unwrap(), &d.link)
        .await
        .expect_err("not confirmed");
    assert!(refused.alarm);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests[2].json(), json!({"maHoSo": "KS.2026-0001", "daNhan": true}));
    assert_eq!(requests.len(), 4, "{:?}", paths(&seen));
}

async fn deliver(l: &LinkUp, kind: &str) -> Outcome {
    let payload = status_payload(&status(9, None), &link()).to_string();
    l.deliver(Delivery {
        id: "m-1",
        kind,
        ordering_key: "KS.2026-0001",
        payload: payload.as_bytes(),
        attempt: 1,
    })
    .await
}

#[tokio::test]
async fn statuses_are_classified_by_the_answers_words_and_status() {
    type Answer = Box<dyn Fn() -> Reply + Send + Sync>;
    let cases: Vec<(Answer, &str)> = vec![
        (Box::new(|| testing::text(200, "Thêm mới thành công")), "delivered"),
        (Box::new(|| testing::json(200, json!({"message": "Hồ sơ đã tồn tại"}))), "delivered"),
        (Box::new(|| testing::text(200, "Thêm mới không thành công")), "reject"),
        (Box::new(|| testing::text(400, "Bad Request")), "reject"),
        (Box::new(|| testing::text(500, "Lỗi")), "retry"),
        (Box::new(|| testing::text(429, "")), "retry"),
        (Box::new(|| testing::text(408, "")), "retry"),
        (Box::new(|| Reply::Drop), "retry"),
    ];
    for (reply, expected) in cases {
        let (l, seen) = link_up(false, move |_| reply()).await;
        let got = match deliver(&l, KIND_STATUS).await {
            Outcome::Delivered => "delivered",
            Outcome::Reject { .. } => "reject",
            Outcome::Retry { .. } => "retry",
        };
        assert_eq!(got, expected);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "sent once: {:?}", paths(&seen));
        assert_eq!(requests[1].path, "/api/lienthongdvclt/hosolienthong/trangthai");
        assert_eq!(requests[1].json()["trangThai"], 4);
    }
    // A stale token: renewed, and the status sent once more.
    let (l, seen) = link_up(true, |_| testing::text(200, "Thêm mới thành công")).await;
    assert_eq!(deliver(&l, KIND_STATUS).await, Outcome::Delivered);
    assert_eq!(paths(&seen).len(), 4);
    assert!(matches!(deliver(&l, "dossier.sync").await, Outcome::Reject { .. }));
}
