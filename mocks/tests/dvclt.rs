//! The DVCLT mock over HTTP, in-process: it refuses what the fork's client never sends, lists
//! only what is not yet acknowledged, and words its answers so only a client that looks for
//! the words finds success.

use std::time::Duration;

use hcc_mocks::dvclt::{self, AnswerForm, DvcltConfig, DvcltFaults, DvcltState, NewDossier, NewFile};
use reqwest::Method;
use serde_json::{Value, json};

const PDF: &str = "JVBERi0xLjQKJcTl8uXrCg=="; // "%PDF-1.4\n%...\n"

fn dossier(id: &str, ma: &str) -> NewDossier {
    NewDossier {
        id: id.into(),
        ma_ho_so: ma.into(),
        ma_tthc: "1.001193.000.00.00.H46".into(),
        module: "KS".into(),
        files: vec![NewFile {
            name: "to-khai.pdf".into(),
            base64: PDF.into(),
            loai_giay_to: Some("TK".into()),
            ten_giay_to: None,
        }],
        ..NewDossier::default()
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A call as the fork's client makes it (`Accept`, a JSON body), `body` `None` sending none.
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn token(&self) -> String {
        let (status, text) = self
            .call(
                Method::POST,
                dvclt::TOKEN_PATH,
                None,
                Some(json!({"userName": "hcc-dev", "password": "hcc-dev-dvclt-password"})),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["refreshToken"].is_string() && v["refreshTokenExpiryTime"].is_string(), "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

fn start() -> (DvcltState, hcc_mocks::Running, Client) {
    let state = DvcltState::new(DvcltConfig::default());
    let running = dvclt::spawn("127.0.0.1:0", state.clone()).unwrap();
    let client = Client {
        base: running.url(),
        http: reqwest::Client::new(),
    };
    (state, running, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_the_forks_client_never_sends() {
    let (state, _running, c) = start();
    state.add_dossier(dossier("1", "LT-1")).unwrap();
    let wrong = json!({"userName": "hcc-dev", "password": "nope"});
    assert_eq!(c.call(Method::POST, dvclt::TOKEN_PATH, None, Some(wrong)).await.0, 401);
    assert_eq!(
        c.call(Method::GET, dvclt::LIST_PATH, None, Some(json!({}))).await.0,
        401,
        "no bearer"
    );
    assert_eq!(c.call(Method::GET, dvclt::LIST_PATH, Some("made-up"), Some(json!({}))).await.0, 401);
    let token = c.token().await;
    assert_eq!(
        c.call(Method::GET, dvclt::LIST_PATH, Some(&token), None).await.0,
        400,
        "a GET without a body"
    );
    let detail = format!("{}/1", dvclt::LIST_PATH);
    assert_eq!(c.call(Method::GET, &detail, Some(&token), None).await.0, 400);
    // A body that is not JSON, and JSON sent as another content type.
    for (ct, body) in [("application/json", "not json"), ("text/plain", "{}"), ("application/json", "[]")] {
        let r = c
            .http
            .get(format!("{}{}", c.base, dvclt::LIST_PATH))
            .header("Accept", "application/json")
            .header("Content-Type", ct)
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct} {body}");
    }
    let no_accept = c
        .http
        .get(format!("{}{}", c.base, dvclt::LIST_PATH))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), 406);
    assert_eq!(c.call(Method::GET, dvclt::LIST_PATH, Some(&token), Some(json!({}))).await.0, 200);
    state.expire_tokens();
    assert_eq!(
        c.call(Method::GET, dvclt::LIST_PATH, Some(&token), Some(json!({}))).await.0,
        401,
        "expired"
    );
    let token = c.token().await;
    state.set_faults(DvcltFaults {
        down: true,
        ..DvcltFaults::default()
    });
    assert_eq!(c.call(Method::GET, dvclt::LIST_PATH, Some(&token), Some(json!({}))).await.0, 503);
    let calls = state.calls();
    assert_eq!(
        (calls.refused_401, calls.refused_400, calls.refused_406, calls.refused_503),
        (4, 5, 1, 1),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_detail_ack_and_the_list_shrinks() {
    let (state, _running, c) = start();
    state.add_dossier(dossier("1", "LT-1")).unwrap();
    state
        .add_dossier(NewDossier {
            module: "KT".into(),
            ..dossier("2", "LT-2")
        })
        .unwrap();
    assert!(state.add_dossier(dossier("1", "LT-9")).is_err(), "the same id twice");
    assert!(
        state
            .add_dossier(NewDossier {
                module: "XX".into(),
                ..dossier("3", "LT-3")
            })
            .is_err()
    );
    let token = c.token().await;
    let (_, text) = c.call(Method::GET, dvclt::LIST_PATH, Some(&token), Some(json!({}))).await;
    let list: Value = serde_json::from_str(&text).unwrap();
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0]["id"].clone(), items[0]["maHoSo"].clone()), (json!("1"), json!("LT-1")));
    assert!(items[0]["maDonVi"].is_i64() && items[1]["module"] == "KT", "{list}");

    let (status, text) = c
        .call(Method::GET, &format!("{}/1", dvclt::LIST_PATH), Some(&token), Some(json!({})))
        .await;
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&text).unwrap();
    let inner: Value = serde_json::from_str(detail["data"]["data"].as_str().unwrap()).unwrap();
    assert!(inner["hoTich"].as_str().unwrap().starts_with("<hoTich>"));
    let file = &inner["fileDinhKem"][0];
    assert_eq!(
        (file["tenTepDinhKem"].clone(), file["duLieuTepDinhKem"].clone()),
        (json!("to-khai.pdf"), json!(PDF))
    );
    assert_eq!(file["loaiGiayTo"], "TK");
    assert_eq!(detail["data"]["fileDinhKem"], json!([]), "the files are in the inner dossier");
    let unknown = c
        .call(Method::GET, &format!("{}/99", dvclt::LIST_PATH), Some(&token), Some(json!({})))
        .await;
    assert_eq!(unknown.0, 404);

    for form in [AnswerForm::Json, AnswerForm::JsonString, AnswerForm::Text] {
        state.set_faults(DvcltFaults {
            answer_form: form,
            ..DvcltFaults::default()
        });
        let (_, text) = c
            .call(
                Method::PUT,
                dvclt::ACK_PATH,
                Some(&token),
                Some(json!({"maHoSo": "LT-404", "daNhan": true})),
            )
            .await;
        assert!(!text.to_lowercase().contains("cập nhật thành công"), "{form:?}: {text}");
        let (_, text) = c
            .call(
                Method::PUT,
                dvclt::ACK_PATH,
                Some(&token),
                Some(json!({"maHoSo": "LT-1", "daNhan": true})),
            )
            .await;
        assert!(text.to_lowercase().contains("cập nhật thành công"), "{form:?}: {text}");
    }
    let (_, text) = c.call(Method::GET, dvclt::LIST_PATH, Some(&token), Some(json!({}))).await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["maHoSo"], "LT-2");
    assert_eq!(state.waiting(), vec!["LT-2".to_string()]);
    assert_eq!(state.ack_counts().get("LT-1"), Some(&3), "a repeat is taken and counted");
    assert_eq!(state.acks().len(), 3);
    let acks: Value = reqwest::get(format!("{}/_mock/dvclt/acks", c.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acks["counts"]["LT-1"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_checked_recorded_in_order_and_a_repeat_is_final() {
    let (state, _running, c) = start();
    state.add_dossier(dossier("1", "LT-1")).unwrap();
    let token = c.token().await;
    let status = |trang_thai: Value, at: &str| {
        json!({"maTTHC": "1.001193.000.00.00.H46", "soHoSoLT": "LT-1", "coQuanXuLy": 5, "maHoSo": "QN-000123",
            "trangThai": trang_thai, "thoiGianThucHien": at, "ghiChu": "Đã tiếp nhận", "noiDungXuLy": "Đã tiếp nhận",
            "ketQuaXuLy": "[]", "nguoiXuLy": "Cán bộ", "chucDanh": null, "phongBanXuLy": null})
    };
    let send = |b: Value| c.call(Method::POST, dvclt::STATUS_PATH, Some(&token), Some(b));
    let (code, text) = send(status(json!(3), "01/12/2026 08:30:00")).await;
    assert!(code == 200 && text.contains("thành công"), "{code} {text}");
    let (code, text) = send(status(json!(4), "02/12/2026 09:00:00")).await;
    assert!(code == 200 && text.contains("thành công"), "{code} {text}");
    let (_, text) = send(status(json!(3), "01/12/2026 08:30:00")).await;
    assert!(text.contains("đã tồn tại") && !text.contains("thành công"), "{text}");
    for bad in [
        status(json!("3"), "01/12/2026 08:30:00"),
        status(json!(8), "01/12/2026 08:30:00"),
        status(json!(3), "20261201083000"),
        json!({"soHoSoLT": "LT-1"}),
    ] {
        let (code, text) = send(bad.clone()).await;
        assert!(
            code == 400 && !text.contains("thành công") && !text.contains("đã tồn tại"),
            "{bad}: {text}"
        );
    }
    let mut unknown = status(json!(3), "01/12/2026 08:30:00");
    unknown["soHoSoLT"] = json!("LT-404");
    assert_eq!(send(unknown).await.0, 400);
    let taken: Vec<i64> = state.statuses().iter().map(|s| s.trang_thai).collect();
    assert_eq!(taken, vec![3, 4]);
    assert_eq!(state.calls().status_repeats, 1);
}

/// An ack held by the link-up is recorded only when it is answered: a client gone meanwhile
/// leaves none (what a test kills the gateway mid-ack for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_ack_is_not_recorded() {
    let (state, _running, c) = start();
    state.add_dossier(dossier("1", "LT-1")).unwrap();
    let token = c.token().await;
    state.set_faults(DvcltFaults {
        hold_acks_ms: 800,
        ..DvcltFaults::default()
    });
    let impatient = c
        .http
        .put(format!("{}{}", c.base, dvclt::ACK_PATH))
        .header("Accept", "application/json")
        .bearer_auth(&token)
        .json(&json!({"maHoSo": "LT-1", "daNhan": true}))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(impatient.is_err(), "gave up waiting");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(state.acks().is_empty(), "{:?}", state.acks());
    assert_eq!(state.calls().acks_abandoned, 1);
    assert_eq!(state.waiting(), vec!["LT-1".to_string()]);
    let (_, text) = c
        .call(
            Method::PUT,
            dvclt::ACK_PATH,
            Some(&token),
            Some(json!({"maHoSo": "LT-1", "daNhan": true})),
        )
        .await;
    assert!(text.contains("thành công"), "{text}");
    assert_eq!(state.acks().len(), 1);
}
