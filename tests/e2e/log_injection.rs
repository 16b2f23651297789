//! Log injection and identity numbers in logs (issue 10, defects 3 and 6), against the real
//! `hcc-gateway serve` binary with its log captured from stderr, in the text and the JSON
//! format. Hostile text goes in through every door that reaches a log line or a stored error:
//! a camt.054 whose XML attribute holds `&#xA;` and a forged log line, request paths holding
//! `%0A`, a PayGov callback and a VNPAY IPN carrying newlines, and a portal answer whose message
//! holds a newline, a forged line and a citizen's numbers in several spellings. Afterwards no
//! line of the log starts with the forged text, no number appears unmasked in any spelling,
//! and the message's `last_error` (API, dead-letter list, the raw Redis record) and the audit
//! log hold the masked, escaped text.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use hcc_signing::devpki::DevPki;
use hcc_tests::*;
use serde_json::{Value, json};

/// The time stamp the forged lines carry: no real line of this run starts with it.
const FORGED_AT: &str = "1999-01-01T00:00:00.000000Z";

/// One citizen's numbers as people write them; none may reach the log or a stored error.
const IDENTITIES: &[&str] = &[
    "001 203 004 567",
    "001-203-004-567",
    "001203004567",
    "123-456-789",
    "123 456 789",
    "0912 345 678",
    "022 190 000 123",
];

/// A newline, then a whole log line as the text format writes one, tagged with `door`.
fn forged(door: &str) -> String {
    format!("\n{FORGED_AT}  INFO hcc_gateway::http: FORGED {door} accepted")
}

struct Gateway {
    child: Child,
    base: String,
    prefix: String,
    dir: PathBuf,
    log: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `hcc-gateway serve` on Redis with debug logs in `format`, stdout and stderr into one file,
/// a configured bank for camt.054, and the portal at `portal`.
fn serve(format: &str, portal: &str) -> Gateway {
    let bin = binary("hcc-gateway");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("hcc-loginj-{}", uuid::Uuid::new_v4().simple()));
    DevPki::generate().unwrap().write(&dir).unwrap();
    let log = dir.join("gateway.log");
    let out = File::create(&log).unwrap();
    let port = free_port();
    let prefix = unique_prefix();
    let child = Command::new(bin)
        .arg("serve")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("HCC__QUEUE__BACKEND", "redis")
        .env("HCC__QUEUE__REDIS_URL", redis_url())
        .env("HCC__QUEUE__KEY_PREFIX", &prefix)
        .env("HCC__QUEUE__POLL_INTERVAL_MS", "20")
        .env("HCC__DVCQG__BASE_URL", portal)
        .env("HCC__CENTRE__WEBHOOK_URL", "")
        .env("HCC__DELIVERY__MAX_ATTEMPTS", "3")
        .env("HCC__DELIVERY__BACKOFF_BASE_MS", "20")
        .env("HCC__DELIVERY__BACKOFF_MAX_MS", "100")
        .env("HCC__BANKS__DEVBANK__CERT", dir.join("bank.pem"))
        .env("HCC__TRUST__CA_DIR", dir.join("trust"))
        .env("HCC__LOG__FORMAT", format)
        .env("HCC__LOG__LEVEL", "debug")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"));
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        prefix,
        dir,
        log,
    }
}

/// A camt.054 shell whose signature names `algorithm` as its canonicalization method.
fn camt054(algorithm: &str) -> String {
    format!(
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\"><BkToCstmrDbtCdtNtfctn>\
         <GrpHdr><MsgId>LOGINJ-1</MsgId><CreDtTm>2026-11-25T10:00:00</CreDtTm></GrpHdr>\
         <Ntfctn><Id>N1</Id><CreDtTm>2026-11-25T10:00:00</CreDtTm><Acct><Id><Othr><Id>0011004123456</Id></Othr></Id></Acct></Ntfctn>\
         </BkToCstmrDbtCdtNtfctn>\
         <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>\
         <CanonicalizationMethod Algorithm=\"{algorithm}\"/>\
         <SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <Reference URI=\"\"><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue>AAAA</DigestValue></Reference>\
         </SignedInfo><SignatureValue>AAAA</SignatureValue></Signature></Document>"
    )
}

/// Removes ANSI colour sequences, so a line is read as a person sees it.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The stored error text: masked in every spelling, the forged line kept on its line.
fn assert_clean(what: &str, text: &str) {
    for id in IDENTITIES {
        assert!(!text.contains(id), "{what} shows {id:?} unmasked: {text}");
    }
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "{what} holds a raw line break: {text:?}"
    );
    assert!(text.contains("*** *** *** *67") && text.contains("***-***-*89"), "{what}: {text}");
    assert!(text.contains(&format!("\\n{FORGED_AT}")), "{what} lost the escaped newline: {text}");
}

async fn hostile_run(format: &str) {
    // The portal answers every look-up with an error whose message forges a line and names a
    // citizen: the adapter quotes it in its reason, the engine stores and logs that reason.
    let state = PortalState::new(PortalConfig::default());
    let message = format!(
        "Lỗi tra cứu hồ sơ{}; CCCD 001 203 004 567 (001-203-004-567, 001203004567), CMND 123-456-789, ĐT 0912 345 678",
        forged("portal")
    );
    state.set_lookup_answer(Some(json!({"error_code": 7, "message": message})));
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let gw = serve(format, &portal.url());
    let api = hcc_tests::Gateway::at(&gw.base);
    api.wait_ready().await;

    // A dossier, whose delivery meets the hostile portal answer.
    let id = accepted_id(api.post_dossier(&dossier("000.00.22.H46-241125-0099", 2)).await).await;

    // camt.054: the attribute's `&#xA;` is a newline once parsed, and the refusal quotes it.
    let algorithm = format!("urn:x&#xA;{FORGED_AT}  INFO hcc_gateway::http: FORGED camt054 accepted CCCD 001 203 004 567&#xD;&#x1B;[2K");
    let r = api.camt054("devbank", camt054(&algorithm)).await;
    assert_eq!(r.status(), 401);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("bad-signature"), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("FORGED camt054"), "{problem}");

    // Paths holding %0A.
    let path = "/v1/messages/nope%0A1999-01-01T00:00:00.000000Z%20%20INFO%20FORGED%20path";
    let r = send(api.get(path, Key::Centre)).await;
    assert_eq!(r.status(), 404);
    let r = api.camt054("x%0A1999-01-01T00:00:00.000000Z%20INFO%20FORGED%20bank", "<x/>").await;
    assert_eq!(r.status(), 404);

    // A PayGov confirmation, correctly checksummed, whose MaThamChieu holds a forged line.
    let reference = format!("HCC241126ABCDEFGH{}", forged("paygov"));
    let joined = format!("PAYMENT|00|HCC-DEV|{reference}|100000|VND|X1|VCB|20241126100000|x|paygov-dev-secret");
    let confirmation = json!({"LoaiBanTin": "PAYMENT", "MaLoi": "00", "MaDoiTac": "HCC-DEV", "MaThamChieu": reference,
        "SoTien": 100000, "MaTienTe": "VND", "MaGiaoDich": "X1", "MaNganHang": "VCB", "ThoiGianGD": "20241126100000",
        "ThongTinGiaoDich": "x", "MaXacThuc": hcc_signing::sha256_hex(joined.as_bytes())});
    let r = api.paygov_callback(&confirmation).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["MaLoi"], "99");

    // A VNPAY IPN repeating a key whose values hold a forged line.
    let r = api
        .vnpay_ipn("vnp_TxnRef=a%0A1999-01-01T00:00:00.000000Z%20INFO%20FORGED%20vnpay&vnp_TxnRef=b")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["RspCode"], "97");

    // The dossier gives up after three attempts; its reason is stored clean.
    let message = eventually("the dossier dead-lettered", Duration::from_secs(30), || {
        let req = api.get(&format!("/v1/messages/{id}"), Key::Centre);
        async move {
            let v: Value = req.send().await.ok()?.json().await.ok()?;
            (v["status"] == "dead").then_some(v)
        }
    })
    .await;
    assert_clean("GET /v1/messages/{id}", message["last_error"].as_str().unwrap());
    let dead = json(api.dead("dvcqg", Key::Operator).await).await;
    assert_eq!(dead["dead"][0]["id"], id.as_str(), "{dead}");
    assert_clean("the dead-letter list", dead["dead"][0]["last_error"].as_str().unwrap());
    // The record itself, not only the views of it.
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: String = redis::cmd("HGET")
        .arg(format!("{}:{{dvcqg}}:m:{id}", gw.prefix))
        .arg("err")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_clean("the stored record", &stored);
    let audit = eventually("audit lines of the attempts", Duration::from_secs(10), || {
        let req = api.get("/v1/audit", Key::Operator);
        async move {
            let v: Value = req.send().await.ok()?.json().await.ok()?;
            let entries = v["entries"].as_array()?.clone();
            entries.iter().any(|e| e["action"] == "delivery.dead").then_some(entries)
        }
    })
    .await;
    for e in audit.iter().filter(|e| e["action"].as_str().unwrap_or("").starts_with("delivery.")) {
        assert_clean("an audit line", e["detail"].as_str().unwrap());
    }

    // Let the last lines reach the file, then read the log as it is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    portal.stop().await;
    let log = std::fs::read_to_string(&gw.log).unwrap();
    drop(gw);
    let lines: Vec<String> = log.lines().map(strip_ansi).collect();
    assert!(lines.len() > 10, "{log}");
    for door in ["camt054", "portal"] {
        assert!(
            log.contains(&format!("FORGED {door}")),
            "the hostile text through {door} never reached the log:\n{log}"
        );
    }
    for line in &lines {
        assert!(
            !line.starts_with(FORGED_AT) && !line.trim_start().starts_with("1999-"),
            "a forged line:\n{line}\n\nin\n{log}"
        );
        // Every line is a real log line: it begins with this run's time stamp.
        let head: Vec<char> = line.chars().take(5).collect();
        assert!(
            format == "json" || (head.len() == 5 && head[..4].iter().all(char::is_ascii_digit) && head[4] == '-'),
            "not a log line: {line:?}"
        );
        assert!(!line.chars().any(|c| c.is_control()), "a control character in {line:?}");
        for id in IDENTITIES {
            assert!(!line.contains(id), "{id:?} unmasked in {line}");
        }
        if format == "json" {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(!v["timestamp"].as_str().unwrap_or("").starts_with("1999"), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_cannot_forge_text_log_lines_or_show_identity_numbers() {
    hostile_run("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_cannot_forge_json_log_lines_or_show_identity_numbers() {
    hostile_run("json").await;
}
