//! The operator commands: `hcc-gateway queues`, `hcc-gateway dead list|replay|discard`,
//! `hcc-gateway dossier MAHOSO`, `hcc-gateway inbound [--source …]`, `hcc-gateway catalogue
//! sync|status|show|search` and
//! `hcc-gateway payments [--status …]`,
//! talking to a running gateway's JSON API with the key in `HCC_API_KEY`. Errors say what went
//! wrong in an operator's terms: unreachable, key refused, no such queue or message.

use std::time::Duration;

use serde_json::Value;

use crate::redact::Escaped;

/// A string from the gateway's answer, safe for a terminal: a stored text may predate the
/// gateway's own cleaning, or come from a gateway of another version, and a newline or an ANSI
/// escape in it would forge rows of the table or rewrite the operator's screen.
fn shown(v: &Value, default: &str) -> String {
    Escaped(v.as_str().unwrap_or(default)).to_string()
}

/// The catalogue sync's state in one line.
fn sync_line(v: &Value) -> String {
    format!(
        "catalogue: {} procedures; sync {} ({} of {} details, {} failed); last success {}",
        v["procedures"],
        shown(&v["phase"], "?"),
        v["done"],
        v["total"],
        v["failed_details"],
        shown(&v["last_success_at"], "never")
    )
}

/// An inbound dossier in one line: source, procedure, when, files, acknowledgement.
fn inbound_line(d: &Value) -> String {
    let ack = if !d["needs_acknowledgement"].as_bool().unwrap_or(false) {
        "-".to_string()
    } else {
        match d["acknowledged_at"].as_str() {
            Some(_) => format!("acknowledged {}", shown(&d["acknowledged_at"], "")),
            None => "not acknowledged yet".into(),
        }
    };
    format!(
        "{:<6} {:<16} received {:<26} files {:>2}  {}",
        shown(&d["source"], "?"),
        shown(&d["MaTTHC"], "-"),
        shown(&d["received_at"], "-"),
        d["files"].as_array().map_or(0, Vec::len),
        ack
    )
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("HCC_API_KEY is not set: export the operator's (or, to act, the admin's) API key")]
    NoKey,
    #[error("cannot reach the gateway at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gateway refused the API key (HTTP 401): check HCC_API_KEY")]
    BadKey,
    #[error("this API key's role may not do this (HTTP 403): replay and discard need an admin key")]
    WrongRole,
    #[error("{0}")]
    Api(String),
}

/// The most pages `payments` reads (200 payments each).
const MAX_PAYMENT_PAGES: usize = 50;

/// The filters of `hcc-gateway payments`, passed on as the gateway's query parameters (the
/// gateway checks them).
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub status: Option<String>,
    pub ma_ho_so: Option<String>,
    pub since: Option<String>,
}

pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, key: Option<String>) -> Result<Self, CliError> {
        let key = key.filter(|k| !k.is_empty()).ok_or(CliError::NoKey)?;
        // No redirects: a redirect would carry the operator's key (and an admin's action) to
        // wherever the answer points; the gateway never redirects its API.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::Api(e.to_string()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            key,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Result<Value, CliError> {
        self.call_with(method, path, &[]).await
    }

    async fn call_with(&self, method: reqwest::Method, path: &str, query: &[(&str, &str)]) -> Result<Value, CliError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let resp = self
            .http
            .request(method, url)
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| CliError::Unreachable {
                url: self.base.clone(),
                reason: if e.is_connect() {
                    "connection refused or no route".into()
                } else {
                    e.to_string()
                },
            })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(body),
            300..=399 => Err(CliError::Api(format!(
                "HTTP {status}: a redirect, not followed (the key would go with it); check HCC_URL"
            ))),
            401 => Err(CliError::BadKey),
            403 => Err(CliError::WrongRole),
            _ => Err(CliError::Api(format!("HTTP {status}: {}", shown(&body["detail"], "no detail")))),
        }
    }

    pub async fn queues(&self) -> Result<String, CliError> {
        let v = self.call(reqwest::Method::GET, "/v1/queues").await?;
        let mut out = format!(
            "{:<10} {:>8} {:>9} {:>9} {:>6} {:>8} {:>10} {:>10} {:>7} {:>10}\n",
            "QUEUE", "READY", "SCHEDULED", "IN_FLIGHT", "DEAD", "BLOCKED", "DELIVERED", "OLDEST(s)", "PAUSED", "BREAKER"
        );
        for q in v["queues"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!(
                "{:<10} {:>8} {:>9} {:>9} {:>6} {:>8} {:>10} {:>10.1} {:>7} {:>10}\n",
                shown(&q["name"], "?"),
                q["ready"],
                q["scheduled"],
                q["in_flight"],
                q["dead"],
                q["blocked"],
                q["delivered_total"],
                q["oldest_ready_age_seconds"].as_f64().unwrap_or(0.0),
                if q["paused"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                shown(&q["breaker"], "-"),
            ));
        }
        Ok(out)
    }

    pub async fn dead_list(&self, queue: &str) -> Result<String, CliError> {
        let v = self.call(reqwest::Method::GET, &format!("/v1/queues/{queue}/dead")).await?;
        let items = v["dead"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Ok(format!("no dead letters in {queue}\n"));
        }
        let mut out = format!(
            "{:<38} {:<18} {:<28} {:>8}  {}\n",
            "ID", "KIND", "ORDERING KEY", "ATTEMPTS", "LAST ERROR"
        );
        for d in items {
            out.push_str(&format!(
                "{:<38} {:<18} {:<28} {:>8}  {}\n",
                shown(&d["id"], "?"),
                shown(&d["kind"], "?"),
                shown(&d["ordering_key"], "?"),
                d["attempts"],
                shown(&d["last_error"], "")
            ));
        }
        Ok(out)
    }

    pub async fn dead_replay(&self, queue: &str, id: Option<&str>) -> Result<String, CliError> {
        match id {
            Some(id) => {
                self.call(reqwest::Method::POST, &format!("/v1/queues/{queue}/dead/{id}/replay"))
                    .await?;
                Ok(format!("replayed {id}\n"))
            }
            None => {
                let v = self.call(reqwest::Method::POST, &format!("/v1/queues/{queue}/dead/replay")).await?;
                Ok(format!("replayed {} dead letter(s)\n", v["replayed"]))
            }
        }
    }

    /// `GET /v1/dossiers/{MaHoSo}` as a table (or its JSON).
    pub async fn dossier(&self, ma_ho_so: &str, json: bool) -> Result<String, CliError> {
        // The MaHoSo goes in the path: checked first, so that it cannot name another path.
        if let Err(e) = hcc_adapters::domain::MaHoSo::parse(ma_ho_so) {
            return Err(CliError::Api(format!("not a MaHoSo: {e}")));
        }
        let v = self.call(reqwest::Method::GET, &format!("/v1/dossiers/{ma_ho_so}")).await?;
        if json {
            return Ok(format!("{v:#}\n"));
        }
        let mut out = format!(
            "dossier {}  portal status: {}  blocked: {}\n",
            shown(&v["MaHoSo"], "?"),
            shown(&v["portal_status"], "-"),
            if v["blocked"].as_bool().unwrap_or(false) { "yes" } else { "no" }
        );
        if v["inbound"].is_object() {
            out.push_str(&format!("handed down by {}\n", inbound_line(&v["inbound"])));
        }
        out.push_str(&format!(
            "{:<38} {:<18} {:<8} {:<10} {:>8} {:<26} {:<26}  {}\n",
            "ID", "KIND", "TO", "STATUS", "ATTEMPTS", "ACCEPTED", "DELIVERED", "REASON"
        ));
        for m in v["messages"].as_array().cloned().unwrap_or_default() {
            let reason = match m["plain_reason"]["en"].as_str() {
                Some(_) => shown(&m["plain_reason"]["en"], ""),
                None => shown(&m["last_error"], ""),
            };
            out.push_str(&format!(
                "{:<38} {:<18} {:<8} {:<10} {:>8} {:<26} {:<26}  {}\n",
                shown(&m["id"], "?"),
                shown(&m["kind"], "?"),
                shown(&m["destination"], "?"),
                shown(&m["status"], "?"),
                m["attempts"],
                shown(&m["accepted_at"], "-"),
                shown(&m["delivered_at"], "-"),
                reason
            ));
        }
        Ok(out)
    }

    /// The catalogue sync's state in one line.
    pub async fn catalogue_status(&self) -> Result<String, CliError> {
        let v = self.call(reqwest::Method::GET, "/v1/catalogue/sync").await?;
        Ok(format!("{}\n", sync_line(&v)))
    }

    /// Asks for a catalogue sync; with `wait`, follows it until it is done or failed (at most
    /// `limit`), printing its progress.
    pub async fn catalogue_sync(&self, wait: bool, limit: Duration) -> Result<String, CliError> {
        let before = self.call(reqwest::Method::POST, "/v1/catalogue/sync").await?;
        if !wait {
            return Ok(format!("asked for; now {}\n", sync_line(&before)));
        }
        let started = std::time::Instant::now();
        let first_run = before["started_at"].clone();
        let mut out = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let v = self.call(reqwest::Method::GET, "/v1/catalogue/sync").await?;
            let finished = matches!(v["phase"].as_str(), Some("done" | "failed")) && v["started_at"] != first_run;
            if finished {
                out.push_str(&format!("{}\n", sync_line(&v)));
                return if v["phase"] == "failed" {
                    Err(CliError::Api(format!(
                        "the sync failed: {}",
                        shown(&v["last_error"], "no reason given")
                    )))
                } else {
                    Ok(out)
                };
            }
            if started.elapsed() > limit {
                return Err(CliError::Api(format!(
                    "still running after {} s: {}",
                    limit.as_secs(),
                    sync_line(&v)
                )));
            }
        }
    }

    /// One procedure of the catalogue, as the portal sent it (JSON).
    pub async fn catalogue_show(&self, code: &str) -> Result<String, CliError> {
        if !hcc_adapters::catalogue::is_procedure_code(code) {
            return Err(CliError::Api("not a procedure code (MaTTHC)".into()));
        }
        let v = self.call(reqwest::Method::GET, &format!("/v1/catalogue/procedures/{code}")).await?;
        Ok(format!("{v:#}\n"))
    }

    /// Procedures matching words of their code or name, and of a field.
    pub async fn catalogue_search(&self, q: Option<&str>, linh_vuc: Option<&str>, json: bool) -> Result<String, CliError> {
        let mut query = vec![("limit", "200")];
        if let Some(q) = q {
            query.push(("q", q));
        }
        if let Some(l) = linh_vuc {
            query.push(("linh_vuc", l));
        }
        let v = self.call_with(reqwest::Method::GET, "/v1/catalogue/procedures", &query).await?;
        if json {
            return Ok(format!("{v:#}\n"));
        }
        let mut out = format!("{} procedure(s)\n", v["total"]);
        for p in v["procedures"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!(
                "{:<24} {:<9} {}\n",
                shown(&p["MATTHC"], "?"),
                if p["withdrawn"].as_bool().unwrap_or(false) {
                    "withdrawn"
                } else {
                    ""
                },
                shown(&p["TENTTHC"], "")
            ));
        }
        Ok(out)
    }

    /// Inbound dossiers (handed down by the portal or the link-up), newest first: one page.
    pub async fn inbound(&self, source: Option<&str>, limit: usize, json: bool) -> Result<String, CliError> {
        let limit = limit.clamp(1, 500).to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(s) = source {
            query.push(("source", s));
        }
        let v = self.call_with(reqwest::Method::GET, "/v1/inbound/dossiers", &query).await?;
        if json {
            return Ok(format!("{v:#}\n"));
        }
        let mut out = format!("{} inbound dossier(s)\n", v["total"]);
        for d in v["dossiers"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!("{:<32} {}\n", shown(&d["MaHoSo"], "?"), inbound_line(&d)));
        }
        Ok(out)
    }

    /// The rows under `field` of every page of the list at `path` (at most
    /// [`MAX_PAYMENT_PAGES`] of 200), following `next_cursor`.
    async fn every_page(&self, path: &str, field: &str, filters: &[(&str, &str)]) -> Result<Vec<Value>, CliError> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAYMENT_PAGES {
            let mut q: Vec<(&str, &str)> = vec![("limit", "200")];
            q.extend_from_slice(filters);
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let v = self.call_with(reqwest::Method::GET, path, &q).await?;
            rows.extend(v[field].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        Ok(rows)
    }

    /// `GET /v1/payments`, every page (at most [`MAX_PAYMENT_PAGES`]), as a table (or JSON).
    pub async fn payments(&self, f: &PaymentFilter, json: bool) -> Result<String, CliError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        for (name, value) in [("status", &f.status), ("MaHoSo", &f.ma_ho_so), ("since", &f.since)] {
            if let Some(v) = value {
                q.push((name, v));
            }
        }
        let rows = self.every_page("/v1/payments", "payments", &q).await?;
        if json {
            return Ok(format!("{:#}\n", Value::Array(rows)));
        }
        if rows.is_empty() {
            return Ok("no payments match\n".into());
        }
        let mut out = format!(
            "{:<20} {:<28} {:>12} {:<8} {:<16} {:>4} {:<26}\n",
            "MATHAMCHIEU", "MAHOSO", "SOTIEN", "PROVIDER", "STATUS", "DUP", "UPDATED"
        );
        for p in rows {
            out.push_str(&format!(
                "{:<20} {:<28} {:>12} {:<8} {:<16} {:>4} {:<26}\n",
                shown(&p["MaThamChieu"], "?"),
                shown(&p["MaHoSo"], "?"),
                p["SoTien"],
                shown(&p["provider"], "?"),
                shown(&p["status"], "?"),
                p["duplicates"],
                shown(&p["updated_at"], "-"),
            ));
        }
        Ok(out)
    }

    /// A VietQR payment's code drawn for the terminal (`GET /v1/payments/{MaThamChieu}`), with
    /// what the citizen checks in their app before paying: the amount, the agency, the time left.
    pub async fn payment_qr(&self, reference: &str) -> Result<String, CliError> {
        // Checked here too: the reference goes into the request's path.
        if !hcc_adapters::payments::is_reference(reference) {
            return Err(CliError::Api(format!(
                "{} is not a MaThamChieu (HCC, six digits, eight letters or digits)",
                Escaped(reference)
            )));
        }
        let p = self.call(reqwest::Method::GET, &format!("/v1/payments/{reference}")).await?;
        let Some(payload) = p["qr"]["payload"].as_str() else {
            return Err(CliError::Api(format!(
                "payment {reference} is a {} payment: only VietQR payments have a code",
                shown(&p["provider"], "?")
            )));
        };
        let drawing = crate::qr::terminal(payload).map_err(|e| CliError::Api(e.to_string()))?;
        let left = p["expires_at"]
            .as_str()
            .and_then(crate::timefmt::parse_rfc3339_ms)
            .map(|t| {
                let secs = (t - crate::storage::now_ms()) / 1000;
                if secs > 0 {
                    format!("{} min {} s left", secs / 60, secs % 60)
                } else {
                    "its time is over (a late transfer still pays it)".into()
                }
            })
            .unwrap_or_else(|| "no lifetime recorded".into());
        Ok(format!(
            "{drawing}\n{reference}  {} VND  to {}  status {}  {left}\n",
            p["SoTien"],
            shown(&p["MaDonVi"], "?"),
            shown(&p["status"], "?"),
        ))
    }

    /// `GET /v1/payments/unmatched`, every page (at most [`MAX_PAYMENT_PAGES`]), as a table
    /// (or JSON).
    pub async fn unmatched(&self, state: &str, bank: Option<&str>, json: bool) -> Result<String, CliError> {
        let mut q: Vec<(&str, &str)> = vec![("state", state)];
        if let Some(b) = bank {
            q.push(("bank", b));
        }
        let rows = self.every_page("/v1/payments/unmatched", "unmatched", &q).await?;
        if json {
            return Ok(format!("{:#}\n", Value::Array(rows)));
        }
        if rows.is_empty() {
            return Ok(format!("no {state} unmatched bank money\n"));
        }
        let mut out = format!(
            "{:<26} {:<10} {:<10} {:<16} {:>12} {:<20} {:<20} {}\n",
            "ID", "BOOKED", "BANK", "ACCOUNT", "AMOUNT", "REASON", "MATHAMCHIEU", "TRANSFER NOTE"
        );
        for u in rows {
            out.push_str(&format!(
                "{:<26} {:<10} {:<10} {:<16} {:>12} {:<20} {:<20} {}\n",
                shown(&u["id"], "?"),
                shown(&u["booking_date"], "-"),
                shown(&u["bank"], "?"),
                shown(&u["account"], "-"),
                u["amount"],
                shown(&u["reason"], "?"),
                shown(&u["MaThamChieu"], "-"),
                shown(&u["remittance"], ""),
            ));
        }
        Ok(out)
    }

    pub async fn dead_discard(&self, queue: &str, id: &str) -> Result<String, CliError> {
        self.call(reqwest::Method::DELETE, &format!("/v1/queues/{queue}/dead/{id}")).await?;
        Ok(format!("discarded {id}\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_the_key_goes_nowhere_else() {
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/v1/queues", elsewhere.local_addr().unwrap());
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", gateway.local_addr().unwrap());
        // The "gateway" answers every request with a redirect to the other listener.
        let server = tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut s, _)) = gateway.accept().await else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let client = super::Client::new(&base, Some("operator-key".into())).unwrap();
        let err = client.queues().await.unwrap_err().to_string();
        assert!(err.contains("HTTP 302") && err.contains("redirect"), "{err}");
        let err = client.dead_replay("dvcqg", None).await.unwrap_err().to_string();
        assert!(err.contains("HTTP 302"), "{err}");
        // Nothing ever reached the place the redirect named.
        let reached = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
        assert!(reached.is_err(), "the client followed the redirect");
        server.abort();
    }

    #[test]
    fn strings_from_the_gateway_cannot_forge_rows_or_rewrite_the_screen() {
        assert_eq!(
            super::shown(&json!("refused\nfake-id  dossier.sync\u{1b}[2J CCCD 001 203 004 567"), "?"),
            "refused\\nfake-id  dossier.sync\\u{1b}[2J CCCD *** *** *** *67"
        );
        assert_eq!(super::shown(&Value::Null, "?"), "?");
    }
}
