//! `mock-bank`: VNPAY sending IPNs (`shared/domain/payments.md` §2) and a host-to-host bank
//! sending signed camt.054 notifications (§3), written from the notes. Control calls make it
//! pay: `POST /_mock/vnpay/pay` and `POST /_mock/bank/credit`, each able to send copies, to
//! tamper, to use another amount, or (for the bank) to sign with a key the gateway does not know.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use hcc_signing::pki::Identity;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct BankState {
    tmn_code: String,
    hash_secret: String,
    bank: Arc<Identity>,
    /// Another bank's key, for "signed by the wrong bank".
    stranger: Arc<Identity>,
    client: reqwest::Client,
}

impl BankState {
    pub fn new(tmn_code: &str, hash_secret: &str, bank: Identity, stranger: Identity) -> Self {
        BankState {
            tmn_code: tmn_code.into(),
            hash_secret: hash_secret.into(),
            bank: Arc::new(bank),
            stranger: Arc::new(stranger),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

pub fn routes(state: BankState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/_mock/vnpay/pay", web::post().to(vnpay_pay))
            .route("/_mock/bank/credit", web::post().to(credit));
    }
}

pub fn spawn(bind: &str, state: BankState) -> std::io::Result<crate::Running> {
    crate::spawn_server(bind, routes(state))
}

fn one() -> usize {
    1
}

fn ok_code() -> String {
    "00".into()
}

#[derive(Deserialize)]
struct VnpayPay {
    #[serde(rename = "TxnRef")]
    txn_ref: String,
    amount_vnd: u64,
    ipn_url: String,
    #[serde(default = "ok_code")]
    response_code: String,
    #[serde(default = "one")]
    copies: usize,
    #[serde(default)]
    tamper: bool,
}

/// VNPAY's signature: every non-empty vnp_ field but the hash ones, sorted, form-encoded with
/// `+` for spaces, HMAC-SHA512 in hex.
fn vnpay_hash(params: &[(String, String)], secret: &str) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.starts_with("vnp_") && !k.starts_with("vnp_SecureHash"))
        .collect();
    p.sort();
    let data = p
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    hcc_signing::hmac_sha512(secret.as_bytes(), data.as_bytes())
        .map(hex::encode)
        .unwrap_or_default()
}

async fn vnpay_pay(state: web::Data<BankState>, r: web::Json<VnpayPay>) -> HttpResponse {
    let txn = fastrand::u64(10_000_000..99_999_999).to_string();
    let mut params: Vec<(String, String)> = [
        ("vnp_TmnCode", state.tmn_code.clone()),
        ("vnp_Amount", (r.amount_vnd * 100).to_string()),
        ("vnp_BankCode", "NCB".into()),
        ("vnp_BankTranNo", format!("VNP{txn}")),
        ("vnp_CardType", "ATM".into()),
        ("vnp_PayDate", crate::paygov::chrono_like_now()),
        ("vnp_OrderInfo", "Thanh toan le phi ho so".into()),
        ("vnp_TransactionNo", txn.clone()),
        ("vnp_ResponseCode", r.response_code.clone()),
        ("vnp_TransactionStatus", r.response_code.clone()),
        ("vnp_TxnRef", r.txn_ref.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let hash = vnpay_hash(&params, &state.hash_secret);
    if r.tamper {
        params[1].1 = (r.amount_vnd * 100 + 100).to_string();
    }
    params.push(("vnp_SecureHashType".into(), "HmacSHA512".into()));
    params.push(("vnp_SecureHash".into(), hash));
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
    let url = format!("{}?{query}", r.ipn_url);
    let mut replies = Vec::new();
    let sends: Vec<_> = (0..r.copies)
        .map(|_| {
            let (c, u) = (state.client.clone(), url.clone());
            tokio::spawn(async move {
                c.get(&u)
                    .send()
                    .await
                    .ok()
                    .map(|r| async move { r.json::<Value>().await.unwrap_or(Value::Null) })
            })
        })
        .collect();
    for s in sends {
        if let Ok(Some(f)) = s.await {
            replies.push(f.await);
        } else {
            replies.push(Value::Null);
        }
    }
    HttpResponse::Ok().json(json!({"vnp_TransactionNo": txn, "replies": replies}))
}

#[derive(Deserialize)]
struct Credit {
    /// The payment reference to put in EndToEndId (v08) or the remittance information (v02).
    reference: String,
    amount_vnd: u64,
    url: String,
    #[serde(default)]
    reversal: bool,
    #[serde(default)]
    debit: bool,
    #[serde(default = "v08")]
    version: String,
    #[serde(default)]
    tamper: bool,
    #[serde(default)]
    stranger: bool,
    #[serde(default = "one")]
    copies: usize,
    /// The bank's own transaction reference; random when absent.
    bank_ref: Option<String>,
}

fn v08() -> String {
    "08".into()
}

fn camt(c: &Credit, bank_ref: &str) -> String {
    let (ind, rvsl) = (if c.debit { "DBIT" } else { "CRDT" }, if c.reversal { "true" } else { "false" });
    if c.version == "02" {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.02\"><BkToCstmrDbtCdtNtfctn>\
             <GrpHdr><MsgId>MSG{bank_ref}</MsgId><CreDtTm>2024-11-26T10:00:00</CreDtTm></GrpHdr><Ntfctn><Id>N{bank_ref}</Id>\
             <Acct><Id><Othr><Id>0011004123456</Id></Othr></Id></Acct><Ntry><Amt Ccy=\"VND\">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd><RvslInd>{rvsl}</RvslInd>\
             <Sts>BOOK</Sts><BookgDt><Dt>2024-11-26</Dt></BookgDt><AcctSvcrRef>{bank_ref}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>\
             <RltdPties><Dbtr><Nm>NGUYEN THI LAN</Nm></Dbtr></RltdPties><RmtInf><Ustrd>Nop le phi {r}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry></Ntfctn>\
             </BkToCstmrDbtCdtNtfctn></Document>",
            amt = c.amount_vnd,
            r = c.reference
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\">\n  <BkToCstmrDbtCdtNtfctn>\n\
             <GrpHdr><MsgId>MSG{bank_ref}</MsgId><CreDtTm>2024-11-26T10:00:00+07:00</CreDtTm></GrpHdr>\n<Ntfctn><Id>N{bank_ref}</Id>\
             <Acct><Id><Othr><Id>0011004123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>\n<Ntry><NtryRef>1</NtryRef><Amt Ccy=\"VND\">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd>\
             <RvslInd>{rvsl}</RvslInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>2024-11-26T10:00:00+07:00</DtTm></BookgDt><AcctSvcrRef>{bank_ref}</AcctSvcrRef>\
             <NtryDtls><TxDtls><Refs><EndToEndId>{r}</EndToEndId><TxId>{bank_ref}</TxId></Refs><Amt Ccy=\"VND\">{amt}</Amt>\
             <RltdPties><Dbtr><Pty><Nm>NGUYEN THI LAN</Nm></Pty></Dbtr></RltdPties></TxDtls></NtryDtls></Ntry></Ntfctn>\n  </BkToCstmrDbtCdtNtfctn>\n</Document>\n",
            amt = c.amount_vnd,
            r = c.reference
        )
    }
}

async fn credit(state: web::Data<BankState>, c: web::Json<Credit>) -> HttpResponse {
    let bank_ref = c
        .bank_ref
        .clone()
        .unwrap_or_else(|| format!("FT{}", fastrand::u64(100_000_000..999_999_999)));
    let xml = camt(&c, &bank_ref);
    let signer = if c.stranger { &state.stranger } else { &state.bank };
    let mut signed = match hcc_signing::xml::dsig::sign_enveloped(xml.as_bytes(), signer) {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(e) => return HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
    };
    if c.tamper {
        signed = signed.replacen(&format!(">{}</Amt>", c.amount_vnd), &format!(">{}</Amt>", c.amount_vnd * 10), 1);
    }
    let mut replies = Vec::new();
    let sends: Vec<_> = (0..c.copies)
        .map(|_| {
            let (client, url, body) = (state.client.clone(), c.url.clone(), signed.clone());
            tokio::spawn(async move {
                match client.post(&url).header("content-type", "application/xml").body(body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        json!({"status": status, "body": r.json::<Value>().await.unwrap_or(Value::Null)})
                    }
                    Err(e) => json!({"error": e.to_string()}),
                }
            })
        })
        .collect();
    for s in sends {
        replies.push(s.await.unwrap_or(Value::Null));
    }
    HttpResponse::Ok().json(json!({"bank_ref": bank_ref, "replies": replies}))
}
