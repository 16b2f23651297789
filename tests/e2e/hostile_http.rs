//! What a hostile caller gets from the HTTP edge (issue 10): invented methods and paths do not
//! grow the metric series (defect 4); a body built to fail everywhere gets a short answer
//! (defect 5); an `offset` or `limit` out of range is the caller's 400, not our 503 (defect 7);
//! query-string errors are problem+json, a known path with another method is a 405 with
//! `Allow`, and a type error names its field and never quotes the value (defect 8). Where
//! nothing should change, the Redis data under the gateway's prefix is compared with `DUMP`
//! before and after.

use std::collections::BTreeSet;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::*;
use serde_json::{Value, json};

/// An identity number (CCCD): it must never come back in an answer.
const CCCD: &str = "001203004567";

const PROBLEM: &str = "application/problem+json";

fn problem_type(slug: &str) -> String {
    format!("https://hcc-gateway.dev/problems/{slug}")
}

/// A gateway on Redis with the portal destination configured but no workers, so nothing moves
/// unless a request moves it; with the trust store of `ca_dir` when given.
async fn quiet_gateway(ca_dir: Option<&str>) -> (TestApp, String) {
    let mut overrides = vec![("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9/".to_string())];
    if let Some(dir) = ca_dir {
        overrides.push(("HCC__TRUST__CA_DIR", dir.to_string()));
    }
    let s = settings(QueueBackendKind::Redis, &overrides);
    let prefix = s.queue.key_prefix.clone();
    (spawn_app(s, Workers::Off).await, prefix)
}

/// Some stored state to guard: two accepted dossiers.
async fn seed(app: &TestApp) {
    for ma in ["HOSTILE-1", "HOSTILE-2"] {
        let r = app.post_dossier(&dossier(ma, 1)).await;
        assert_eq!(r.status(), 202, "seeding {ma}");
    }
}

/// Status, content type and body text of an answer.
async fn answer(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.text().await.unwrap_or_default())
}

/// A method token nobody uses: `X` and ten hex digits, upper case.
fn invented_method() -> reqwest::Method {
    let token = format!("X{}", &uuid::Uuid::new_v4().simple().to_string()[..10]).to_ascii_uppercase();
    reqwest::Method::from_bytes(token.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_and_unknown_paths_do_not_grow_the_metric_series() {
    let app = spawn_app(settings(QueueBackendKind::Memory, &[]), Workers::Off).await;
    let mut tokens = Vec::new();
    for _ in 0..50 {
        let m = invented_method();
        let random_path = format!("/{}", uuid::Uuid::new_v4().simple());
        tokens.push(m.as_str().to_string());
        tokens.push(random_path[1..].to_string());
        for path in ["/healthz", "/v1/dossiers", random_path.as_str()] {
            let r = send(app.request(m.clone(), path, Key::None)).await;
            assert!(matches!(r.status().as_u16(), 404 | 405), "{m} {path}: {}", r.status());
        }
        let r = send(app.get(&random_path, Key::None)).await;
        assert_eq!(r.status(), 404);
    }
    let text = app.metrics().await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text");
    let series: Vec<_> = scrape.samples.iter().filter(|s| s.metric == "hcc_http_requests_total").collect();
    let known = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
    ];
    let mut other = 0.0;
    for s in &series {
        let method = s.labels.get("method").unwrap_or_default();
        let route = s.labels.get("route").unwrap_or_default();
        assert!(known.contains(&method), "method label {method:?}");
        assert!(route == "unmatched" || route.starts_with('/'), "route label {route:?}");
        for t in &tokens {
            assert!(!method.contains(t.as_str()) && !route.contains(t.as_str()), "{t} became a label");
        }
        if method == "other" {
            other += match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
        }
    }
    // 200 requests with 50 methods and 100 paths: other/405 and other/404 on two routes and
    // unmatched, GET/404 unmatched. A handful of series, not hundreds.
    assert!(series.len() <= 6, "{} series: {series:#?}", series.len());
    assert_eq!(other, 150.0, "every invented method is counted as other");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_built_to_fail_everywhere_gets_a_short_answer() {
    let (app, prefix) = quiet_gateway(None).await;
    seed(&app).await;
    let before = store_snapshot(&prefix).await;
    // A valid dossier whose file list is all numbers, filled up to the 1 MiB body limit.
    let mut d = dossier("HOSTILE-BIG", 1);
    d["TaiLieuNop"] = json!([]);
    let shell = serde_json::to_string(&d).unwrap();
    let items = (1024 * 1024 - shell.len()) / 2;
    let body = shell.replace("\"TaiLieuNop\":[]", &format!("\"TaiLieuNop\":[{}]", vec!["1"; items].join(",")));
    assert!(body.len() <= 1024 * 1024 && items > 500_000, "{} bytes, {items} items", body.len());
    let r = app.post_raw("/v1/dossiers", Key::Centre, Some("application/json"), body).await;
    let (status, ct, text) = answer(r).await;
    assert_eq!((status, ct.as_str()), (422, PROBLEM));
    assert!(text.len() < 64 * 1024, "the answer is {} bytes", text.len());
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], problem_type("validation"));
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 101);
    assert_eq!(errors[0], json!({"field": "/TaiLieuNop/0", "message": "must be an object"}));
    assert_eq!(errors[99]["field"], "/TaiLieuNop/99");
    assert_eq!(
        errors[100],
        json!({"field": "", "message": format!("and {} more errors", items - 100)})
    );
    assert_eq!(store_snapshot(&prefix).await, before, "a refused body changed the stored data");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_and_limit_out_of_range_are_400_problems_not_503() {
    let (app, prefix) = quiet_gateway(None).await;
    seed(&app).await;
    let before = store_snapshot(&prefix).await;
    for path in ["/v1/audit", "/v1/queues/dvcqg/dead"] {
        for (query, field) in [
            ("offset=9223372036854775807&limit=5", "offset"),
            ("offset=-1", "offset"),
            ("offset=18446744073709551615", "offset"),
            ("offset=99999999999999999999", "offset"),
            ("offset=1000000001", "offset"),
            ("offset=1e3", "offset"),
            ("limit=abc", "limit"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=999999999999", "limit"),
            ("limit=5&limit=6", "limit"),
        ] {
            let r = send(app.get(&format!("{path}?{query}"), Key::Admin)).await;
            let (status, ct, text) = answer(r).await;
            assert_eq!((status, ct.as_str()), (400, PROBLEM), "{path}?{query}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["type"], problem_type("invalid-parameters"), "{path}?{query}");
            assert_eq!(v["errors"][0]["field"], format!("{field} (query)"), "{path}?{query}: {v}");
            let value = query.split(['=', '&']).nth(1).unwrap();
            // Short values (`0`, `-1`) occur in any answer; long ones must not come back.
            assert!(value.len() < 5 || !text.contains(value), "{path}?{query} quoted the value: {text}");
        }
        for query in ["offset=1000000000&limit=1000", "limit=1", "offset=0", ""] {
            let r = send(app.get(&format!("{path}?{query}"), Key::Admin)).await;
            assert_eq!(r.status(), 200, "{path}?{query}");
        }
        // The order of checks is kept: no key, no answer about the parameters.
        let r = send(app.get(&format!("{path}?limit=abc"), Key::None)).await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        store_snapshot(&prefix).await,
        before,
        "a refused list request changed the stored data"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_errors_are_problem_json() {
    let (app, prefix) = quiet_gateway(None).await;
    seed(&app).await;
    let before = store_snapshot(&prefix).await;
    let r = app
        .post_raw("/v1/signatures?format=cms&format=xmldsig", Key::Centre, None, "content")
        .await;
    let (status, ct, text) = answer(r).await;
    assert_eq!((status, ct.as_str()), (400, PROBLEM), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], problem_type("invalid-parameters"));
    assert_eq!(v["errors"][0]["field"], "format (query)");
    assert_eq!(store_snapshot(&prefix).await, before);
    app.stop().await;
}

/// `{param}` segments filled in with a plausible value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "dvcqg" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a documented path template matches a concrete path, `{param}` being one segment.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let (app, prefix) = quiet_gateway(None).await;
    seed(&app).await;
    let doc = app.openapi().await;
    let before = store_snapshot(&prefix).await;
    let candidates = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"];
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20);
    for path in paths.keys() {
        let concrete_path = concrete(path);
        // What this URL serves: the methods of the most concrete documented template it
        // matches, as OpenAPI matches them (`/v1/queues/q/dead/replay` is the replay
        // template, not `/v1/queues/q/dead/{id}`, so DELETE on it is a 405).
        let params = |t: &str| t.matches('{').count();
        let fewest = paths
            .keys()
            .filter(|t| matches(t, &concrete_path))
            .map(|t| params(t))
            .min()
            .unwrap();
        let documented: BTreeSet<String> = paths
            .iter()
            .filter(|(t, _)| matches(t, &concrete_path) && params(t) == fewest)
            .flat_map(|(_, ops)| ops.as_object().unwrap().keys().map(|m| m.to_ascii_uppercase()))
            .collect();
        for m in candidates {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let r = send(app.request(method, &concrete_path, Key::None)).await;
            let allow = r.headers().get("allow").and_then(|v| v.to_str().ok()).map(str::to_string);
            let (status, ct, text) = answer(r).await;
            if documented.contains(m) {
                // Routed: whatever the handler says (mostly 401 without a key), never the
                // fallback's 404 or a 405.
                assert_ne!(status, 405, "{m} {path}");
                assert!(!text.contains("no such resource"), "{m} {path} is not routed: {text}");
                continue;
            }
            assert_eq!(status, 405, "{m} {path}: {text}");
            let allowed: BTreeSet<String> = allow
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(allowed, documented, "{m} {path}");
            if m != "HEAD" {
                assert_eq!(ct, PROBLEM, "{m} {path}");
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["type"], problem_type("method-not-allowed"));
                assert_eq!(v["status"], 405);
            }
        }
    }
    // An unknown path is still a 404 problem, whatever the method.
    for m in ["GET", "POST", "BREW"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = send(app.request(method, "/v1/nothing/here", Key::None)).await;
        let (status, ct, text) = answer(r).await;
        assert_eq!((status, ct.as_str()), (404, PROBLEM), "{m}");
        assert!(text.contains(&problem_type("not-found")));
    }
    assert_eq!(store_snapshot(&prefix).await, before, "a refused method changed the stored data");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_errors_name_the_field_and_never_quote_the_value() {
    let dir = std::env::temp_dir().join(format!("hcc-hostile-{}", uuid::Uuid::new_v4().simple()));
    hcc_signing::devpki::DevPki::generate().unwrap().write(&dir).unwrap();
    let (app, prefix) = quiet_gateway(Some(&dir.join("trust").to_string_lossy())).await;
    seed(&app).await;
    let before = store_snapshot(&prefix).await;
    let number: i64 = CCCD.parse().unwrap();
    let mut d = dossier("HOSTILE-3", 1);
    d["MaHoSo"] = json!({"CCCD": CCCD});
    d["TrangThaiHoSo"] = json!(CCCD);
    d["NgayTiepNhan"] = json!(number);
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        ("/v1/dossiers", CENTRE_KEY, d, vec!["/MaHoSo", "/TrangThaiHoSo", "/NgayTiepNhan"]),
        (
            "/v1/dossiers/HOSTILE-1/progress",
            CENTRE_KEY,
            json!({"TrangThai": {"CCCD": CCCD}, "ThoiDiemXuLy": number}),
            vec!["/TrangThai", "/ThoiDiemXuLy"],
        ),
        (
            "/v1/signatures/verify",
            CENTRE_KEY,
            json!({"content_base64": number, "signature_base64": {"CCCD": CCCD}}),
            vec!["/content_base64", "/signature_base64"],
        ),
        ("/v1/queues/dvcqg/dead/replay", ADMIN_KEY, json!({"kind": number}), vec!["/kind"]),
    ];
    for (path, key, body, fields) in cases {
        let r = app.post_json(path, Key::Raw(key), &body).await;
        let (status, ct, text) = answer(r).await;
        assert_eq!((status, ct.as_str()), (422, PROBLEM), "{path}: {text}");
        assert!(!text.contains(&number.to_string()), "{path} quoted the value: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], problem_type("validation"));
        let named: Vec<&str> = v["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        for f in fields {
            assert!(named.contains(&f), "{path}: {f} not named in {named:?}");
        }
    }
    // Broken JSON: a position, not the text around it.
    for path in ["/v1/dossiers", "/v1/signatures/verify", "/v1/queues/dvcqg/dead/replay"] {
        let key = if path.contains("queues") { ADMIN_KEY } else { CENTRE_KEY };
        let body = format!("{{\"MaHoSo\": \"{CCCD}\", \"x\": {CCCD}x");
        let r = app.post_raw(path, Key::Raw(key), Some("application/json"), body).await;
        let (status, ct, text) = answer(r).await;
        assert_eq!((status, ct.as_str()), (400, PROBLEM), "{path}: {text}");
        assert!(!text.contains(&number.to_string()), "{path} quoted the body: {text}");
    }
    assert_eq!(store_snapshot(&prefix).await, before, "a refused body changed the stored data");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
