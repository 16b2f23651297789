//! The destination registry, shown with a destination the gateway has never heard of: `echo`,
//! defined in this file the way a real one is defined in `adapters/` (its settings section,
//! its `build()` with its URL check, its ingest route with its OpenAPI operation, its outcome
//! classification), with its own mock here (as one would sit in `mocks/`), and added with one
//! `.with(...)` line. It is served, documented, delivered through the real engine on Redis,
//! and its section is checked, all without a line of the core knowing it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::registry::{self, BuildContext, BuiltDestination, DestinationSpec, Ingest, IngestError, IngestRequest, IngestRoute};
use hcc_adapters::{Adapter, BoxFuture, Delivery, FieldError, Outcome};
use hcc_config::{QueueBackendKind, Role, Secret};
use hcc_gateway::app::{Application, BuildError, Workers};
use hcc_tests::*;
use serde_json::{Value, json};

/// The `echo` destination: notes for a topic, POSTed one by one to the echo service.
mod echo {
    use super::*;

    pub const DESTINATION: &str = "echo";
    pub const KIND: &str = "echo.note";

    /// The `[echo]` section. An empty `url` leaves the destination off.
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct EchoSettings {
        pub url: String,
        /// Sent as `x-echo-token`.
        pub token: Secret,
    }

    pub fn spec() -> DestinationSpec {
        DestinationSpec {
            name: DESTINATION,
            build,
            ingest: &ROUTES,
            event_sink: false,
            copies: &[],
        }
    }

    fn build(ctx: &BuildContext<'_>) -> BuiltDestination {
        let s: EchoSettings = ctx.settings()?;
        if s.url.is_empty() {
            return Ok(None);
        }
        let mut problems = Vec::new();
        ctx.check_http_url(&mut problems, "url", &s.url);
        if s.token.is_empty() {
            problems.push(ctx.problem("token", "is required: the echo service refuses calls without it"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let client = hcc_adapters::http::client(ctx.timeout()).map_err(|e| vec![ctx.problem("url", e.to_string())])?;
        Ok(Some(Arc::new(EchoAdapter {
            client,
            url: s.url.trim_end_matches('/').to_string(),
            token: s.token,
        })))
    }

    static ROUTES: [IngestRoute; 1] = [IngestRoute {
        path: "/v1/echoes/{topic}",
        openapi_path: "/v1/echoes/{topic}",
        kind: KIND,
        roles: &[Role::Centre],
        parse,
        operation,
    }];

    fn field(field: &str, message: &str) -> IngestError {
        IngestError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// A topic is 1 to 40 of `[a-z0-9-]`; the body is `{"text": "..."}`, 1 to 200 characters.
    fn parse(req: &IngestRequest<'_>) -> Result<Ingest, IngestError> {
        let topic = req.param("topic")?;
        if topic.is_empty() || topic.len() > 40 || !topic.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(field("topic (path)", "must be 1 to 40 of a-z, 0-9 and -"));
        }
        let Some(obj) = req.body()?.as_object() else {
            return Err(field("", "the body must be a JSON object"));
        };
        match obj.get("text").and_then(Value::as_str) {
            Some(t) if (1..=200).contains(&t.chars().count()) => {}
            _ => return Err(field("/text", "must be a string of 1 to 200 characters")),
        }
        Ingest::json(topic, obj)
    }

    fn operation() -> Value {
        registry::ingest_operation(
            KIND,
            "Queue a note for the echo service",
            "Role centre. Ordering key: the topic.",
            vec![json!({"name": "topic", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"}})],
            json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 200}}}),
        )
    }

    pub struct EchoAdapter {
        client: reqwest::Client,
        url: String,
        token: Secret,
    }

    impl Adapter for EchoAdapter {
        fn destination(&self) -> &str {
            DESTINATION
        }

        /// 2xx delivered; 422 the service refusing the note (rejected); anything else, or no
        /// answer, retried, as the shared classification says.
        fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let sent = self
                    .client
                    .post(format!("{}/notes/{}", self.url, d.ordering_key))
                    .header("x-echo-token", self.token.expose())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(d.payload.to_vec())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 422 => Outcome::reject("the echo service refused the note"),
                    Ok(r) => hcc_adapters::http::classify_response(r).await,
                    Err(e) => hcc_adapters::http::classify_error(&e),
                }
            })
        }
    }
}

/// The echo service as its (imaginary) documentation describes it, written apart from the
/// adapter: `POST /notes/{topic}` with `x-echo-token` and `{"text": ...}`; 401 for a wrong
/// token, 422 for the text "refuse", 200 otherwise. It remembers what it took.
mod mock_echo {
    use super::*;

    #[derive(Clone, Default)]
    pub struct EchoState {
        pub token: String,
        pub notes: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl EchoState {
        pub fn notes(&self) -> Vec<(String, String)> {
            self.notes.lock().map(|n| n.clone()).unwrap_or_default()
        }
    }

    async fn note(req: HttpRequest, state: web::Data<EchoState>, topic: web::Path<String>, body: web::Bytes) -> HttpResponse {
        if req.headers().get("x-echo-token").and_then(|v| v.to_str().ok()) != Some(state.token.as_str()) {
            return HttpResponse::Unauthorized().finish();
        }
        let Some(text) = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_string))
        else {
            return HttpResponse::BadRequest().finish();
        };
        if text == "refuse" {
            return HttpResponse::UnprocessableEntity().finish();
        }
        if let Ok(mut n) = state.notes.lock() {
            n.push((topic.into_inner(), text));
        }
        HttpResponse::Ok().json(json!({"ok": true}))
    }

    pub fn spawn(state: EchoState) -> hcc_mocks::Running {
        let data = web::Data::new(state);
        hcc_mocks::spawn_server("127.0.0.1:0", move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone()).route("/notes/{topic}", web::post().to(note));
        })
        .unwrap_or_else(|e| panic!("mock echo: {e}"))
    }
}

const TOKEN: &str = "echo-test-token";

fn echo_settings(url: &str) -> hcc_config::Settings {
    settings(
        QueueBackendKind::Redis,
        &[("HCC__ECHO__URL", url.to_string()), ("HCC__ECHO__TOKEN", TOKEN.to_string())],
    )
}

async fn with_echo(settings: hcc_config::Settings) -> TestApp {
    match Application::build_with_registry(settings, hcc_adapters::standard().with(echo::spec()), Workers::On).await {
        Ok(app) => start(app),
        Err(e) => panic!("gateway failed to build: {e}"),
    }
}

async fn post_note(app: &TestApp, topic: &str, body: &Value) -> reqwest::Response {
    app.post_json(&format!("/v1/echoes/{topic}"), Key::Centre, body).await
}

async fn status_of(app: &TestApp, location: &str) -> String {
    app.get_json(location, Key::Centre).await["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_added_with_one_registry_line_is_served_documented_and_delivered() {
    let state = mock_echo::EchoState {
        token: TOKEN.into(),
        ..Default::default()
    };
    let mock = mock_echo::spawn(state.clone());
    let app = with_echo(echo_settings(&mock.url())).await;

    // Delivered in order through the engine on Redis.
    let mut locations = Vec::new();
    for (topic, text) in [("news", "first"), ("news", "second"), ("spam", "refuse"), ("news", "third")] {
        let r = post_note(&app, topic, &json!({"text": text})).await;
        assert_eq!(r.status(), 202, "{text}");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["ordering_key"].as_str(), v["status"].as_str()),
            (Some(echo::KIND), Some(topic), Some("queued"))
        );
        locations.push(location);
    }
    let expected = vec![
        ("news".to_string(), "first".to_string()),
        ("news".into(), "second".into()),
        ("news".into(), "third".into()),
    ];
    eventually("the echo service has the notes", Duration::from_secs(15), || {
        let state = state.clone();
        let expected = expected.clone();
        async move { (state.notes() == expected).then_some(()) }
    })
    .await;
    assert_eq!(status_of(&app, &locations[0]).await, "delivered");
    // The refusal is the destination's own classification: a dead letter, not a retry.
    let dead = eventually("the refused note is a dead letter", Duration::from_secs(15), || {
        let (app, location) = (&app, &locations[2]);
        async move { (status_of(app, location).await == "dead").then_some(()) }
    });
    dead.await;

    // The core's shared checks and the route's own parsing.
    let r = post_note(&app, "news", &json!({"text": 5})).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "/text");
    let r = post_note(&app, "Not_A_Topic", &json!({"text": "x"})).await;
    assert_eq!(r.status(), 422);
    let r = app.post_json("/v1/echoes/news", Key::Operator, &json!({"text": "x"})).await;
    assert_eq!(r.status(), 403, "the route's roles apply");
    let r = app.post_json("/v1/echoes/news", Key::None, &json!({"text": "x"})).await;
    assert_eq!(r.status(), 401);
    // Idempotency-Key works as on every ingest route.
    let keyed = |text: &'static str| {
        send(
            app.post("/v1/echoes/keyed", Key::Centre)
                .header("idempotency-key", "k-1")
                .json(&json!({"text": text})),
        )
    };
    let first = json(keyed("once").await).await;
    let again = keyed("once").await;
    assert_eq!(
        again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(keyed("other").await.status(), 409);

    // Documented, and a 405 with Allow for another method.
    let doc = app.openapi().await;
    assert!(doc["paths"]["/v1/echoes/{topic}"]["post"].is_object(), "{}", doc["paths"]);
    assert!(doc["paths"]["/v1/dossiers"]["post"].is_object());
    let r = send(app.get("/v1/echoes/news", Key::None)).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    app.stop().await;
    mock.stop().await;
}

#[tokio::test]
async fn a_section_nobody_claims_and_a_bad_one_are_refused_by_key() {
    // Without the echo destination registered, its section belongs to nobody.
    let err = Application::build(echo_settings("http://127.0.0.1:9"), Workers::Off).await.err();
    match err {
        Some(BuildError::Settings(p)) => assert_eq!(p.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), vec!["echo"]),
        other => panic!("expected the unclaimed section, got {:?}", other.map(|e| e.to_string())),
    }
    // Registered, its own checks name its keys.
    let bad = settings(QueueBackendKind::Memory, &[("HCC__ECHO__URL", "ftp://echo".to_string())]);
    let err = Application::build_with_registry(bad, hcc_adapters::standard().with(echo::spec()), Workers::Off)
        .await
        .err();
    match err {
        Some(BuildError::Settings(p)) => {
            let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
            assert_eq!(keys, vec!["echo.url", "echo.token"]);
        }
        other => panic!("expected the echo section's problems, got {:?}", other.map(|e| e.to_string())),
    }
    // Not configured: the route is still there and says so.
    let off = settings(QueueBackendKind::Memory, &[]);
    let app = match Application::build_with_registry(off, hcc_adapters::standard().with(echo::spec()), Workers::Off).await {
        Ok(app) => start(app),
        Err(e) => panic!("{e}"),
    };
    let r = post_note(&app, "news", &json!({"text": "x"})).await;
    assert_eq!(r.status(), 503);
    app.stop().await;
}

/// A payment provider the gateway has never heard of, defined here as one is in
/// `adapters/src/payments/` (its section, its build with its checks, its callback route with
/// its OpenAPI operation, its notices) and added with one `.with_provider(...)` line: payments
/// are created with it, its callback is served, authenticated by it and applied by the
/// gateway's one set of matching rules, and it is documented, without the core knowing it.
mod coupon {
    use hcc_adapters::BoxFuture;
    use hcc_adapters::payments::{
        AmountRule, Applied, BuildContext, CallbackHead, CallbackMethod, CallbackProblem, CallbackRoute, CreateError, Handoff, Notice,
        Parsed, PaymentCreator, PaymentOrder, PaymentProvider, ProviderKind, Reconciler, Refused, Reply, Settlement,
    };
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::Duration;

    pub const ID: &str = "coupon";

    /// The `[coupon]` section: an empty `secret` leaves it off.
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct CouponSettings {
        secret: String,
    }

    pub const KIND: ProviderKind = ProviderKind {
        id: ID,
        routes: &[CallbackRoute {
            method: CallbackMethod::Post,
            path: "/v1/callbacks/coupon",
            operation: r#"{"summary": "A coupon desk's redemption", "tags": ["callbacks"], "responses": {"200": {"description": "taken or not, in the desk's terms"}}}"#,
            body_limit: Some(1024),
        }],
        creates: Some(&[]),
        build,
    };

    fn build(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<hcc_config::Problem>> {
        let s: CouponSettings = hcc_adapters::payments::parse_section(ctx.section)?;
        if s.secret.is_empty() {
            return Ok(None);
        }
        if s.secret.len() < 8 {
            return Err(vec![hcc_adapters::payments::problem(
                "coupon.secret",
                "must be at least 8 characters",
            )]);
        }
        Ok(Some(Arc::new(Coupon { secret: s.secret })))
    }

    struct Coupon {
        secret: String,
    }

    impl PaymentProvider for Coupon {
        fn id(&self) -> &'static str {
            ID
        }
        fn creator(&self) -> Option<&dyn PaymentCreator> {
            Some(self)
        }
        fn reconciler(&self) -> Option<&dyn Reconciler> {
            None
        }
        fn parse<'a>(&'a self, _head: CallbackHead<'a>, body: Vec<u8>) -> BoxFuture<'a, Result<Parsed, Refused>> {
            Box::pin(async move {
                let refused = |why: &str| Refused::new(Reply::Problem(CallbackProblem::BadSignature(why.into())), why);
                let v: Value = serde_json::from_slice(&body).map_err(|_| refused("not JSON"))?;
                if v["secret"].as_str() != Some(self.secret.as_str()) {
                    return Err(refused("wrong secret"));
                }
                let reference = v["MaThamChieu"].as_str().unwrap_or_default().to_string();
                let notice = Notice::Settled(Settlement {
                    reference,
                    source: ID.into(),
                    transaction: v["redemption"].as_str().unwrap_or_default().to_string(),
                    amount: v["SoTien"].as_u64().unwrap_or(0),
                    paid: true,
                    time: String::new(),
                    amounts: AmountRule::Ledger,
                });
                Ok(Parsed {
                    notices: vec![notice],
                    reply: Box::new(|applied: Result<&[Applied], _>| Reply::Json(json!({"taken": matches!(applied, Ok([Applied::Paid]))}))),
                })
            })
        }
    }

    impl PaymentCreator for Coupon {
        fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>> {
            Box::pin(async move { Ok(Handoff::Url(format!("https://coupon.example/redeem/{}", order.reference))) })
        }
        fn lifetime(&self) -> Duration {
            Duration::from_secs(600)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_provider_added_with_one_registry_line_creates_is_confirmed_and_documented() {
    let registry = hcc_adapters::standard().with_provider(coupon::KIND);
    let settings = settings(
        QueueBackendKind::Redis,
        &[("HCC__COUPON__SECRET", "coupon-test-secret".to_string())],
    );
    let app = match Application::build_with_registry(settings, registry.clone(), Workers::On).await {
        Ok(app) => start(app),
        Err(e) => panic!("gateway failed to build: {e}"),
    };
    let created = app.new_payment(coupon::ID, 70_000).await;
    let reference = created["MaThamChieu"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        created["payment_url"],
        format!("https://coupon.example/redeem/{reference}"),
        "{created}"
    );
    assert!(created["expires_at"].is_string(), "{created}");
    // Its callback: refused without its secret, taken with it, once.
    let redeem = |secret: &str| json!({"MaThamChieu": reference, "SoTien": 70_000, "redemption": "R-1", "secret": secret});
    let refused = app.post_json("/v1/callbacks/coupon", Key::None, &redeem("guess")).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(app.payment(&reference).await["status"], "pending");
    let taken: Value = app
        .post_json("/v1/callbacks/coupon", Key::None, &redeem("coupon-test-secret"))
        .await
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(taken, json!({"taken": true}));
    let again: Value = app
        .post_json("/v1/callbacks/coupon", Key::None, &redeem("coupon-test-secret"))
        .await
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(again, json!({"taken": false}), "the same redemption again changes nothing");
    let p = app.payment(&reference).await;
    assert_eq!((p["status"].as_str(), p["confirmed_by"].as_str()), (Some("paid"), Some("coupon")));
    // Documented: its route, and its id among the providers a payment may name.
    let doc = app.get_json("/openapi.json", Key::None).await;
    assert_eq!(
        doc["paths"]["/v1/callbacks/coupon"]["post"]["summary"],
        "A coupon desk's redemption"
    );
    let creating = doc["components"]["schemas"]["PaymentRequest"]["properties"]["provider"]["enum"].to_string();
    assert!(creating.contains("coupon") && creating.contains("vietqr"), "{creating}");
    app.stop().await;

    // Its section is checked with everyone else's, by key.
    let bad = settings_with_coupon("short");
    match Application::build_with_registry(bad, registry.clone(), Workers::Off).await {
        Err(BuildError::Settings(p)) => assert!(p.iter().any(|p| p.key == "coupon.secret"), "{p:?}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a short secret was taken"),
    }
    // Without the line, its section is nobody's and is refused as such.
    match Application::build_with_registry(settings_with_coupon("coupon-test-secret"), hcc_adapters::standard(), Workers::Off).await {
        Err(BuildError::Settings(p)) => assert!(p.iter().any(|p| p.key == "coupon"), "{p:?}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an unclaimed section was taken"),
    }
}

fn settings_with_coupon(secret: &str) -> hcc_config::Settings {
    settings(QueueBackendKind::Redis, &[("HCC__COUPON__SECRET", secret.to_string())])
}
