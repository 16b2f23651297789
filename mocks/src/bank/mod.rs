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
//!
//! The parts: this file holds the state, the routes and the request and document shapes;
//! `camt` writes the camt.054 document; `sign` chooses how it is signed and signs with
//! `xmlsec1`; `handlers` the three endpoints and the delivery they share.

mod camt;
mod handlers;
mod sign;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use hcc_signing::pki::Identity;
use serde::Deserialize;

use handlers::{credit, statement, vietqr};

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
