//! Traces over OTLP/HTTP from real `hcc-gateway serve` processes to a receiver that decodes the
//! protobuf with the OpenTelemetry project's own Python classes (`tests/support/otlp_receiver.py`).
//!
//! - A caller's trace is continued by the request that accepts a dossier, kept with the queued
//!   message, and continued by its delivery in another process started after the first one
//!   stopped; the portal calls are children of the delivery, and the portal receives their
//!   `traceparent`. No span carries an identity number, even one the caller put in a header.
//! - A collector that accepts connections and never answers costs dropped spans, counted,
//!   and no delivery; `propagate_trace = false` keeps `traceparent` from the portal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use hcc_tests::*;
use serde_json::Value;

/// A citizen identity number (CCCD, 12 digits) that the caller sends as its request id: the
/// request span records the id, so only masking keeps it out of the trace.
const IDENTITY: &str = "001203004567";

/// The Python receiver, its spans as they arrive.
struct Receiver {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = Command::new("python3")
            .arg(workspace_dir().join("tests/support/otlp_receiver.py"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the OTLP receiver: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first: Value = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_else(|| panic!("the OTLP receiver did not start (is opentelemetry-proto installed?)"));
        let port = first["listening"].as_u64().expect("the receiver's port") as u16;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Receiver { child, port, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hcc-gateway serve` with traces sent to `collector`.
fn traced(port: u16, prefix: &str, portal: &str, collector: &str) -> Command {
    let mut command = serve_command(port, prefix);
    command
        .env("HCC__DVCQG__BASE_URL", portal)
        .env("HCC__TELEMETRY__OTLP_ENDPOINT", collector)
        .env("HCC__TELEMETRY__EXPORT_TIMEOUT_MS", "1000")
        .env("HCC__DELIVERY__BACKOFF_BASE_MS", "20")
        .env("HCC__DELIVERY__BACKOFF_MAX_MS", "300")
        .stderr(Stdio::null());
    command
}

/// A gateway process, killed when dropped, so that a failing test leaves none behind.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut command: Command) -> Serving {
    Serving(command.spawn().unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}")))
}

/// SIGTERM, then waits (bounded) for the exit: a graceful stop, which sends the spans held.
async fn terminate(serving: &mut Serving) {
    let child = &mut serving.0;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    eventually("the gateway to exit after SIGTERM", Duration::from_secs(20), || {
        let exited = child.try_wait().unwrap().is_some();
        async move { exited.then_some(()) }
    })
    .await;
}

/// `bytes` random bytes in hex (at most 16).
fn random_hex(bytes: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..bytes * 2].to_string()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_continues_through_the_queue_across_a_restart_to_the_portal() {
    let receiver = Receiver::start();
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let (port, prefix) = (free_port(), unique_prefix());
    let gateway = Gateway::at(&format!("http://127.0.0.1:{port}"));

    // The first process only takes requests: the dossier waits in the queue.
    let mut accepting = traced(port, &prefix, &portal.url(), &receiver.endpoint());
    accepting.arg("--no-workers");
    let mut accepting = spawn(accepting);
    gateway.wait_ready().await;
    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    let ma = format!("TRACE-{}", random_hex(4));
    let r = send(
        gateway
            .post("/v1/dossiers", Key::Centre)
            .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
            .header("X-Request-Id", IDENTITY)
            .json(&dossier(&ma, 2)),
    )
    .await;
    assert_eq!(r.status(), 202, "accepted");
    terminate(&mut accepting).await;
    assert!(state.arrivals_of(&ma).is_empty(), "nothing was delivered before the restart");

    // The second process delivers it.
    let mut delivering = spawn(traced(port, &prefix, &portal.url(), &receiver.endpoint()));
    eventually("the dossier at the portal", Duration::from_secs(30), || {
        let arrived = !state.arrivals_of(&ma).is_empty();
        async move { arrived.then_some(()) }
    })
    .await;
    let in_trace = |spans: &[Value]| -> Vec<Value> { spans.iter().filter(|s| s["trace_id"] == trace_id.as_str()).cloned().collect() };
    let spans = eventually("the delivery's spans at the collector", Duration::from_secs(20), || {
        let spans = in_trace(&receiver.spans());
        let calls = spans
            .iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("dvcqg ")))
            .count();
        async move { (calls >= 1).then_some(spans) }
    })
    .await;
    terminate(&mut delivering).await;

    // The acceptance: a server span, child of the caller's span.
    let accepted: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == caller_span.as_str()).collect();
    assert_eq!(accepted.len(), 1, "one span continues the caller's: {spans:#?}");
    let accepted = accepted[0];
    assert_eq!(accepted["kind"], 2, "a server span");
    // The delivery: a consumer span in the other process, child of the acceptance.
    let deliveries: Vec<&Value> = spans.iter().filter(|s| s["name"] == "deliver dvcqg").collect();
    assert!(!deliveries.is_empty(), "a delivery span: {spans:#?}");
    for d in &deliveries {
        assert_eq!(d["parent_span_id"], accepted["span_id"], "the delivery is the acceptance's child");
        assert_eq!(d["kind"], 5, "a consumer span");
        assert_eq!(attr(d, "message_id").as_str().map(str::len), Some(36));
        assert_ne!(
            d["resource"]["service.instance.id"], accepted["resource"]["service.instance.id"],
            "delivered by the second process"
        );
    }
    assert_eq!(deliveries.last().map(|d| attr(d, "outcome").clone()), Some("delivered".into()));
    // The portal calls: client spans, children of a delivery, whose ids the portal received.
    let delivery_ids: Vec<&Value> = deliveries.iter().map(|d| &d["span_id"]).collect();
    let calls: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("dvcqg ")))
        .collect();
    for c in &calls {
        assert!(
            delivery_ids.contains(&&c["parent_span_id"]),
            "a portal call outside the delivery: {c:#?}"
        );
        assert_eq!(c["kind"], 3, "a client span");
        assert_eq!(attr(c, "http.response.status_code"), 200);
    }
    let heard = state.traceparents_naming(&ma);
    assert!(!heard.is_empty(), "the portal heard the dossier");
    for tp in &heard {
        let tp = tp
            .as_deref()
            .unwrap_or_else(|| panic!("a portal call without traceparent: {heard:?}"));
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace_id.as_str(), "01"), "{tp}");
        assert!(calls.iter().any(|c| c["span_id"] == parts[2]), "{tp} names no portal call span");
    }
    for s in [accepted].into_iter().chain(deliveries.iter().copied()) {
        assert_eq!(s["resource"]["service.name"], "hcc-gateway");
        assert_eq!(s["resource"]["service.version"], env!("CARGO_PKG_VERSION"));
    }
    // No identity number anywhere: the request id the caller sent is recorded, masked.
    assert!(
        attr(accepted, "request_id")
            .as_str()
            .is_some_and(|id| id.ends_with("67") && id.contains('*'))
    );
    let everything = serde_json::to_string(&receiver.spans()).unwrap();
    assert!(!everything.contains(IDENTITY), "an identity number in a span");
    portal.stop().await;
}

/// Accepts connections and never answers, for up to `limit`: a collector that hangs.
fn silent_collector(limit: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut held = Vec::new();
        while started.elapsed() < limit && held.len() < 1000 {
            match listener.accept() {
                Ok((socket, _)) => held.push(socket),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_spans_and_no_delivery() {
    let collector = silent_collector(Duration::from_secs(120));
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let mut command = traced(port, &unique_prefix(), &portal.url(), &format!("http://127.0.0.1:{collector}"));
    // The portal wants no trace ids.
    command.env("HCC__DESTINATIONS__DVCQG__PROPAGATE_TRACE", "false");
    let mut child = spawn(command);
    let gateway = Gateway::at(&format!("http://127.0.0.1:{port}"));
    gateway.wait_ready().await;
    let codes: Vec<String> = (0..20).map(|i| format!("TRACE-DOWN-{}-{i:02}", random_hex(3))).collect();
    for ma in &codes {
        let r = send(
            gateway
                .post("/v1/dossiers", Key::Centre)
                .header("traceparent", format!("00-{}-{}-01", random_hex(16), random_hex(8)))
                .json(&dossier(ma, 2)),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    eventually("every dossier at the portal", Duration::from_secs(60), || {
        let all = codes.iter().all(|ma| !state.arrivals_of(ma).is_empty());
        async move { all.then_some(()) }
    })
    .await;
    for ma in &codes {
        assert!(
            state.traceparents_naming(ma).iter().all(Option::is_none),
            "propagate_trace = false, yet the portal got a traceparent for {ma}"
        );
    }
    let metrics = eventually("spans counted as dropped", Duration::from_secs(20), || {
        let gateway = &gateway;
        async move {
            let m = gateway.metrics().await;
            (metric(&m, "hcc_trace_spans_dropped_total{reason=\"export_failed\"}").unwrap_or(0.0) > 0.0).then_some(m)
        }
    })
    .await;
    assert_eq!(
        metric(&metrics, "hcc_trace_spans_exported_total").unwrap_or(0.0) as u64,
        0,
        "the silent collector took nothing"
    );
    terminate(&mut child).await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_hears_of_a_refused_dossier_in_the_trace_that_sent_it() {
    let receiver = Receiver::start();
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let secret = hcc_signing::webhook::WebhookSecret::parse(CENTRE_SECRET).unwrap();
    let (centre, centre_state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret).unwrap();
    let port = free_port();
    let mut command = traced(port, &unique_prefix(), &portal.url(), &receiver.endpoint());
    command.env("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", centre.url()));
    let mut child = spawn(command);
    let gateway = Gateway::at(&format!("http://127.0.0.1:{port}"));
    gateway.wait_ready().await;
    let trace_id = random_hex(16);
    // A procedure the portal does not know: the portal refuses the dossier.
    let mut refused = dossier(&format!("TRACE-REF-{}", random_hex(3)), 1);
    refused["MaTTHC"] = "1.999999.000.00.00.H46".into();
    let r = send(
        gateway
            .post("/v1/dossiers", Key::Centre)
            .header("traceparent", format!("00-{trace_id}-{}-01", random_hex(8)))
            .json(&refused),
    )
    .await;
    assert_eq!(r.status(), 202);
    eventually("dossier.rejected at the centre", Duration::from_secs(30), || {
        let heard = centre_state.received().iter().any(|w| w.body["type"] == "dossier.rejected");
        async move { heard.then_some(()) }
    })
    .await;
    let spans = eventually("the webhook's spans at the collector", Duration::from_secs(20), || {
        let spans: Vec<Value> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .collect();
        let call = spans.iter().any(|s| s["name"] == "centre dossier.rejected");
        async move { call.then_some(spans) }
    })
    .await;
    terminate(&mut child).await;
    let named = |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let portal_attempts = named("deliver dvcqg");
    assert_eq!(portal_attempts.len(), 1, "{spans:#?}");
    assert_eq!(attr(portal_attempts[0], "outcome"), "dead");
    let webhook = named("deliver centre");
    assert_eq!(webhook.len(), 1, "{spans:#?}");
    assert_eq!(
        webhook[0]["parent_span_id"], portal_attempts[0]["span_id"],
        "the event follows the attempt that settled"
    );
    let call = named("centre dossier.rejected");
    assert_eq!(call[0]["parent_span_id"], webhook[0]["span_id"]);
    portal.stop().await;
    centre.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_traced_from_its_creation_and_its_confirmation_to_the_centre() {
    let receiver = Receiver::start();
    let env = payment_env("traces");
    let port = free_port();
    let mut command = traced(port, &env.prefix, "", &receiver.endpoint());
    for (k, v) in env.overrides(&env.prefix) {
        command.env(k, v);
    }
    command.env("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", env.centre.url()));
    let mut child = spawn(command);
    let gateway = Gateway::at(&format!("http://127.0.0.1:{port}"));
    gateway.wait_ready().await;
    // The creation, in the caller's trace, calls PayGov: a client span under the request.
    let trace_id = random_hex(16);
    let r = send(
        gateway
            .post("/v1/payments", Key::Centre)
            .header("traceparent", format!("00-{trace_id}-{}-01", random_hex(8)))
            .json(&payment_body("paygov", 10_000)),
    )
    .await;
    assert_eq!(r.status(), 201);
    let reference = json(r).await["MaThamChieu"].as_str().unwrap_or_default().to_string();
    // PayGov's callback starts a trace of its own, which the centre's webhook joins.
    env.paygov_pay(serde_json::json!({"MaThamChieu": reference, "callback_urls": [gateway.url("/v1/callbacks/paygov")]}))
        .await;
    eventually("payment.confirmed at the centre", Duration::from_secs(30), || {
        let heard = env.centre_state.received().iter().any(|w| w.body["type"] == "payment.confirmed");
        async move { heard.then_some(()) }
    })
    .await;
    let spans = eventually("the webhook's spans at the collector", Duration::from_secs(20), || {
        let spans = receiver.spans();
        let call = spans.iter().any(|s| s["name"] == "centre payment.confirmed");
        async move { call.then_some(spans) }
    })
    .await;
    terminate(&mut child).await;
    let by_id = |id: &Value| spans.iter().find(|s| s["span_id"] == *id);
    let init = spans
        .iter()
        .find(|s| s["name"] == "paygov INIT")
        .unwrap_or_else(|| panic!("no PayGov call span: {spans:#?}"));
    assert_eq!(init["trace_id"], trace_id.as_str());
    let creation = by_id(&init["parent_span_id"]).expect("the creation request's span");
    assert_eq!(
        (creation["name"].clone(), attr(creation, "http.route").clone()),
        ("POST /v1/payments".into(), "/v1/payments".into())
    );
    assert_eq!(
        (creation["kind"].clone(), attr(creation, "path").clone()),
        (2.into(), "/v1/payments".into())
    );
    let webhook = spans
        .iter()
        .find(|s| s["name"] == "deliver payments")
        .unwrap_or_else(|| panic!("no webhook delivery span: {spans:#?}"));
    let callback = by_id(&webhook["parent_span_id"]).expect("the webhook's parent");
    assert_eq!(attr(callback, "path"), "/v1/callbacks/paygov", "the confirming request");
    assert_eq!(callback["trace_id"], webhook["trace_id"]);
    let everything = serde_json::to_string(&receiver.spans()).unwrap();
    assert!(!everything.contains("022190000123"), "the payer's identity number in a span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_does_not_sample_is_followed_through_the_queue_to_the_portal() {
    let receiver = Receiver::start();
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let mut child = spawn(traced(port, &unique_prefix(), &portal.url(), &receiver.endpoint()));
    let gateway = Gateway::at(&format!("http://127.0.0.1:{port}"));
    gateway.wait_ready().await;
    let post = |ma: String, traceparent: String| {
        let gateway = &gateway;
        async move {
            let body = dossier(&ma, 2);
            let r = send(
                gateway
                    .post("/v1/dossiers", Key::Centre)
                    .header("traceparent", traceparent)
                    .json(&body),
            )
            .await;
            assert_eq!(r.status(), 202);
        }
    };
    // First a trace the caller does not record (flags 00), then one it does.
    let (quiet, recorded) = (random_hex(16), random_hex(16));
    let quiet_ma = format!("TRACE-Q-{}", random_hex(3));
    post(quiet_ma.clone(), format!("00-{quiet}-{}-00", random_hex(8))).await;
    eventually("the unsampled dossier at the portal", Duration::from_secs(30), || {
        let arrived = !state.arrivals_of(&quiet_ma).is_empty();
        async move { arrived.then_some(()) }
    })
    .await;
    post(format!("TRACE-R-{}", random_hex(3)), format!("00-{recorded}-{}-01", random_hex(8))).await;
    // The recorded trace's portal call is exported after everything the first dossier made.
    eventually("the sampled trace's portal call at the collector", Duration::from_secs(30), || {
        let seen = receiver
            .spans()
            .iter()
            .any(|s| s["trace_id"] == recorded.as_str() && s["kind"] == 3);
        async move { seen.then_some(()) }
    })
    .await;
    terminate(&mut child).await;
    assert!(
        receiver.spans().iter().all(|s| s["trace_id"] != quiet.as_str()),
        "a span of the trace the caller did not sample was exported"
    );
    // The portal still heard the trace, unsampled, from every call.
    let heard = state.traceparents_naming(&quiet_ma);
    assert!(!heard.is_empty());
    for tp in heard {
        let tp = tp.unwrap_or_default();
        assert!(tp.starts_with(&format!("00-{quiet}-")) && tp.ends_with("-00"), "{tp}");
    }
    portal.stop().await;
}
