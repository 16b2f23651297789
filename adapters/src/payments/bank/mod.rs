//! The `banks` provider: banks that send signed ISO 20022 camt.054 notifications of the
//! payments into the agency's accounts. Each bank is configured under `[banks.<id>]` with its
//! pinned certificate; a notification's signature is checked, its transactions are read
//! ([`camt054::transactions`]), and each becomes a notice (or says why it touches no fee);
//! what a notice does to a payment is decided by the gateway.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hcc_config::Problem;
use hcc_signing::pki::TrustStore;
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{self, DsigError, XmlTrust};
use openssl::x509::X509;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{
    Applied, BankEntry, BuildContext, CallbackHead, CallbackMethod, CallbackProblem, CallbackRoute, Notice, Parsed, PaymentCreator,
    PaymentProvider, ProviderKind, ProviderSettings, Reconciler, Refused, Reply, StoreFailed, problem, settings_if_on,
};
use crate::BoxFuture;

pub mod camt054;

use camt054::{Direction, RootError, Transaction, check_root, transactions};

// One provider for every configured bank, rather than one per bank: the banks share one
// protocol, one settings section (`[banks.<id>]`), one route template with the bank's id in it,
// and a provider id must be fixed before configuration is read (it names the registry entry and
// the section). Each bank is still its own source of confirmations (`bank:<id>`), with its own
// pinned certificate and its own verification permits.

pub const ID: &str = "banks";

/// camt.054 signature verifications running at once for one bank, at most. A real bank sends a
/// notification at a time; verification (parse, canonicalisation, RSA) is the costly part of an
/// endpoint anyone can call, so a flood under one bank id waits its turn instead of taking every
/// core. See docs/bank-xml.md.
pub const BANK_VERIFICATIONS: usize = 4;
/// Seconds a bank is asked to wait when its verifications are all taken (`Retry-After`).
const BANK_BUSY_RETRY_SECS: u64 = 1;

/// One `[banks.<id>]` section.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BankSettings {
    /// Path to the bank's signing certificate (PEM).
    pub cert: String,
    /// The bank's 6-digit NAPAS BIN: when set, this bank's credits pay only agencies whose
    /// `ma_nh_thu_huong` is this BIN.
    pub bin: String,
}

/// The `[banks]` section: every bank that sends camt.054, by id.
pub type BanksSettings = BTreeMap<String, BankSettings>;

/// Everything the types cannot say, by key. Production refuses pinned bank certificates with
/// no trust store: then no chain and no CRL is checked.
impl ProviderSettings for BanksSettings {
    /// Banks are on when at least one is configured.
    fn is_on(&self) -> bool {
        !self.is_empty()
    }

    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem> {
        banks_problems(self, ctx)
    }
}

pub fn banks_problems(banks: &BanksSettings, ctx: &BuildContext<'_>) -> Vec<Problem> {
    let mut p = Vec::new();
    for id in banks.keys() {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            p.push(problem(format!("banks.{id}"), "bank ids are lowercase [a-z0-9_-]+"));
        }
    }
    for (id, b) in banks {
        let is_bin = b.bin.len() == 6 && b.bin.bytes().all(|c| c.is_ascii_digit());
        if !b.bin.is_empty() && !is_bin {
            p.push(problem(format!("banks.{id}.bin"), "a NAPAS BIN is 6 digits"));
        }
    }
    if ctx.production && !banks.is_empty() && ctx.trust_ca_dir.trim().is_empty() {
        p.push(problem(
            "trust.ca_dir",
            "is empty while bank certificates are pinned: without it no chain or CRL is checked",
        ));
    }
    p
}

/// The banks as the registry lists them.
pub const KIND: ProviderKind = ProviderKind {
    id: ID,
    routes: &[CallbackRoute {
        method: CallbackMethod::Post,
        path: "/v1/callbacks/banks/{bank_id}/camt054",
        operation: CAMT054_OPERATION,
        // A notification lists up to 10,000 transactions: the configured server.body_limit_bytes.
        body_limit: None,
    }],
    creates: None,
    build: build_provider,
};

const CAMT054_OPERATION: &str = r##"{
    "summary": "A bank's signed ISO 20022 camt.054 notification (authenticated by its XML-DSig signature, no API key)",
    "description": "The order is the cost: the bank id, the content type, the size, the root element, a permit for this bank, and only then parsing, canonicalisation and the signature by the bank's pinned certificate.",
    "tags": [
        "callbacks"
    ],
    "parameters": [
        {
            "in": "path",
            "name": "bank_id",
            "required": true,
            "description": "A configured bank",
            "schema": {
                "type": "string"
            }
        }
    ],
    "requestBody": {
        "required": true,
        "description": "A signed camt.054 document",
        "content": {
            "application/xml": {
                "schema": {
                    "type": "string"
                }
            }
        }
    },
    "responses": {
        "200": {
            "description": "What each transaction did",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [
                            "bank",
                            "signer",
                            "entries"
                        ],
                        "properties": {
                            "bank": {
                                "type": "string"
                            },
                            "signer": {
                                "type": "string"
                            },
                            "entries": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": [
                                        "entry",
                                        "transaction",
                                        "outcome"
                                    ],
                                    "properties": {
                                        "entry": {
                                            "type": "integer",
                                            "minimum": 0
                                        },
                                        "transaction": {
                                            "type": "integer",
                                            "minimum": 0
                                        },
                                        "MaThamChieu": {
                                            "type": [
                                                "string",
                                                "null"
                                            ]
                                        },
                                        "bank_transaction": {
                                            "type": [
                                                "string",
                                                "null"
                                            ]
                                        },
                                        "amount": {
                                            "type": [
                                                "integer",
                                                "null"
                                            ],
                                            "minimum": 0
                                        },
                                        "outcome": {
                                            "type": "string"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
        "400": {
            "description": "Not well-formed XML, or it has a DOCTYPE"
        },
        "401": {
            "description": "The signature or the signer's certificate does not verify"
        },
        "404": {
            "description": "No bank with this id is configured"
        },
        "413": {
            "description": "The body is larger than the configured limit"
        },
        "415": {
            "description": "The body is not application/xml"
        },
        "422": {
            "description": "Not a camt.054 document, or one that cannot be read"
        },
        "503": {
            "description": "Banks are not configured, this bank's verifications are all taken (Retry-After), or the queue backend is unavailable"
        }
    }
}"##;

fn build_provider(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let Some(settings) = settings_if_on::<BanksSettings>(ctx)? else {
        return Ok(None);
    };
    let mut banks = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, b) in &settings {
        let key = format!("banks.{id}.cert");
        match std::fs::read(&b.cert) {
            Ok(pem) => match X509::from_pem(&pem) {
                Ok(cert) => {
                    banks.insert(
                        id.clone(),
                        Bank {
                            cert,
                            bin: Some(b.bin.clone()).filter(|b| !b.is_empty()),
                            verifications: Arc::new(Semaphore::new(BANK_VERIFICATIONS)),
                        },
                    );
                }
                Err(_) => problems.push(problem(key, "not a PEM certificate")),
            },
            Err(e) => problems.push(problem(key, format!("cannot read {}: {e}", b.cert))),
        }
    }
    // The same store the signature API checks with: a pinned certificate must also chain to it.
    let trust = if ctx.trust_ca_dir.is_empty() {
        None
    } else {
        match TrustStore::from_dir(Path::new(ctx.trust_ca_dir)) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(problem("trust.ca_dir", e.to_string()));
                None
            }
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Some(Arc::new(Banks {
        banks,
        trust: trust.map(Arc::new),
    })))
}

struct Bank {
    cert: X509,
    /// `banks.<id>.bin`.
    bin: Option<String>,
    /// The permits for this bank's concurrent verifications.
    verifications: Arc<Semaphore>,
}

/// The configured banks.
pub struct Banks {
    banks: BTreeMap<String, Bank>,
    trust: Option<Arc<TrustStore>>,
}

/// Whether the media type is XML's.
fn is_xml(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m == "application/xml" || m == "text/xml" || m.ends_with("+xml"))
}

fn invalid(message: String) -> Refused {
    Refused::new(
        Reply::Problem(CallbackProblem::Invalid {
            pointer: "/Document".into(),
            message: message.clone(),
        }),
        message,
    )
}

/// What one transaction is, before anything is applied.
enum Entry {
    /// It never touches a fee; the outcome says why.
    Ignored(&'static str),
    /// Its notice is the one at this index.
    Notice(usize, Kind),
}

#[derive(Clone, Copy)]
enum Kind {
    Credit,
    Reversal,
}

/// What one camt.054 transaction does, by ISO 20022's reading (docs/bank-xml.md): a booked VND
/// credit is money for a fee (it pays the fee it names, or it is kept for a person); a booked
/// DBIT with `RvslInd` takes back the credit it matches; everything else (a CRDT reversal
/// returns an earlier debit, other debits, pending entries, other currencies) never touches a
/// fee.
fn notice_of(bank: &BankRef<'_>, t: &Transaction) -> Result<(Kind, Notice), &'static str> {
    let kind = match (t.direction, t.reversal) {
        (Direction::Credit, false) => Kind::Credit,
        (Direction::Debit, true) => Kind::Reversal,
        (Direction::Credit, true) => return Err("ignored_returned_debit"),
        (Direction::Debit, false) => return Err("ignored_debit"),
    };
    if !t.booked {
        return Err("ignored_not_booked");
    }
    let (Some(amount), "VND") = (t.amount_vnd, t.currency.as_str()) else {
        return Err("ignored_not_vnd");
    };
    if t.references_found > 1 {
        tracing::warn!(
            alarm = true,
            provider = bank.source,
            entry = t.entry,
            "a bank transaction names several payments: a person must split it"
        );
    }
    let entry = BankEntry {
        bank: bank.id.to_string(),
        source: bank.source.to_string(),
        bin: bank.bin.map(str::to_string),
        reference: if t.references_found == 1 { t.reference.clone() } else { None },
        references_found: t.references_found,
        identity: t.identity.clone(),
        content_identity: t.bank_transaction.is_none(),
        document: bank.document.to_string(),
        account: t.account.clone(),
        amount,
        currency: t.currency.clone(),
        booking_date: t.booking_date.clone(),
        // A reversal names the credit by what its own TxDtls/Refs carry, never by its entry's
        // AcctSvcrRef, which is the reversal's own reference (ISO 20022).
        refs: match kind {
            Kind::Credit => t.refs.clone(),
            Kind::Reversal => t.tx_refs.clone(),
        },
        remittance: t.remittance.clone(),
    };
    Ok(match kind {
        Kind::Credit => (kind, Notice::BankCredit(entry)),
        Kind::Reversal => (kind, Notice::BankReversal(entry)),
    })
}

/// What [`notice_of`] needs of the bank and the document.
struct BankRef<'a> {
    id: &'a str,
    source: &'a str,
    bin: Option<&'a str>,
    document: &'a str,
}

/// The outcome the bank reads for one applied transaction.
fn outcome_text(kind: Kind, applied: Applied) -> String {
    match (kind, applied) {
        (_, Applied::Unknown) => "unknown_reference".into(),
        (_, Applied::Unmatched(why)) => why.as_str().into(),
        (Kind::Reversal, Applied::Reversed) => "reversed".into(),
        (Kind::Reversal, Applied::ReversalDuplicate) => "reversal_duplicate".into(),
        (Kind::Reversal, Applied::ReversalNotPaid) => "reversal_ignored_not_paid".into(),
        (Kind::Reversal, _) => "reversal_refused_mismatch".into(),
        (Kind::Credit, Applied::Paid) => "paid".into(),
        (Kind::Credit, Applied::PaidTwice) => "paid_twice".into(),
        (Kind::Credit, Applied::Duplicate(s)) => format!("duplicate ({})", s.as_str()),
        (Kind::Credit, Applied::AlreadySettled(s)) => format!("already_{}", s.as_str()),
        (Kind::Credit, Applied::AmountMismatch | Applied::OrderAmountDiffers) => "amount_mismatch".into(),
        (Kind::Credit, _) => "failed".into(),
    }
}

impl PaymentProvider for Banks {
    fn id(&self) -> &'static str {
        ID
    }

    fn creator(&self) -> Option<&dyn PaymentCreator> {
        None
    }

    fn reconciler(&self) -> Option<&dyn Reconciler> {
        None
    }

    /// The order is the cost: the bank id (a map look-up) and the content type (a header)
    /// here; the size while the gateway reads the body; then, in [`Self::parse`], the root
    /// element ([`check_root`], a bounded scan of the first bytes), a permit for this bank, and
    /// only then parsing, canonicalisation and the signature, off the async workers.
    fn admit(&self, head: &CallbackHead<'_>) -> Result<(), Refused> {
        if !head.param("bank_id").is_some_and(|id| self.banks.contains_key(id)) {
            // The id is the caller's text: it is not repeated back.
            return Err(Refused::new(
                Reply::Problem(CallbackProblem::NotFound("no bank with this id is configured".into())),
                "no bank with this id is configured",
            ));
        }
        if !is_xml(head.media_type.as_deref()) {
            return Err(Refused::new(
                Reply::Problem(CallbackProblem::MediaType("application/xml")),
                "the body is not XML",
            ));
        }
        Ok(())
    }

    fn parse<'a>(&'a self, head: CallbackHead<'a>, body: Vec<u8>) -> BoxFuture<'a, Result<Parsed, Refused>> {
        Box::pin(async move {
            let bank_id = head.param("bank_id").unwrap_or_default().to_string();
            let not_found = || {
                Refused::new(
                    Reply::Problem(CallbackProblem::NotFound("no bank with this id is configured".into())),
                    "no bank with this id is configured",
                )
            };
            let bank = self.banks.get(&bank_id).ok_or_else(not_found)?;
            match check_root(&body) {
                Ok(()) => {}
                Err(e @ (RootError::NotXml | RootError::Doctype)) => {
                    return Err(Refused::new(
                        Reply::Problem(CallbackProblem::Malformed(e.to_string())),
                        e.to_string(),
                    ));
                }
                Err(e @ RootError::NotCamt054) => return Err(invalid(e.to_string())),
            }
            let Ok(permit) = bank.verifications.clone().try_acquire_owned() else {
                return Err(Refused::new(
                    Reply::Problem(CallbackProblem::Busy {
                        retry_after_secs: BANK_BUSY_RETRY_SECS,
                        detail: "this bank's notifications are being verified at full capacity; nothing was read, send it again",
                    }),
                    "refused unread: this bank's verifications are all taken",
                ));
            };
            let cert = bank.cert.clone();
            let trust = self.trust.clone();
            // Which notification carried a transaction: a content identity seen again in
            // another document may be a second, identical payment.
            let document = hex::encode(openssl::sha::sha256(&body));
            let verified = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                dsig::verify_enveloped(
                    &body,
                    &XmlTrust::Pinned {
                        cert: &cert,
                        store: trust.as_deref(),
                    },
                )
            })
            .await
            .map_err(|_| Refused::new(Reply::Problem(CallbackProblem::Internal), "the verification did not finish"))?;
            let verified = match verified {
                Ok(v) => v,
                Err(DsigError::Xml(
                    e @ (XmlError::Doctype | XmlError::Malformed(_) | XmlError::NotUtf8 | XmlError::UnknownEntity(_) | XmlError::TooDeep),
                )) => {
                    return Err(Refused::new(
                        Reply::Problem(CallbackProblem::Malformed(e.to_string())),
                        e.to_string(),
                    ));
                }
                Err(DsigError::Xml(XmlError::TooLarge(n))) => {
                    return Err(Refused::new(
                        Reply::Problem(CallbackProblem::TooLarge(n)),
                        "the document is too large",
                    ));
                }
                Err(e) => {
                    return Err(Refused::new(
                        Reply::Problem(CallbackProblem::BadSignature(e.to_string())),
                        format!("signature or certificate: {e}"),
                    ));
                }
            };
            let transactions = transactions(&verified.document).map_err(|e| invalid(e.to_string()))?;
            let source = format!("bank:{bank_id}");
            let which = BankRef {
                id: &bank_id,
                source: &source,
                bin: bank.bin.as_deref(),
                document: &document,
            };
            let mut notices = Vec::new();
            let mut entries = Vec::with_capacity(transactions.len());
            for t in &transactions {
                entries.push(match notice_of(&which, t) {
                    Ok((kind, notice)) => {
                        notices.push(notice);
                        Entry::Notice(notices.len() - 1, kind)
                    }
                    Err(why) => Entry::Ignored(why),
                });
            }
            let signer = verified.signer.subject.clone();
            let answer = move |outcomes: Result<&[Applied], StoreFailed>| {
                let Ok(applied) = outcomes else {
                    return Reply::StoreFailed;
                };
                let mut out = Vec::with_capacity(transactions.len());
                for (t, e) in transactions.iter().zip(&entries) {
                    let outcome = match e {
                        Entry::Ignored(why) => (*why).to_string(),
                        Entry::Notice(i, kind) => match applied.get(*i) {
                            Some(a) => outcome_text(*kind, *a),
                            None => return Reply::StoreFailed,
                        },
                    };
                    out.push(json!({"entry": t.entry, "transaction": t.index, "MaThamChieu": t.reference, "bank_transaction": t.bank_transaction, "amount": t.amount_vnd, "outcome": outcome}));
                }
                Reply::Json(json!({"bank": bank_id, "signer": signer, "entries": out}))
            };
            Ok(Parsed {
                notices,
                reply: Box::new(answer),
            })
        })
    }
}

#[cfg(test)]
mod tests;
