//! `hcc-demo`: the whole thing in one process, for a newcomer. A province's centre
//! (the mocks' portal and centre in-process, the embedded queue unless `--redis`) syncs a few
//! hundred dossiers through their life-cycle; halfway the portal starts failing and recovers.
//! A live line shows progress; a summary closes. `--once` exits 0 only when every update
//! reached the portal in order and nothing is dead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hcc_config::{QueueBackendKind, Settings};
use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use hcc_mocks::faults::Faults;
use serde_json::{Value, json};

use hcc_gateway::app::{Application, BuildError, Workers};
use hcc_gateway::storage::now_ms;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub redis: Option<String>,
    pub once: bool,
    pub dossiers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start: {0}")]
    Build(#[from] BuildError),
    #[error("cannot start a mock: {0}")]
    Mock(#[from] std::io::Error),
    #[error("the demo did not complete: {0}")]
    Incomplete(String),
}

/// The statuses one dossier goes through, and whether each step also sends a progress entry.
const LIFE: &[(u8, bool)] = &[(1, false), (2, false), (4, true), (5, true), (4, true), (9, true), (10, false)];

fn dossier_body(ma: &str, status: u8, step: usize) -> Value {
    json!({
        "MaHoSo": ma,
        "MaTTHC": "1.004227.000.00.00.H46",
        "TenTTHC": "Cấp giấy chứng nhận quyền sử dụng đất lần đầu",
        "MaLinhVuc": "G09-TN01",
        "ChuHoSo": "Công dân mẫu",
        "LoaiDoiTuong": 1,
        "NgayTiepNhan": "20241125083000",
        "NgayHenTra": "20241209170000",
        "TrangThaiHoSo": status,
        "DonViXuLy": "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh",
        "GhiChu": format!("bước {step}"),
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "MaPhiLePhi": "LP01", "HinhThucThu": 2, "Gia": 100000, "LoaiPhiLePhi": 2}]
    })
}

fn progress_body(ma: &str, status: u8, step: usize) -> Value {
    json!({
        "MaHoSo": ma,
        "NguoiXuLy": "Chuyên viên một cửa",
        "ChucDanh": "Chuyên viên",
        "ThoiDiemXuLy": format!("202411261{:01}{:02}00", step % 10, step * 7 % 60),
        "PhongBanXuLy": "Phòng Tài nguyên và Môi trường",
        "NoiDungXuLy": "Xử lý hồ sơ",
        "TrangThai": status,
    })
}

fn demo_settings(opts: &DemoOptions, portal: &str, bank: &str, centre: &str, pki: &std::path::Path) -> Result<Settings, DemoError> {
    let mut source = hcc_config::Source::from_process_env();
    let path = |f: &str| pki.join(f).to_string_lossy().into_owned();
    source.vars.insert("HCC__PAYGOV__BASE_URL".into(), String::new());
    source.vars.insert("HCC__PAYGOV__INIT_URL".into(), format!("{portal}/paygov/init"));
    source
        .vars
        .insert("HCC__PAYGOV__QUERY_URL".into(), format!("{portal}/paygov/query"));
    source.vars.insert("HCC__VNPAY__PAY_URL".into(), format!("{bank}/vnpay/pay"));
    source
        .vars
        .insert("HCC__VNPAY__API_URL".into(), format!("{bank}/merchant_webapi/api/transaction"));
    source.vars.insert("HCC__BANKS__DEMOBANK__CERT".into(), path("bank.pem"));
    // The counter's VietQR route, paid to the development agency's account at its bank.
    source.vars.insert("HCC__VIETQR__ENABLED".into(), "true".into());
    source.vars.insert("HCC__TRUST__CA_DIR".into(), path("trust"));
    source.vars.insert("HCC__SIGNING__PKCS12".into(), path("gateway.p12"));
    source.vars.insert(
        "HCC__SIGNING__PKCS12_PASSWORD".into(),
        hcc_signing::devpki::DEV_PKCS12_PASSWORD.into(),
    );
    source.vars.insert("HCC__DVCQG__BASE_URL".into(), portal.into());
    source.vars.insert("HCC__CENTRE__WEBHOOK_URL".into(), format!("{centre}/webhooks"));
    // The portal pushes a dossier down from this machine (crate::hand_down).
    source.vars.insert("HCC__INBOUND__ALLOWED_IPS".into(), "127.0.0.1".into());
    source
        .vars
        .insert("HCC__INBOUND__DVCQG_KEY".into(), crate::hand_down::PUSH_KEY.into());
    source.vars.insert("HCC__INBOUND__FILES_DIR".into(), path("inbound-files"));
    // The mocks' injected connection drops make actix log errors; they are the scenario, not news.
    source
        .vars
        .entry("HCC__LOG__LEVEL".into())
        .or_insert_with(|| "warn,actix_http=off".into());
    source.vars.insert("HCC__DELIVERY__BACKOFF_BASE_MS".into(), "100".into());
    source.vars.insert("HCC__DELIVERY__BACKOFF_MAX_MS".into(), "2000".into());
    source.vars.insert("HCC__DELIVERY__BREAKER_COOLDOWN_MS".into(), "1500".into());
    if let Some(url) = &opts.redis {
        source.vars.insert("HCC__QUEUE__BACKEND".into(), "redis".into());
        source.vars.insert("HCC__QUEUE__REDIS_URL".into(), url.clone());
        source.vars.insert(
            "HCC__QUEUE__KEY_PREFIX".into(),
            format!("hcc-demo-{}", uuid::Uuid::new_v4().simple()),
        );
    }
    let settings = hcc_config::load(&source).map_err(|e| DemoError::Incomplete(e.to_string()))?;
    Ok(settings)
}

/// Everything the demo started: the mocks, the gateway, and how to stop them.
struct Stage {
    portal: hcc_mocks::Running,
    portal_state: PortalState,
    centre: hcc_mocks::Running,
    centre_state: hcc_mocks::centre::CentreState,
    bank: hcc_mocks::Running,
    pki_dir: std::path::PathBuf,
    handle: hcc_gateway::engine::EngineHandle,
    /// The gateway's URL.
    base: String,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stage {
    /// Stops the gateway (as a signal would), then the mocks, and removes the PKI.
    async fn stop(self) {
        let _ = self.stop_tx.send(());
        let _ = self.server.await;
        self.portal.stop().await;
        self.centre.stop().await;
        self.bank.stop().await;
        let _ = std::fs::remove_dir_all(&self.pki_dir);
    }
}

/// What the scenario came to.
struct Driven {
    /// Everything delivered and paid, or why not.
    outcome: Result<(), String>,
    total_updates: usize,
    fees_total: usize,
    confirmed: u64,
    /// The first VietQR code a citizen scanned: its reference and payload.
    counter_qr: Option<(String, String)>,
    elapsed: f64,
    /// The dossier the portal pushed down, or why it could not be followed.
    handed_down: Result<crate::hand_down::HandedDown, String>,
}

/// Runs the demo: [`start`] the mocks and the gateway, [`drive`] the scenario with live
/// progress, [`summarise`] it; then, unless `--once`, keeps serving until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let stage = start(&opts).await?;
    let result = match drive(&stage, &opts).await {
        Ok(driven) => summarise(&stage, &opts, &driven),
        Err(e) => Err(e),
    };
    if !opts.once && result.is_ok() {
        println!();
        println!("Still serving at {}; press Ctrl-C to stop.", stage.base);
        hcc_gateway::app::shutdown_signal().await;
    }
    stage.stop().await;
    result
}

/// The mock portal, centre and bank (with a development PKI), then the gateway against them.
async fn start(opts: &DemoOptions) -> Result<Stage, DemoError> {
    let portal_state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", portal_state.clone())?;
    let centre_secret = hcc_signing::webhook::WebhookSecret::parse("whsec_ZGV2LWNlbnRyZS13ZWJob29rLXNlY3JldA==")
        .map_err(|e| DemoError::Incomplete(e.to_string()))?;
    let (centre, centre_state) = hcc_mocks::centre::spawn("127.0.0.1:0", centre_secret)?;
    let pki_dir = std::env::temp_dir().join(format!("hcc-demo-{}", uuid::Uuid::new_v4().simple()));
    let pki = hcc_signing::devpki::DevPki::generate().map_err(|e| DemoError::Incomplete(e.to_string()))?;
    pki.write(&pki_dir)?;
    let (sk, sc) = hcc_signing::devpki::issue(
        &hcc_signing::devpki::CertSpec {
            common_name: "Stranger Bank",
            key: hcc_signing::devpki::KeyKind::Rsa2048,
            role: hcc_signing::devpki::Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        None,
    )
    .map_err(|e| DemoError::Incomplete(e.to_string()))?;
    let bank_state = hcc_mocks::bank::BankState::new(
        "HCCDEV01",
        "vnpay-dev-hash-secret",
        hcc_signing::pki::Identity {
            key: pki.bank_key.clone().into(),
            cert: pki.bank.cert.clone(),
            chain: vec![],
        },
        hcc_signing::pki::Identity {
            key: sk.into(),
            cert: sc,
            chain: vec![],
        },
    );
    let bank = hcc_mocks::bank::spawn("127.0.0.1:0", bank_state)?;
    let settings = demo_settings(opts, &portal.url(), &bank.url(), &centre.url(), &pki_dir)?;
    hcc_gateway::logging::init(&settings.log);
    let backend = settings.queue.backend;
    let app = match Application::build(settings.clone(), Workers::On).await {
        Ok(a) => a,
        Err(BuildError::Bind { .. }) => {
            let mut s = settings;
            s.server.bind = "127.0.0.1:0".into();
            Application::build(s, Workers::On).await?
        }
        Err(e) => return Err(e.into()),
    };
    let port = app.port();
    let handle = app.handle();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    println!(
        "hcc-demo: a provincial centre syncing {} dossiers with the national portal",
        opts.dossiers
    );
    println!(
        "  queue backend : {}",
        if backend == QueueBackendKind::Memory {
            "memory (embedded, not durable)"
        } else {
            "redis"
        }
    );
    println!("  gateway       : {base}");
    println!("  dashboard     : {base}/ops   (key: dev-operator-key to watch, dev-admin-key to act)");
    println!("  metrics       : {base}/metrics");
    println!("  mock portal   : {}/_mock/stats", portal.url());
    println!();
    Ok(Stage {
        portal,
        portal_state,
        centre,
        centre_state,
        bank,
        pki_dir,
        handle,
        base,
        stop_tx,
        server,
    })
}

/// The scenario: eight service desks post every dossier's life-cycle, the portal fails for a
/// while and recovers, citizens pay fees by every route; a live line shows progress.
async fn drive(stage: &Stage, opts: &DemoOptions) -> Result<Driven, DemoError> {
    let (base, handle, portal_state, centre_state) = (&stage.base, &stage.handle, &stage.portal_state, &stage.centre_state);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DemoError::Incomplete(e.to_string()))?;
    let total_updates: usize = opts.dossiers * LIFE.iter().map(|(_, p)| if *p { 2 } else { 1 }).sum::<usize>();
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Eight service desks post their dossiers' updates concurrently; each dossier's in order.
    let mut desks = Vec::new();
    for desk in 0..8usize {
        let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
        let mine: Vec<String> = (0..opts.dossiers)
            .filter(|i| i % 8 == desk)
            .map(|i| format!("000.00.22.H46-241125-{i:04}"))
            .collect();
        desks.push(tokio::spawn(async move {
            for (step, (status, with_progress)) in LIFE.iter().enumerate() {
                for ma in &mine {
                    if *with_progress {
                        post(
                            &client,
                            &format!("{base}/v1/dossiers/{ma}/progress"),
                            &progress_body(ma, *status, step),
                            &format!("{ma}-p{step}"),
                        )
                        .await;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    post(
                        &client,
                        &format!("{base}/v1/dossiers"),
                        &dossier_body(ma, *status, step),
                        &format!("{ma}-s{step}"),
                    )
                    .await;
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Citizens pay fees for one dossier in ten, a quarter through each route.
    let fees_total = opts.dossiers.div_ceil(10);
    let confirmed = Arc::new(AtomicU64::new(0));
    // The first code a citizen scanned at the counter, drawn in the summary.
    let counter_qr: Arc<std::sync::Mutex<Option<(String, String)>>> = Arc::default();
    let payers = {
        let (client, base, confirmed, counter_qr) = (client.clone(), base.clone(), confirmed.clone(), counter_qr.clone());
        let (portal_url, bank_url) = (stage.portal.url(), stage.bank.url());
        tokio::spawn(async move {
            for i in 0..fees_total {
                let ma = format!("000.00.22.H46-241125-{:04}", i * 10);
                let route = ["paygov", "vnpay", "bank", "vietqr"][i % 4];
                if let Some((reference, qr)) = pay_fee(&client, &base, &ma, route, &portal_url, &bank_url).await {
                    if let (Some(payload), Ok(mut shown)) = (qr, counter_qr.lock()) {
                        shown.get_or_insert((reference.clone(), payload));
                    }
                    for _ in 0..50 {
                        let status = client
                            .get(format!("{base}/v1/payments/{reference}"))
                            .bearer_auth("dev-centre-key")
                            .send()
                            .await
                            .ok();
                        let paid = match status {
                            Some(r) => r.json::<Value>().await.ok().is_some_and(|v| v["status"] == "paid"),
                            None => false,
                        };
                        if paid {
                            confirmed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    let mut outage: Option<Instant> = None;
    let mut recovered = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stats = handle.queue.stats("dvcqg", now_ms()).await.unwrap_or_default();
        let acc = accepted.load(Ordering::Relaxed);
        if outage.is_none() && acc as usize >= total_updates / 3 {
            portal_state.set_faults(Faults {
                fail_rate: 0.8,
                fail_status: 503,
                drop_rate: 0.3,
                max_latency_ms: 50,
                latency_ms: 0,
                ..Default::default()
            });
            outage = Some(Instant::now());
        }
        if let Some(t) = outage
            && !recovered
            && t.elapsed() > Duration::from_secs(4)
        {
            portal_state.set_faults(Faults::default());
            recovered = true;
        }
        let phase = match (outage, recovered) {
            (None, _) => "portal healthy",
            (Some(_), false) => "PORTAL FAILING",
            (Some(_), true) => "portal recovered",
        };
        let breaker = handle
            .breaker_state("dvcqg")
            .map(|b| format!("{b:?}").to_lowercase())
            .unwrap_or_default();
        let paid = confirmed.load(Ordering::Relaxed);
        let webhooks = centre_state.counters().unique;
        let line = format!(
            "accepted {acc:>5}/{total_updates} | delivered {:>5} | waiting {:>5} | retrying {:>3} | dead {} | breaker {breaker:<9} | fees paid {paid:>3}/{fees_total} | {phase}",
            stats.delivered_total, stats.ready, stats.scheduled, stats.dead
        );
        if line != last {
            eprint!("\r{line}");
            last = line;
        }
        if stats.delivered_total as usize >= total_updates
            && acc as usize >= total_updates
            && paid as usize >= fees_total
            && webhooks as usize >= fees_total
        {
            break Ok(());
        }
        if stats.dead > 0 {
            break Err(format!("{} message(s) dead", stats.dead));
        }
        if Instant::now() > deadline {
            break Err("not everything was delivered within 5 minutes".into());
        }
    };
    eprintln!();
    for d in desks {
        let _ = d.await;
    }
    let _ = payers.await;
    let counter_qr = counter_qr.lock().ok().and_then(|s| s.clone());
    let handed_down = crate::hand_down::hand_down(base, portal_state, centre_state, Duration::from_secs(30)).await;
    Ok(Driven {
        handed_down,
        outcome,
        total_updates,
        fees_total,
        confirmed: confirmed.load(Ordering::Relaxed),
        counter_qr,
        elapsed: started.elapsed().as_secs_f64(),
    })
}

/// The summary, and whether the demo passed: everything delivered in order and paid.
fn summarise(stage: &Stage, opts: &DemoOptions, d: &Driven) -> Result<(), DemoError> {
    let (portal_state, centre_state) = (&stage.portal_state, &stage.centre_state);
    let centre_counts = centre_state.counters();
    let portal_counts = portal_state.counters();
    let in_order = (0..opts.dossiers).all(|i| {
        let ma = format!("000.00.22.H46-241125-{i:04}");
        let mut seen: Vec<u8> = portal_state
            .arrivals_of(&ma)
            .iter()
            .filter(|a| a.service == "DongBoHoSoMC")
            .map(|a| a.status)
            .collect();
        seen.dedup();
        seen == LIFE.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    });
    println!();
    println!("Summary");
    println!("  updates accepted      : {} ({} dossiers)", d.total_updates, opts.dossiers);
    println!(
        "  delivered to portal   : {} in {:.1} s ({:.0}/s)",
        portal_counts.accepted,
        d.elapsed,
        portal_counts.accepted as f64 / d.elapsed
    );
    println!(
        "  portal failures faced : {} (injected 503s and dropped connections)",
        portal_counts.failed_by_fault
    );
    println!("  portal logins         : {}", portal_counts.logins);
    println!(
        "  per-dossier order     : {}",
        if in_order && portal_counts.backwards == 0 {
            "kept (no status went backwards)"
        } else {
            "BROKEN"
        }
    );
    println!(
        "  fees paid             : {}/{} (PayGov callback, VNPAY IPN, bank camt.054, VietQR at the counter in turn)",
        d.confirmed, d.fees_total
    );
    if let Some((reference, Ok(drawing))) = d.counter_qr.clone().map(|(r, payload)| (r, hcc_gateway::qr::terminal(&payload))) {
        println!("  a citizen at the counter scanned this VietQR code for {reference}; the bank's camt.054 paid it:");
        println!("{drawing}");
    }
    println!(
        "  webhooks to the centre: {} received, {} with a bad signature, {} duplicates",
        centre_counts.unique, centre_counts.bad_signatures, centre_counts.duplicates
    );
    let handed = match &d.handed_down {
        Ok(h) => {
            println!(
                "  handed down by portal : {} (answer {}, {} of 2 files byte-identical at the centre, status {} back on the portal)",
                crate::hand_down::CODE,
                h.error_code,
                h.files_identical,
                h.status_back.as_deref().unwrap_or("not")
            );
            h.error_code == 0 && h.files_identical == 2 && h.status_back.as_deref() == Some("2")
        }
        Err(e) => {
            println!("  handed down by portal : failed: {e}");
            false
        }
    };
    match &d.outcome {
        Ok(()) if !handed => Err(DemoError::Incomplete("the dossier handed down did not go round".into())),
        Ok(()) if in_order && portal_counts.backwards == 0 => Ok(()),
        Ok(()) => Err(DemoError::Incomplete("order was not kept".into())),
        Err(e) => Err(DemoError::Incomplete(e.clone())),
    }
}

/// One fee through one route: the centre asks the gateway for a payment, then the mock
/// provider pays it and confirms through its own channel (for VietQR, the citizen's app scans
/// the code and the mock bank books the transfer and sends its camt.054). Returns the reference
/// and, for VietQR, the code's payload.
async fn pay_fee(
    client: &reqwest::Client,
    base: &str,
    ma: &str,
    route: &str,
    portal: &str,
    bank: &str,
) -> Option<(String, Option<String>)> {
    let provider = match route {
        "vnpay" | "vietqr" => route,
        _ => "paygov",
    };
    let body = json!({"MaHoSo": ma, "SoTien": 100000, "provider": provider, "MaDonVi": "000.00.22.H46",
        "MaTTHC": "1.004227", "TenTTHC": "Cấp giấy chứng nhận quyền sử dụng đất",
        "PhiLePhi": [{"LoaiPhiLePhi": 2, "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "SoTien": 100000}],
        "HoTenNguoiNop": "Công dân mẫu", "SoCMNDNguoiNop": "022190000123", "DiaChiNguoiNop": "Hạ Long, Quảng Ninh",
        "IpNguoiNop": "198.51.100.23"});
    let created: Value = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth("dev-centre-key")
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let reference = created["MaThamChieu"].as_str()?.to_string();
    let qr = created["qr"]["payload"].as_str().map(str::to_string);
    let (url, control) = match route {
        "paygov" => (
            format!("{portal}/_mock/paygov/pay"),
            json!({"MaThamChieu": reference, "callback_urls": [format!("{base}/v1/callbacks/paygov")]}),
        ),
        "vnpay" => (
            format!("{bank}/_mock/vnpay/pay"),
            json!({"TxnRef": reference, "amount_vnd": 100000, "ipn_url": format!("{base}/v1/callbacks/vnpay/ipn")}),
        ),
        "vietqr" => (
            format!("{bank}/_mock/bank/vietqr"),
            json!({"payload": qr.clone()?, "note_prefix": "VCB.QR", "url": format!("{base}/v1/callbacks/banks/demobank/camt054")}),
        ),
        _ => (
            format!("{bank}/_mock/bank/credit"),
            json!({"reference": reference, "amount_vnd": 100000, "url": format!("{base}/v1/callbacks/banks/demobank/camt054")}),
        ),
    };
    client.post(url).json(&control).send().await.ok()?;
    Some((reference, qr))
}

async fn post(client: &reqwest::Client, url: &str, body: &Value, key: &str) {
    // A desk retries until the gateway has it, with the same idempotency key.
    for _ in 0..100 {
        let sent = client
            .post(url)
            .bearer_auth("dev-centre-key")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        if matches!(sent, Ok(ref r) if r.status() == 202) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
