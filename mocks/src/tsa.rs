//! `mock-tsa`: an RFC 3161 time-stamping authority over HTTP (RFC 3161 section 3.4: a POST of
//! a DER `TimeStampReq` as `application/timestamp-query`, answered by a DER `TimeStampResp` as
//! `application/timestamp-reply`). It is an independent witness: the tokens are made by
//! OpenSSL's own TS implementation (`openssl ts -reply`, one process per request), never by
//! the gateway's code, so a mistake in the gateway's request or parsing is caught.
//!
//! It refuses what a real authority refuses: another content type (415), a body too large
//! (413), a request that is not a `TimeStampReq` (openssl's `rejection`/`badDataFormat`
//! response, or ours when openssl cannot answer at all), and
//! a hash algorithm it does not offer (openssl's own `rejection`/`badAlg`; it offers SHA-256,
//! SHA-384 and SHA-512). `genTime` carries milliseconds, as many real authorities' do.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::faults::{Faults, Injected};

/// The largest request accepted: a `TimeStampReq` with a SHA-512 imprint, a nonce, a policy
/// and some extensions is well under a kilobyte.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// How long one `openssl ts -reply` may take.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(20);
/// The policy OID the dev authority stamps under (under the documentation enterprise number of RFC 5612).
pub const POLICY_OID: &str = "1.3.6.1.4.1.32473.1.1";

/// `TimeStampResp { status PKIStatusInfo { status rejection(2), failInfo badDataFormat } }`,
/// encoded by hand from RFC 3161 section 2.4.2: badDataFormat is bit 5 of the
/// `PKIFailureInfo` BIT STRING, so one octet 0x04 with 2 unused bits.
pub const REJECTION_BAD_DATA_FORMAT: [u8; 11] = [0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x02, 0x04];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Requests that reached the authority (content type and size accepted).
    pub requests: u64,
    /// Answers from `openssl ts -reply` (granted or refused by openssl, e.g. badAlg).
    pub answered_by_openssl: u64,
    /// Requests openssl could not answer at all, refused with [`REJECTION_BAD_DATA_FORMAT`].
    pub bad_data_format: u64,
    /// Requests refused at the HTTP level (content type, size).
    pub refused_http: u64,
    pub failed_by_fault: u64,
}

#[derive(Default)]
struct Inner {
    counters: Counters,
    faults: Faults,
}

/// The authority's files (key, certificate, chain, serial, openssl configuration) live in a
/// private temporary folder, removed when the last handle goes.
struct Files {
    dir: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone)]
pub struct TsaState {
    inner: Arc<Mutex<Inner>>,
    files: Arc<Files>,
    /// `openssl ts -reply` increments a serial file: one at a time.
    openssl: Arc<tokio::sync::Mutex<()>>,
    seq: Arc<AtomicU64>,
}

fn config(dir: &Path) -> String {
    format!(
        "[ tsa ]\n\
         default_tsa = tsa_config1\n\
         [ tsa_config1 ]\n\
         dir = {dir}\n\
         serial = $dir/tsaserial\n\
         crypto_device = builtin\n\
         signer_cert = $dir/tsa.pem\n\
         certs = $dir/chain.pem\n\
         signer_key = $dir/tsa.key\n\
         signer_digest = sha256\n\
         default_policy = {POLICY_OID}\n\
         digests = sha256, sha384, sha512\n\
         accuracy = secs:1\n\
         clock_precision_digits = 3\n\
         ordering = no\n\
         tsa_name = yes\n\
         ess_cert_id_chain = no\n\
         ess_cert_id_alg = sha256\n",
        dir = dir.display()
    )
}

impl TsaState {
    /// An authority signing with `key_pem`/`cert_pem` (PEM), sending `chain_pem` (PEM, may be
    /// empty) with its certificate in every token.
    pub fn new(key_pem: &[u8], cert_pem: &[u8], chain_pem: &[u8]) -> std::io::Result<Self> {
        let mut rnd = [0u8; 8];
        rnd.iter_mut().for_each(|b| *b = fastrand::u8(..));
        let dir = std::env::temp_dir().join(format!("hcc-mock-tsa-{}-{}", std::process::id(), hex::encode(rnd)));
        std::fs::create_dir_all(&dir)?;
        let files = Files { dir };
        let d = &files.dir;
        std::fs::write(d.join("tsa.key"), key_pem)?;
        std::fs::write(d.join("tsa.pem"), cert_pem)?;
        let mut chain = cert_pem.to_vec();
        chain.extend_from_slice(chain_pem);
        std::fs::write(d.join("chain.pem"), chain)?;
        std::fs::write(d.join("tsaserial"), "01\n")?;
        std::fs::write(d.join("tsa.cnf"), config(d))?;
        Ok(TsaState {
            inner: Arc::default(),
            files: Arc::new(files),
            openssl: Arc::default(),
            seq: Arc::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    /// Runs `openssl ts -reply` on one request. `Ok(None)`: openssl could not read it.
    async fn reply(&self, query: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        let _one = self.openssl.lock().await;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let d = &self.files.dir;
        let (q, r) = (d.join(format!("q{n}.tsq")), d.join(format!("r{n}.tsr")));
        // Small files in a private folder: blocking writes are fine here.
        std::fs::write(&q, query)?;
        let child = tokio::process::Command::new("openssl")
            .args(["ts", "-reply", "-config"])
            .arg(d.join("tsa.cnf"))
            .arg("-queryfile")
            .arg(&q)
            .arg("-out")
            .arg(&r)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = tokio::time::timeout(OPENSSL_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| std::io::Error::other("openssl ts -reply timed out"))??;
        let answer = if out.status.success() { Some(std::fs::read(&r)?) } else { None };
        let _ = std::fs::remove_file(&q);
        let _ = std::fs::remove_file(&r);
        Ok(answer)
    }

    /// Makes a query with `openssl ts -query` and has it answered: proves at start-up that the
    /// key, certificate and configuration work, so a later failure of `openssl ts -reply`
    /// means the request was unreadable.
    pub async fn self_test(&self) -> std::io::Result<()> {
        let d = &self.files.dir;
        let out = tokio::process::Command::new("openssl")
            .args(["ts", "-query", "-sha256", "-cert", "-digest"])
            .arg("00".repeat(32))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(std::io::Error::other(format!(
                "openssl ts -query failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        match self.reply(&out.stdout).await? {
            Some(resp) if !resp.is_empty() => Ok(()),
            _ => Err(std::io::Error::other(format!(
                "openssl ts -reply cannot answer with the configuration in {}",
                d.display()
            ))),
        }
    }
}

pub fn routes(state: TsaState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            // Larger bodies are cut here and answered 413.
            .app_data(web::PayloadConfig::new(MAX_REQUEST_LEN))
            .service(web::resource("/").route(web::post().to(timestamp)))
            .route("/_mock/stats", web::get().to(stats))
            .route("/_mock/faults", web::post().to(set_faults));
    }
}

/// Spawns the authority after its self-test.
pub async fn spawn(bind: &str, state: TsaState) -> std::io::Result<crate::Running> {
    state.self_test().await?;
    crate::spawn_server(bind, routes(state))
}

fn reply(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/timestamp-reply").body(body)
}

async fn timestamp(req: HttpRequest, body: web::Bytes, state: web::Data<TsaState>) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type != "application/timestamp-query" {
        state.lock().counters.refused_http += 1;
        return HttpResponse::UnsupportedMediaType().body("expected application/timestamp-query");
    }
    let faults = {
        let mut s = state.lock();
        s.counters.requests += 1;
        s.faults.clone()
    };
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match faults.roll() {
        Injected::Pass => {}
        Injected::Fail(code) => {
            state.lock().counters.failed_by_fault += 1;
            let status = actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
            return HttpResponse::build(status).body("injected failure");
        }
        Injected::Drop => {
            state.lock().counters.failed_by_fault += 1;
            return crate::centre::dropped_connection();
        }
    }
    match state.reply(&body).await {
        Ok(Some(resp)) => {
            state.lock().counters.answered_by_openssl += 1;
            reply(resp)
        }
        Ok(None) => {
            state.lock().counters.bad_data_format += 1;
            reply(REJECTION_BAD_DATA_FORMAT.to_vec())
        }
        Err(e) => HttpResponse::InternalServerError().body(format!("mock-tsa: {e}")),
    }
}

async fn stats(state: web::Data<TsaState>) -> HttpResponse {
    HttpResponse::Ok().json(state.counters())
}

async fn set_faults(state: web::Data<TsaState>, f: web::Json<Faults>) -> HttpResponse {
    state.set_faults(f.into_inner());
    HttpResponse::NoContent().finish()
}
