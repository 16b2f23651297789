//! `mock-bank`: a host-to-host bank sending signed camt.054 notifications, written from the
//! payments notes (§3, "Reading camt.054 right" and "Signing of bank XML"), never from the
//! gateway's adapter; beside it runs the VNPAY stand-in of [`crate::vnpay`].
//!
//! `POST /_mock/bank/credit` builds one notification with one entry and sends it to `url`
//! (`copies` times, concurrently). The document is shaped like a real bank's: `BkTxCd` always,
//! `TxDtls/Refs` with `AcctSvcrRef` and `TxId`, v08 (`Sts/Cd`, `TxDtls/Amt`, `Dbtr/Pty/Nm`) or
//! v02 (`Sts`, `AmtDtls/TxAmt/Amt`, `Dbtr/Nm`). Control fields (JSON):
//!
//! - `reference`, `amount_vnd`: one transaction; or `transactions: [{reference, amount_vnd,
//!   bank_ref?}]`: a batch entry (`NtryDtls/Btch` with `NbOfTxs`, `TtlAmt`; `Ntry/Amt` is the
//!   total), each transaction with its own amount and references.
//! - `url`: where to POST; absent, the document is only built and returned.
//! - `reversal`: the bank takes a credit back, as ISO 20022 writes it: a **DBIT** entry with
//!   `RvslInd` true that repeats the original's `EndToEndId`, `Refs/AcctSvcrRef` and `TxId` (the
//!   original's bank reference is `original_bank_ref`, else the one this mock used when it sent
//!   the credit for that reference, else `bank_ref`). `debit: false` with `reversal` makes it a
//!   CRDT with `RvslInd` true instead (an earlier debit returned). `debit` alone: a plain debit.
//! - `version`: `"08"` (default) or `"02"`. `status`: `BOOK` (default), `PDNG`, `INFO`.
//! - `bank_ref`: the entry's `AcctSvcrRef` (and a single credit's transaction references);
//!   random when absent.
//! - `remittance`: where the reference goes: `"e2e"` (`EndToEndId`, v08 default), `"ustrd"`
//!   (inside a text line, v02 default), `"ustrd_multiline"` (on the second `Ustrd` line),
//!   `"ustrd_split"` (cut across two lines at a fixed width), `"strd"`
//!   (`Strd/CdtrRefInf/Ref`, type `SCOR`), `"addtl_tx"` (only in `TxDtls/AddtlTxInf`, the
//!   transaction's free narrative) or `"addtl_ntry"` (only in `Ntry/AddtlNtryInf`, the entry's;
//!   a single credit only), as some banks write the narrative outside `RmtInf` (payments notes,
//!   "Where the reference may also sit"). Except for `e2e`, `EndToEndId` is `NOTPROVIDED`.
//! - `bktxcd`: `"domain"` (default: `Domn` PMNT/RCDT/DMCT, RRTN for a reversal, ICDT for a
//!   debit) or `"proprietary"` (`Prtry`).
//! - Signing: by default the bank key signs with exclusive C14N and rsa-sha256. Naming any of
//!   `c14n` (`"exclusive"`, `"inclusive"`, `"exclusive_prefixlist"`: exclusive with an
//!   `InclusiveNamespaces PrefixList` as Apache Santuario writes it, `#default` on `SignedInfo`
//!   and `ns2 #default` on the reference, the root declaring an unused `ns2` as JAXB does),
//!   `signature` (`"rsa-sha256"`, `"rsa-sha512"`) or
//!   `digest` (`"sha256"`, `"sha512"`; default: that of `signature`) makes the mock sign as a
//!   third party would, with **`xmlsec1 --sign`** on a template (so the gateway's own signing
//!   code is not both the writer and the reader): inclusive uses the .NET shape (an unprefixed
//!   `Signature`, only the enveloped transform). Those variants need `xmlsec1` installed.
//! - `tamper` (change the entry amount after signing), `stranger` (sign with a key the gateway
//!   does not know), `copies` (1..=100).
//! - `account`: the account the notification reports (`Ntfctn/Acct/Id/Othr/Id`; the agency's
//!   usual one when absent). `refs`: `full` (default), `entry` (no `TxDtls/Refs`, only
//!   `Ntry/AcctSvcrRef`) or `none` (no bank reference at all), as banks that send bare entries
//!   do. `booking_date`: `BookgDt/Dt`.
//!
//! `POST /_mock/bank/statement` sends one document holding several notifications (one per
//! account, e.g. an end-of-day statement, or a feed covering several agencies' accounts), each
//! with several entries in the order given: `{"notifications": [{"account", "entries": [<the
//! credit fields above>]}], "url", "copies", "msg_id", "version"}`.
//!
//! The answer: `{"bank_ref", "document", "replies": [{"status", "body"} | {"error"}]}`.
//!
//! `POST /_mock/bank/vietqr`: a payer scans a VietQR code with their app and transfers; this
//! bank, the beneficiary's, books the credit. The payload is first read and checked as a payer's
//! app would ([`crate::vietqr`], from the VietQR notes): the ID-length-value structure at every
//! level, `00` first, `63` last with the CRC-16/CCITT-FALSE in 4 upper-case hex digits, the NAPAS
//! GUID, a 6-digit BIN, the account, `QRIBFTTA`, `704`, the amount (required when dynamic), `VN`
//! and `62`. A refusal is 400 `{"error"}` naming what is wrong. Then one credit is sent as
//! `/_mock/bank/credit` sends it, to the account of `38/01/01`, for the amount of `54`, with the
//! transfer note as the only `Ustrd` line (`EndToEndId` NOTPROVIDED). Control fields (JSON):
//!
//! - `payload` (required): the scanned text.
//! - `bin`: the NAPAS BIN this bank is; a code naming another bank is refused.
//! - `note_prefix`: the bank wraps the note as `<prefix>.<trace>.<note>` (a random 6-digit
//!   trace), as some banks write their statement lines (VietQR notes, a guess).
//! - `edit_note`: the citizen replaced the pre-filled note with this text.
//! - `amount_vnd`: the citizen paid another amount (or typed one for a static code).
//! - `url`, `bank_ref`, `copies`, `version`, `booking_date`: as for `/_mock/bank/credit`.
//!
//! The answer: that of `/_mock/bank/credit`, with `"ustrd"` (the note as carried) and
//! `"decoded": {"bin", "account", "amount", "purpose", "bill"}` (what the code said; `amount`,
//! `purpose` and `bill` may be null).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use hcc_signing::pki::Identity;
use serde::Deserialize;
use serde_json::{Value, json};

const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const INC_C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";

const MAX_COPIES: usize = 100;
/// The agency account the notifications report unless told otherwise (`config/local.toml`).
const DEFAULT_ACCOUNT: &str = "0011004123456";
/// Notifications and entries of one statement, at most.
const MAX_STATEMENT_ENTRIES: usize = 1000;
const MAX_TRANSACTIONS: usize = 1000;
/// Credits remembered (reference → bank reference) so that a reversal can repeat them.
const MAX_REMEMBERED: usize = 10_000;
/// How long `xmlsec1 --sign` may take.
const XMLSEC_TIMEOUT: Duration = Duration::from_secs(20);
/// Width at which `ustrd_split` cuts the remittance text.
const SPLIT_WIDTH: usize = 35;

#[derive(Clone)]
pub struct BankState {
    vnpay: crate::vnpay::VnpayState,
    bank: Arc<Identity>,
    /// Another bank's key, for "signed by the wrong bank".
    stranger: Arc<Identity>,
    client: reqwest::Client,
    /// reference → the bank reference of the credit this mock sent for it.
    credits: Arc<Mutex<HashMap<String, String>>>,
}

impl BankState {
    pub fn new(tmn_code: &str, hash_secret: &str, bank: Identity, stranger: Identity) -> Self {
        BankState {
            vnpay: crate::vnpay::VnpayState::new(tmn_code, hash_secret),
            bank: Arc::new(bank),
            stranger: Arc::new(stranger),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            credits: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn remembered(&self, reference: &str) -> Option<String> {
        self.credits.lock().ok()?.get(reference).cloned()
    }

    fn remember(&self, reference: &str, bank_ref: &str) {
        if let Ok(mut m) = self.credits.lock() {
            if m.len() >= MAX_REMEMBERED {
                m.clear();
            }
            m.insert(reference.to_string(), bank_ref.to_string());
        }
    }
}

pub fn routes(state: BankState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        crate::vnpay::routes(state.vnpay.clone())(cfg);
        cfg.app_data(web::Data::new(state.clone()))
            .route("/_mock/bank/credit", web::post().to(credit))
            .route("/_mock/bank/statement", web::post().to(statement))
            .route("/_mock/bank/vietqr", web::post().to(vietqr));
    }
}

pub fn spawn(bind: &str, state: BankState) -> std::io::Result<crate::Running> {
    crate::spawn_server(bind, routes(state))
}

fn one() -> usize {
    1
}

fn v08() -> String {
    "08".into()
}

#[derive(Deserialize, Clone)]
struct TxSpec {
    reference: String,
    amount_vnd: u64,
    bank_ref: Option<String>,
}

#[derive(Deserialize)]
struct Credit {
    reference: Option<String>,
    amount_vnd: Option<u64>,
    transactions: Option<Vec<TxSpec>>,
    url: Option<String>,
    #[serde(default)]
    reversal: bool,
    debit: Option<bool>,
    #[serde(default = "v08")]
    version: String,
    status: Option<String>,
    #[serde(default)]
    tamper: bool,
    #[serde(default)]
    stranger: bool,
    #[serde(default = "one")]
    copies: usize,
    bank_ref: Option<String>,
    original_bank_ref: Option<String>,
    remittance: Option<String>,
    bktxcd: Option<String>,
    c14n: Option<String>,
    signature: Option<String>,
    digest: Option<String>,
    /// The account the notification reports; the agency's usual one when absent.
    account: Option<String>,
    /// `full` (default), `entry` (no `TxDtls/Refs`) or `none` (no bank reference at all).
    refs: Option<String>,
    /// `BookgDt/Dt` (yyyy-mm-dd); today when absent.
    booking_date: Option<String>,
}

/// How the document is signed.
struct Signing {
    /// `None`: the bank's usual signer (exclusive C14N, rsa-sha256). `Some`: xmlsec1 with
    /// (SignedInfo C14N, signature method, digest method).
    xmlsec: Option<(&'static str, &'static str, &'static str)>,
}

fn signing(c: &Credit) -> Result<Signing, String> {
    if c.c14n.is_none() && c.signature.is_none() && c.digest.is_none() {
        return Ok(Signing { xmlsec: None });
    }
    let c14n = match c.c14n.as_deref().unwrap_or("exclusive") {
        "exclusive" => EXC_C14N,
        "inclusive" => INC_C14N,
        "exclusive_prefixlist" => EXC_PREFIXLIST,
        other => return Err(format!("c14n {other:?}: exclusive, inclusive or exclusive_prefixlist")),
    };
    let (sig, default_digest) = match c.signature.as_deref().unwrap_or("rsa-sha256") {
        "rsa-sha256" => (RSA_SHA256, SHA256),
        "rsa-sha512" => (RSA_SHA512, SHA512),
        other => return Err(format!("signature {other:?}: rsa-sha256 or rsa-sha512")),
    };
    let digest = match c.digest.as_deref() {
        None => default_digest,
        Some("sha256") => SHA256,
        Some("sha512") => SHA512,
        Some(other) => return Err(format!("digest {other:?}: sha256 or sha512")),
    };
    Ok(Signing {
        xmlsec: Some((c14n, sig, digest)),
    })
}

/// One transaction as it will be written.
struct Tx {
    reference: String,
    amount_vnd: u64,
    /// `TxDtls/Refs/AcctSvcrRef` and `TxId`: the transaction's own bank reference, or for a
    /// reversal the original credit's.
    refs: String,
}

/// Everything the document needs, decided from the request.
struct Shape {
    v02: bool,
    debit: bool,
    reversal: bool,
    status: String,
    entry_ref: String,
    txs: Vec<Tx>,
    batch: bool,
    remittance: String,
    proprietary: bool,
    created: String,
    date: String,
    /// The account the notification reports (credited, or debited for a reversal).
    account: String,
    refs: Refs,
    /// A VietQR transfer's note, exactly as the bank carries it: the only `Ustrd` line, and
    /// `EndToEndId` NOTPROVIDED (`/_mock/bank/vietqr`).
    note: Option<String>,
}

/// How much of its references the bank writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refs {
    /// `TxDtls/Refs` (`AcctSvcrRef`, `EndToEndId`, `TxId`) and `Ntry/AcctSvcrRef`.
    Full,
    /// No `TxDtls/Refs`; only `Ntry/AcctSvcrRef`.
    Entry,
    /// No bank reference at all.
    None,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `yyyyMMddHHmmss` (Vietnam time) to `(yyyy-MM-ddTHH:mm:ss+07:00, yyyy-MM-dd)`.
fn iso_now() -> (String, String) {
    let t = crate::paygov::chrono_like_now();
    if t.len() != 14 {
        return ("2026-11-25T10:00:00+07:00".into(), "2026-11-25".into());
    }
    let date = format!("{}-{}-{}", &t[0..4], &t[4..6], &t[6..8]);
    (format!("{date}T{}:{}:{}+07:00", &t[8..10], &t[10..12], &t[12..14]), date)
}

fn shape(state: &BankState, c: &Credit) -> Result<Shape, String> {
    let v02 = match c.version.as_str() {
        "08" => false,
        "02" => true,
        other => return Err(format!("version {other:?}: 08 or 02")),
    };
    // ISO 20022: RvslInd qualifies CdtDbtInd against the original booking, so the reversal of a
    // credit is a DBIT entry.
    let debit = c.debit.unwrap_or(c.reversal);
    let status = c.status.clone().unwrap_or_else(|| "BOOK".into());
    if !matches!(status.as_str(), "BOOK" | "PDNG" | "INFO") {
        return Err(format!("status {status:?}: BOOK, PDNG or INFO"));
    }
    let entry_ref = c
        .bank_ref
        .clone()
        .unwrap_or_else(|| format!("FT{}", fastrand::u64(100_000_000..999_999_999)));
    let (specs, batch) = match (&c.transactions, &c.reference, c.amount_vnd) {
        (Some(t), _, _) if !t.is_empty() && t.len() <= MAX_TRANSACTIONS => (t.clone(), true),
        (Some(_), _, _) => return Err(format!("transactions: 1 to {MAX_TRANSACTIONS}")),
        (None, Some(r), Some(a)) => (
            vec![TxSpec {
                reference: r.clone(),
                amount_vnd: a,
                bank_ref: Some(entry_ref.clone()),
            }],
            false,
        ),
        (None, _, _) => return Err("give reference and amount_vnd, or transactions".into()),
    };
    let credit = !debit && !c.reversal;
    let reversal_of_credit = debit && c.reversal;
    let txs = specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let own = s.bank_ref.clone().unwrap_or_else(|| format!("{entry_ref}-{}", i + 1));
            let refs = if reversal_of_credit {
                c.original_bank_ref
                    .clone()
                    .filter(|_| !batch)
                    .or_else(|| state.remembered(&s.reference))
                    .unwrap_or(own)
            } else {
                own
            };
            Tx {
                reference: s.reference,
                amount_vnd: s.amount_vnd,
                refs,
            }
        })
        .collect::<Vec<_>>();
    if credit {
        for t in &txs {
            state.remember(&t.reference, &t.refs);
        }
    }
    let bare = c.refs.as_deref().is_some_and(|r| r != "full");
    let remittance = c
        .remittance
        .clone()
        .unwrap_or_else(|| if v02 || bare { "ustrd" } else { "e2e" }.into());
    if bare && remittance == "e2e" {
        return Err("remittance \"e2e\" needs refs \"full\": EndToEndId sits in TxDtls/Refs".into());
    }
    if !matches!(
        remittance.as_str(),
        "e2e" | "ustrd" | "ustrd_multiline" | "ustrd_split" | "strd" | "addtl_tx" | "addtl_ntry"
    ) {
        return Err(format!(
            "remittance {remittance:?}: e2e, ustrd, ustrd_multiline, ustrd_split, strd, addtl_tx or addtl_ntry"
        ));
    }
    if remittance == "addtl_ntry" && batch {
        return Err("remittance \"addtl_ntry\": the entry's narrative belongs to a single credit".into());
    }
    let proprietary = match c.bktxcd.as_deref().unwrap_or("domain") {
        "domain" => false,
        "proprietary" => true,
        other => return Err(format!("bktxcd {other:?}: domain or proprietary")),
    };
    let (created, today) = iso_now();
    let date = match &c.booking_date {
        Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit() || b == b'-') => d.clone(),
        Some(d) => return Err(format!("booking_date {d:?}: yyyy-mm-dd")),
        None => today,
    };
    let refs = match c.refs.as_deref().unwrap_or("full") {
        "full" => Refs::Full,
        "entry" => Refs::Entry,
        "none" => Refs::None,
        other => return Err(format!("refs {other:?}: full, entry or none")),
    };
    let account = c.account.clone().unwrap_or_else(|| DEFAULT_ACCOUNT.into());
    if account.is_empty() || account.len() > 34 {
        return Err("account: 1 to 34 characters".into());
    }
    Ok(Shape {
        v02,
        debit,
        reversal: c.reversal,
        status,
        entry_ref,
        txs,
        batch,
        remittance,
        proprietary,
        created,
        date,
        account,
        refs,
        note: None,
    })
}

/// The bank transaction code (ISO external code sets: domain PMNT, family RCDT received /
/// ICDT issued credit transfers; sub-family DMCT domestic, RRTN reversal).
fn bktxcd(s: &Shape) -> String {
    if s.proprietary {
        return "<BkTxCd><Prtry><Cd>NTRF</Cd><Issr>MOCKBANK</Issr></Prtry></BkTxCd>".into();
    }
    let (fmly, sub) = match (s.debit, s.reversal) {
        (true, true) => ("RCDT", "RRTN"),
        (false, true) => ("ICDT", "RRTN"),
        (true, false) => ("ICDT", "DMCT"),
        (false, false) => ("RCDT", "DMCT"),
    };
    format!("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{fmly}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn></BkTxCd>")
}

/// The `EndToEndId` value, `RmtInf` and `AddtlTxInf` for one transaction.
fn remittance(s: &Shape, reference: &str) -> (String, String, String) {
    if let Some(note) = &s.note {
        let rmt = if note.is_empty() {
            String::new()
        } else {
            format!("<RmtInf><Ustrd>{}</Ustrd></RmtInf>", esc(note))
        };
        return ("NOTPROVIDED".into(), rmt, String::new());
    }
    let r = esc(reference);
    let (e2e, rmt) = match s.remittance.as_str() {
        "e2e" => (r.clone(), "<RmtInf><Ustrd>NGUYEN THI LAN chuyen tien</Ustrd></RmtInf>".into()),
        "ustrd" => (
            "NOTPROVIDED".into(),
            format!("<RmtInf><Ustrd>Nop {r} le phi cap GCN</Ustrd></RmtInf>"),
        ),
        "ustrd_multiline" => (
            "NOTPROVIDED".into(),
            format!("<RmtInf><Ustrd>NGUYEN THI LAN CHUYEN KHOAN QUA MOBILE BANKING</Ustrd><Ustrd>{r} le phi cap GCN</Ustrd></RmtInf>"),
        ),
        "ustrd_split" => {
            // A bank that wraps long descriptions at a fixed width, mid-word.
            let text: Vec<char> = format!("THANH TOAN LE PHI HO SO {reference} CAP GCN").chars().collect();
            let lines: String = text
                .chunks(SPLIT_WIDTH)
                .map(|c| format!("<Ustrd>{}</Ustrd>", esc(&c.iter().collect::<String>())))
                .collect();
            ("NOTPROVIDED".into(), format!("<RmtInf>{lines}</RmtInf>"))
        }
        // The narrative sits outside RmtInf (AddtlTxInf or AddtlNtryInf, written elsewhere);
        // RmtInf then carries only the payer's own words.
        "addtl_tx" | "addtl_ntry" => (
            "NOTPROVIDED".into(),
            "<RmtInf><Ustrd>NGUYEN THI LAN chuyen tien</Ustrd></RmtInf>".into(),
        ),
        _ => (
            "NOTPROVIDED".into(),
            format!("<RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{r}</Ref></CdtrRefInf></Strd></RmtInf>"),
        ),
    };
    let addtl = if s.remittance == "addtl_tx" {
        format!("<AddtlTxInf>CK {r} LE PHI HO SO</AddtlTxInf>")
    } else {
        String::new()
    };
    (e2e, rmt, addtl)
}

/// One `Ntry`, with its transactions, as the shape says.
fn ntry(s: &Shape) -> String {
    let (ind, rvsl) = (if s.debit { "DBIT" } else { "CRDT" }, if s.reversal { "true" } else { "false" });
    let total: u64 = s.txs.iter().map(|t| t.amount_vnd).sum();
    let entry_ref = esc(&s.entry_ref);
    let sts = if s.v02 {
        format!("<Sts>{}</Sts>", s.status)
    } else {
        format!("<Sts><Cd>{}</Cd></Sts>", s.status)
    };
    let mut details = String::new();
    if s.batch {
        details.push_str(&format!(
            "<Btch><NbOfTxs>{}</NbOfTxs><TtlAmt Ccy=\"VND\">{total}</TtlAmt><CdtDbtInd>{ind}</CdtDbtInd></Btch>",
            s.txs.len()
        ));
    }
    for t in &s.txs {
        let (e2e, rmt, addtl) = remittance(s, &t.reference);
        let refs = esc(&t.refs);
        let amt = t.amount_vnd;
        let (amount, party, agent) = if s.v02 {
            (
                format!("<AmtDtls><TxAmt><Amt Ccy=\"VND\">{amt}</Amt></TxAmt></AmtDtls>"),
                "<RltdPties><Dbtr><Nm>NGUYEN THI LAN</Nm></Dbtr></RltdPties>",
                "<RltdAgts><DbtrAgt><FinInstnId><BIC>BFTVVNVX</BIC></FinInstnId></DbtrAgt></RltdAgts>",
            )
        } else {
            (
                format!("<Amt Ccy=\"VND\">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd>"),
                "<RltdPties><Dbtr><Pty><Nm>NGUYEN THI LAN</Nm></Pty></Dbtr></RltdPties>",
                "<RltdAgts><DbtrAgt><FinInstnId><BICFI>BFTVVNVX</BICFI></FinInstnId></DbtrAgt></RltdAgts>",
            )
        };
        // `Refs` as the bank writes it: whole, or (refs "entry"/"none") absent, as some banks
        // send a single credit; EndToEndId then has nowhere to go but the remittance text.
        let refs_xml = match s.refs {
            Refs::Full => format!("<Refs><AcctSvcrRef>{refs}</AcctSvcrRef><EndToEndId>{e2e}</EndToEndId><TxId>{refs}</TxId></Refs>"),
            Refs::Entry | Refs::None => String::new(),
        };
        details.push_str(&format!(
            "\n          <TxDtls>{refs_xml}{amount}{party}{agent}{rmt}{addtl}</TxDtls>"
        ));
    }
    let date = &s.date;
    let entry_acct_svcr_ref = match s.refs {
        Refs::None => String::new(),
        Refs::Full | Refs::Entry => format!("<AcctSvcrRef>{entry_ref}</AcctSvcrRef>"),
    };
    // AddtlNtryInf follows NtryDtls in the schema's order.
    let addtl_ntry = match (s.remittance.as_str(), s.txs.first()) {
        ("addtl_ntry", Some(t)) => format!("<AddtlNtryInf>IBFT {} NOP LE PHI</AddtlNtryInf>", esc(&t.reference)),
        _ => String::new(),
    };
    format!(
        "\n      <Ntry><NtryRef>1</NtryRef><Amt Ccy=\"VND\">{total}</Amt><CdtDbtInd>{ind}</CdtDbtInd><RvslInd>{rvsl}</RvslInd>{sts}\
         <BookgDt><Dt>{date}</Dt></BookgDt><ValDt><Dt>{date}</Dt></ValDt>{entry_acct_svcr_ref}{bktxcd}\n        \
         <NtryDtls>{details}\n        </NtryDtls>{addtl_ntry}</Ntry>",
        bktxcd = bktxcd(s)
    )
}

/// A whole camt.054 document: one `Ntfctn` per (account, its `Ntry` elements).
fn document(v02: bool, msg_id: &str, created: &str, notifications: &[(String, Vec<String>)]) -> String {
    let ns = if v02 { "02" } else { "08" };
    let mut body = String::new();
    for (i, (account, entries)) in notifications.iter().enumerate() {
        let ntfctn_created = if v02 {
            format!("<CreDtTm>{created}</CreDtTm>")
        } else {
            String::new()
        };
        body.push_str(&format!(
            "\n    <Ntfctn><Id>N{msg}-{i}</Id>{ntfctn_created}<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>VND</Ccy></Acct>{entries}\n    </Ntfctn>",
            msg = esc(msg_id),
            account = esc(account),
            entries = entries.concat()
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.{ns}\">\n  <BkToCstmrDbtCdtNtfctn>\n    \
         <GrpHdr><MsgId>MSG{msg}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>{body}\n  </BkToCstmrDbtCdtNtfctn>\n</Document>\n",
        msg = esc(msg_id)
    )
}

fn camt(s: &Shape) -> String {
    document(s.v02, &s.entry_ref, &s.created, &[(s.account.clone(), vec![ntry(s)])])
}

/// Not an algorithm: the mock's name for exclusive C14N with an `InclusiveNamespaces
/// PrefixList`, as Apache Santuario (the Java default) writes it (payments notes, evidence
/// 2026-12). The document then carries, like a JAXB-marshalled one, a namespace declared on the
/// root that nothing uses ([`JAVA_NS`]); exclusive C14N keeps it only because it is listed.
const EXC_PREFIXLIST: &str = "exclusive_prefixlist";
/// The extra root declaration of [`EXC_PREFIXLIST`] documents.
const JAVA_NS: &str = "xmlns:ns2=\"urn:example:mock-bank:jaxb\"";

/// An unsigned XML-DSig template for `xmlsec1 --sign`, as the root's last child. Inclusive:
/// the shape .NET's SignedXml writes (unprefixed, only the enveloped transform, so the
/// reference is canonicalized by XML-DSig's default, inclusive C14N).
fn template(c14n: &str, sig: &str, digest: &str) -> String {
    if c14n == EXC_PREFIXLIST {
        let list = |l: &str| format!("<ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"{l}\"/>");
        return format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\">{si}</ds:CanonicalizationMethod>\
             <ds:SignatureMethod Algorithm=\"{sig}\"/><ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"/>\
             <ds:Transform Algorithm=\"{EXC_C14N}\">{r}</ds:Transform></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>\
             <ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>",
            si = list("#default"),
            r = list("ns2 #default"),
        );
    }
    let (p, decl, transform) = if c14n == INC_C14N {
        ("", format!("xmlns=\"{DSIG_NS}\""), String::new())
    } else {
        (
            "ds:",
            format!("xmlns:ds=\"{DSIG_NS}\""),
            format!("<ds:Transform Algorithm=\"{EXC_C14N}\"/>"),
        )
    };
    format!(
        "<{p}Signature {decl}><{p}SignedInfo><{p}CanonicalizationMethod Algorithm=\"{c14n}\"/><{p}SignatureMethod Algorithm=\"{sig}\"/>\
         <{p}Reference URI=\"\"><{p}Transforms><{p}Transform Algorithm=\"{ENVELOPED}\"/>{transform}</{p}Transforms>\
         <{p}DigestMethod Algorithm=\"{digest}\"/><{p}DigestValue/></{p}Reference></{p}SignedInfo><{p}SignatureValue/>\
         <{p}KeyInfo><{p}X509Data/></{p}KeyInfo></{p}Signature>"
    )
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Signs with `xmlsec1 --sign`, the bank key and certificate written to a scratch folder.
async fn xmlsec_sign(xml: &str, signer: &Identity, algorithms: (&str, &str, &str)) -> Result<String, String> {
    let at = xml.rfind("</Document>").ok_or("the document has no </Document>")?;
    let mut tmpl = format!("{}{}{}", &xml[..at], template(algorithms.0, algorithms.1, algorithms.2), &xml[at..]);
    if algorithms.0 == EXC_PREFIXLIST {
        tmpl = tmpl.replacen("<Document xmlns=", &format!("<Document {JAVA_NS} xmlns="), 1);
    }
    let dir = Scratch(std::env::temp_dir().join(format!("mock-bank-{}-{}", std::process::id(), fastrand::u64(..))));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let hcc_signing::key::SigningKey::Software(key) = &signer.key else {
        return Err("xmlsec1 needs the bank's key as a file: a token key cannot be used here".into());
    };
    let key = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    let cert = signer.cert.to_pem().map_err(|e| e.to_string())?;
    let (key_path, cert_path, tmpl_path, out_path) = (
        dir.0.join("key.pem"),
        dir.0.join("cert.pem"),
        dir.0.join("tmpl.xml"),
        dir.0.join("out.xml"),
    );
    for (p, b) in [(&key_path, &key), (&cert_path, &cert), (&tmpl_path, &tmpl.clone().into_bytes())] {
        std::fs::write(p, b).map_err(|e| e.to_string())?;
    }
    let keys = format!("{},{}", key_path.display(), cert_path.display());
    let run = tokio::process::Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &keys, "--output"])
        .arg(&out_path)
        .arg(&tmpl_path)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(XMLSEC_TIMEOUT, run).await {
        Err(_) => return Err("xmlsec1 --sign timed out".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("this signing variant needs xmlsec1 (apt-get install -y xmlsec1), which is not installed".into());
        }
        Ok(Err(e)) => return Err(format!("cannot run xmlsec1: {e}")),
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        return Err(format!("xmlsec1 --sign failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::read_to_string(&out_path).map_err(|e| e.to_string())
}

async fn credit(state: web::Data<BankState>, c: web::Json<Credit>) -> HttpResponse {
    let bad = |m: String| HttpResponse::BadRequest().json(json!({"error": m}));
    if c.copies == 0 || c.copies > MAX_COPIES {
        return bad(format!("copies: 1 to {MAX_COPIES}"));
    }
    let how = match signing(&c) {
        Ok(h) => h,
        Err(m) => return bad(m),
    };
    let s = match shape(&state, &c) {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    let total: u64 = s.txs.iter().map(|t| t.amount_vnd).sum();
    let tamper = c.tamper.then_some(total);
    send(&state, camt(&s), &how, c.stranger, tamper, c.url.as_deref(), c.copies, &s.entry_ref).await
}

/// `POST /_mock/bank/statement`: one document holding several notifications (one per account),
/// each with several entries, in the order given, as an end-of-day statement or a feed that
/// covers several agencies' accounts:
/// `{"url"?, "version"?, "msg_id"?, "copies"?, "notifications": [{"account", "entries": [<a
/// credit request's fields: reference, amount_vnd, bank_ref, refs, remittance, reversal, debit,
/// original_bank_ref, booking_date, status>]}]}`.
#[derive(Deserialize)]
struct Statement {
    url: Option<String>,
    #[serde(default = "v08")]
    version: String,
    msg_id: Option<String>,
    #[serde(default = "one")]
    copies: usize,
    notifications: Vec<StatementNotification>,
}

#[derive(Deserialize)]
struct StatementNotification {
    account: String,
    entries: Vec<Value>,
}

async fn statement(state: web::Data<BankState>, st: web::Json<Statement>) -> HttpResponse {
    let bad = |m: String| HttpResponse::BadRequest().json(json!({"error": m}));
    if st.copies == 0 || st.copies > MAX_COPIES {
        return bad(format!("copies: 1 to {MAX_COPIES}"));
    }
    let count: usize = st.notifications.iter().map(|n| n.entries.len()).sum();
    if st.notifications.is_empty() || count > MAX_STATEMENT_ENTRIES {
        return bad(format!(
            "notifications: 1 or more, with at most {MAX_STATEMENT_ENTRIES} entries in all"
        ));
    }
    let mut notifications = Vec::new();
    let mut v02 = false;
    for n in &st.notifications {
        let mut entries = Vec::new();
        for e in &n.entries {
            let mut e = e.clone();
            e["version"] = json!(st.version);
            e["account"] = json!(n.account);
            let c: Credit = match serde_json::from_value(e) {
                Ok(c) => c,
                Err(err) => return bad(format!("entry: {err}")),
            };
            let s = match shape(&state, &c) {
                Ok(s) => s,
                Err(m) => return bad(m),
            };
            v02 = s.v02;
            entries.push(ntry(&s));
        }
        notifications.push((n.account.clone(), entries));
    }
    let msg_id = st
        .msg_id
        .clone()
        .unwrap_or_else(|| format!("EOD{}", fastrand::u64(100_000_000..999_999_999)));
    let (created, _) = iso_now();
    let xml = document(v02, &msg_id, &created, &notifications);
    send(
        &state,
        xml,
        &Signing { xmlsec: None },
        false,
        None,
        st.url.as_deref(),
        st.copies,
        &msg_id,
    )
    .await
}

/// Signs `xml` as the bank (or a stranger), optionally tampers with it after signing, and sends
/// it `copies` times to `url` (concurrently); answers with the document and the replies.
#[allow(clippy::too_many_arguments)]
async fn send(
    state: &BankState,
    xml: String,
    how: &Signing,
    stranger: bool,
    tamper_total: Option<u64>,
    url: Option<&str>,
    copies: usize,
    bank_ref: &str,
) -> HttpResponse {
    match deliver(state, xml, how, stranger, tamper_total, url, copies, bank_ref).await {
        Ok(answer) => HttpResponse::Ok().json(answer),
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e})),
    }
}

/// [`send`]'s work: the answer's JSON, or why the document could not be signed.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    state: &BankState,
    xml: String,
    how: &Signing,
    stranger: bool,
    tamper_total: Option<u64>,
    url: Option<&str>,
    copies: usize,
    bank_ref: &str,
) -> Result<Value, String> {
    let signer = if stranger { &state.stranger } else { &state.bank };
    let signed = match how.xmlsec {
        None => hcc_signing::xml::dsig::sign_enveloped(xml.as_bytes(), signer)
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .map_err(|e| e.to_string()),
        Some(algorithms) => xmlsec_sign(&xml, signer, algorithms).await,
    };
    let mut signed = signed?;
    if let Some(total) = tamper_total {
        signed = signed.replacen(
            &format!(">{total}</Amt>"),
            &format!(">{}</Amt>", total.saturating_mul(10).max(1)),
            1,
        );
    }
    let mut replies = Vec::new();
    if let Some(url) = url {
        let sends: Vec<_> = (0..copies)
            .map(|_| {
                let (client, url, body) = (state.client.clone(), url.to_string(), signed.clone());
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
        for send in sends {
            replies.push(send.await.unwrap_or(Value::Null));
        }
    }
    Ok(json!({"bank_ref": bank_ref, "document": signed, "replies": replies}))
}

/// `POST /_mock/bank/vietqr`: a payer scans a VietQR code and transfers; the mock bank (the
/// beneficiary's) books the credit. See the module documentation for the fields.
#[derive(Deserialize)]
struct VietqrScan {
    payload: String,
    url: Option<String>,
    /// The bank's own wrapper: the note is carried as `<prefix>.<trace>.<note>`.
    note_prefix: Option<String>,
    /// The note as the citizen edited it, instead of `62/08`.
    edit_note: Option<String>,
    /// The amount the citizen typed, instead of `54`.
    amount_vnd: Option<u64>,
    bank_ref: Option<String>,
    #[serde(default = "one")]
    copies: usize,
    #[serde(default = "v08")]
    version: String,
    booking_date: Option<String>,
    /// The NAPAS BIN this bank is: a code naming another bank is refused.
    bin: Option<String>,
}

/// ISO 20022 `Max140Text`: the longest `Ustrd` line.
const MAX_USTRD: usize = 140;

async fn vietqr(state: web::Data<BankState>, q: web::Json<VietqrScan>) -> HttpResponse {
    let bad = |m: String| HttpResponse::BadRequest().json(json!({"error": m}));
    if q.copies == 0 || q.copies > MAX_COPIES {
        return bad(format!("copies: 1 to {MAX_COPIES}"));
    }
    let decoded = match crate::vietqr::decode(&q.payload) {
        Ok(d) => d,
        Err(e) => return bad(e.to_string()),
    };
    if let Some(bin) = &q.bin {
        if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("bin {bin:?}: this bank's NAPAS BIN, 6 digits"));
        }
        if *bin != decoded.bin {
            return bad(format!(
                "bank BIN {} in 38/01/00 is not this bank's ({bin}): the transfer would go to another bank",
                decoded.bin
            ));
        }
    }
    let amount = match (q.amount_vnd, decoded.amount) {
        (Some(0), _) => return bad("amount_vnd: more than 0".into()),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return bad("a static code (no 54): give amount_vnd, the amount the payer types".into()),
    };
    // The transfer note: what the app pre-filled from 62/08, or what the citizen typed instead,
    // then wrapped as the bank writes its statement lines.
    let note = q.edit_note.clone().unwrap_or_else(|| decoded.purpose.clone().unwrap_or_default());
    let ustrd = match &q.note_prefix {
        Some(prefix) => format!("{prefix}.{}.{note}", fastrand::u64(100_000..1_000_000)),
        None => note,
    };
    if ustrd.chars().count() > MAX_USTRD {
        return bad(format!(
            "the note as carried is {} characters: Ustrd holds at most {MAX_USTRD}",
            ustrd.chars().count()
        ));
    }
    // What a later reversal (`/_mock/bank/credit` with `reversal`) names: the bill number, else
    // the purpose's first word (the gateway's reference).
    let reference = decoded
        .bill
        .clone()
        .or_else(|| {
            decoded
                .purpose
                .as_deref()
                .and_then(|p| p.split_whitespace().next())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let c = Credit {
        reference: Some(reference),
        amount_vnd: Some(amount),
        transactions: None,
        url: q.url.clone(),
        reversal: false,
        debit: None,
        version: q.version.clone(),
        status: None,
        tamper: false,
        stranger: false,
        copies: q.copies,
        bank_ref: q.bank_ref.clone(),
        original_bank_ref: None,
        remittance: Some("ustrd".into()),
        bktxcd: None,
        c14n: None,
        signature: None,
        digest: None,
        account: Some(decoded.account.clone()),
        refs: None,
        booking_date: q.booking_date.clone(),
    };
    let mut s = match shape(&state, &c) {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    s.note = Some(ustrd.clone());
    let how = Signing { xmlsec: None };
    match deliver(&state, camt(&s), &how, false, None, c.url.as_deref(), c.copies, &s.entry_ref).await {
        Ok(mut answer) => {
            answer["decoded"] = json!({
                "bin": decoded.bin,
                "account": decoded.account,
                "amount": decoded.amount,
                "purpose": decoded.purpose,
                "bill": decoded.bill,
            });
            answer["ustrd"] = json!(ustrd);
            HttpResponse::Ok().json(answer)
        }
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e})),
    }
}
