//! Bank-to-customer debit/credit notifications (ISO 20022 camt.054, versions 001.02 and
//! 001.08), read from a document whose signature has already been verified. Each transaction
//! becomes one [`Transaction`]: one per `Ntry/NtryDtls/TxDtls`, or one for an entry without
//! details. The reading follows ISO 20022's definitions (docs/bank-xml.md):
//!
//! - `RvslInd` qualifies the entry's `CdtDbtInd` against the *original* booking: the reversal of
//!   a fee credit is a DBIT entry with `RvslInd` true. It is an `xs:boolean`.
//! - A batch entry (`NtryDtls/Btch`) carries several `TxDtls`, each with its own amount and
//!   references; `Ntry/Amt` is then their total and is never any one transaction's amount.
//! - The payment reference may sit in `Refs/EndToEndId`, in any `RmtInf/Ustrd` line (long texts
//!   are split across lines), in any `RmtInf/Strd/CdtrRefInf/Ref`, in `TxDtls/AddtlTxInf`, or
//!   (for an entry with one transaction, or none) in `Ntry/AddtlNtryInf`: some banks write the
//!   narrative there instead of in `RmtInf`.
//! - The bank's identity for a transaction is `TxDtls/Refs/AcctSvcrRef`, `TxDtls/Refs/TxId`, or
//!   (for an entry with one transaction) `Ntry/AcctSvcrRef`; `NtryRef` is only a sequence number
//!   inside one notification and is never used.
//!
//! The [`Banks`] provider turns each transaction into a notice (or says why it touches no
//! fee); what a notice does to a payment is decided by the gateway.

use std::collections::{BTreeMap, BTreeSet};
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
    Applied, BankEntry, BankRefs, BuildContext, CallbackHead, CallbackMethod, CallbackProblem, CallbackRoute, Notice, Parsed,
    PaymentCreator, PaymentProvider, ProviderKind, ProviderSettings, Reconciler, Refused, Reply, StoreFailed, problem, settings_if_on,
};
use crate::BoxFuture;

use hcc_signing::xml::c14n::element_ns;
use hcc_signing::xml::dom::{Document, Element};

pub const NS_V02: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02";
pub const NS_V08: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";

/// Transactions read from one document at most: a notification is a few entries, and a
/// caller-grown list is always bounded.
pub const MAX_TRANSACTIONS: usize = 10_000;
/// Distinct references counted per transaction at most; one is all a payment may name.
pub const MAX_REFERENCES: usize = 100;
/// Length of a reference of the gateway's shape ([`super::new_reference`]).
const REFERENCE_LEN: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Credit,
    Debit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Index of the `Ntry` in the document (counted across `Ntfctn`), from 0.
    pub entry: usize,
    /// Index of the `TxDtls` inside its `Ntry` (counted across its `NtryDtls`); 0 when the entry
    /// has none.
    pub index: usize,
    /// The entry's `CdtDbtInd`.
    pub direction: Direction,
    /// The entry's `RvslInd` (`true`/`1`); absent means false.
    pub reversal: bool,
    /// The entry's status is `BOOK` (v02 `Sts`, v08 `Sts/Cd`).
    pub booked: bool,
    /// Whole đồng, from the transaction's own `Amt`; else, for an entry with at most one
    /// transaction, `Ntry/Amt`; else `AmtDtls/TxAmt/Amt` (where v02 puts a transaction's own
    /// amount). `None` when fractional, unreadable or missing.
    pub amount_vnd: Option<u64>,
    /// The `Ccy` of the amount used ("" when none was).
    pub currency: String,
    /// The bank's identity for the transaction: `TxDtls/Refs/AcctSvcrRef`, else
    /// `TxDtls/Refs/TxId`, else `Ntry/AcctSvcrRef` for an entry with at most one transaction.
    /// Never `NtryRef`; `NOTPROVIDED` counts as absent.
    pub bank_transaction: Option<String>,
    /// The first reference of the gateway's shape found, upper-cased.
    pub reference: Option<String>,
    /// How many distinct references of the gateway's shape were found (at most
    /// [`MAX_REFERENCES`]): more than one makes the transaction ambiguous.
    pub references_found: usize,
    /// The account the notification reports (`Ntfctn/Acct/Id/IBAN` or `Othr/Id`), as written.
    pub account: Option<String>,
    /// `Ntry/BookgDt/Dt`, or the date part of `BookgDt/DtTm` ("" when none).
    pub booking_date: String,
    /// `TxDtls/Refs` by kind; for an entry with one transaction and no `TxDtls/Refs/AcctSvcrRef`,
    /// `Ntry/AcctSvcrRef` stands as the account servicer's reference.
    pub refs: BankRefs,
    /// The references the transaction's own `TxDtls/Refs` carry, and nothing from the entry:
    /// what a reversal names of the credit it takes back.
    pub tx_refs: BankRefs,
    /// The remittance text: the `Ustrd` lines and `Strd` references, joined with ` | `.
    pub remittance: String,
    /// The identity the gateway uses: [`Self::bank_transaction`], or when the bank gave none a
    /// content identity `content:<sha256>:<n>` that does not depend on the transaction's place
    /// (booking date, amount, currency, account, references, remittance text, numbered by
    /// occurrence among identical transactions of the document).
    pub identity: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CamtError {
    #[error("not a camt.054.001.02 or camt.054.001.08 document")]
    NotCamt054,
    #[error("the notification has no BkToCstmrDbtCdtNtfctn")]
    Missing,
    #[error("the notification carries more than {0} transactions")]
    TooManyTransactions(usize),
    #[error("entry {entry}: {field} {value:?} is not valid")]
    Invalid { entry: usize, field: &'static str, value: String },
    #[error("entry {entry}: {field} appears more than once")]
    Repeated { entry: usize, field: &'static str },
    #[error("entry {entry}, transaction {index}: CdtDbtInd {value} contradicts the entry's")]
    DirectionConflict { entry: usize, index: usize, value: String },
}

fn children<'a>(e: &'a Element, name: &'a str) -> impl Iterator<Item = &'a Element> {
    e.child_elements().filter(move |c| c.local == name)
}

/// The child `name`, which the schema allows at most once: a repeat is refused rather than
/// guessed at.
fn single<'a>(e: &'a Element, name: &'static str, entry: usize) -> Result<Option<&'a Element>, CamtError> {
    let mut it = children(e, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(CamtError::Repeated { entry, field: name });
    }
    Ok(first)
}

fn path<'a>(e: &'a Element, names: &[&'static str], entry: usize) -> Result<Option<&'a Element>, CamtError> {
    let mut cur = e;
    for n in names {
        match single(cur, n, entry)? {
            Some(c) => cur = c,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn text(e: &Element) -> String {
    e.text().trim().to_string()
}

/// A reference value, or `None` when empty or the ISO placeholder `NOTPROVIDED` (used by banks
/// for a reference they do not have: as an identity it would merge unrelated transactions).
fn identity(e: Option<&Element>) -> Option<String> {
    let t = text(e?);
    (!t.is_empty() && !t.eq_ignore_ascii_case("NOTPROVIDED")).then_some(t)
}

/// Whole đồng; camt amounts are decimals, VND has no minor unit.
fn vnd(text: &str) -> Option<u64> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.chars().all(|c| c == '0') || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

fn direction(value: &str, entry: usize) -> Result<Direction, CamtError> {
    match value {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        other => Err(CamtError::Invalid {
            entry,
            field: "CdtDbtInd",
            value: other.to_string(),
        }),
    }
}

/// `xs:boolean`: `true`/`1`, `false`/`0`, surrounding whitespace collapsed. Anything else is
/// refused: guessing a reversal flag either way can move money.
fn boolean(value: &str, entry: usize) -> Result<bool, CamtError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(CamtError::Invalid {
            entry,
            field: "RvslInd",
            value: other.to_string(),
        }),
    }
}

/// Collects whole-word occurrences of references of the gateway's shape in `text`.
struct References {
    first: Vec<String>,
    seen: BTreeSet<String>,
}

impl References {
    fn new() -> Self {
        References {
            first: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    /// A match must be a whole word: no letter or digit (in any script) right before or after.
    /// The shape itself is [`super::find_reference`]'s, asked of exactly the candidate.
    fn scan(&mut self, text: &str) {
        let upper = text.to_ascii_uppercase();
        let mut from = 0;
        while self.seen.len() < MAX_REFERENCES {
            let Some(pos) = upper[from..].find("HCC") else { break };
            let start = from + pos;
            from = start + 1;
            let end = start + REFERENCE_LEN;
            if end > upper.len() || !upper.is_char_boundary(end) {
                continue;
            }
            let before = upper[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
            let after = upper[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            if !(before && after) {
                continue;
            }
            if let Some(r) = super::find_reference(&upper[start..end])
                && r.len() == REFERENCE_LEN
                && self.seen.insert(r.clone())
            {
                self.first.push(r);
            }
        }
    }
}

/// The references a transaction names, searched in this order (the first found is the one
/// reported; more than one distinct reference makes the transaction ambiguous):
/// `Refs/EndToEndId`, each `RmtInf/Ustrd` line, the `Ustrd` lines joined with nothing (a bank
/// that cuts a long text at a fixed width may split a reference across two lines), each
/// `RmtInf/Strd/CdtrRefInf/Ref`, each `AddtlTxInf`, and then the entry's `AddtlNtryInf`
/// (`entry_info`: given only when the entry has this one transaction, since in a batch the
/// entry's narrative belongs to no one transaction).
fn references(tx: &Element, entry_info: Option<&Element>, entry: usize) -> Result<References, CamtError> {
    let mut found = References::new();
    if let Some(e2e) = path(tx, &["Refs", "EndToEndId"], entry)? {
        found.scan(&e2e.text());
    }
    if let Some(rmt) = single(tx, "RmtInf", entry)? {
        let lines: Vec<String> = children(rmt, "Ustrd").map(|u| u.text()).collect();
        for line in &lines {
            found.scan(line);
        }
        if lines.len() > 1 {
            found.scan(&lines.concat());
        }
        for strd in children(rmt, "Strd") {
            if let Some(r) = path(strd, &["CdtrRefInf", "Ref"], entry)? {
                found.scan(&r.text());
            }
        }
    }
    // `AddtlTxInf` may repeat in v02 (0..5) and not in v08 (0..1): read every one either way.
    for info in children(tx, "AddtlTxInf") {
        found.scan(&info.text());
    }
    scan_entry_info(&mut found, entry_info);
    Ok(found)
}

/// Adds the references in the entry's `AddtlNtryInf` (given only for a single-transaction
/// entry, or one without details).
fn scan_entry_info(found: &mut References, entry_info: Option<&Element>) {
    if let Some(info) = entry_info {
        found.scan(&info.text());
    }
}

/// An amount element's value and currency.
fn amount(e: &Element) -> (Option<u64>, String) {
    (vnd(&e.text()), e.attr("Ccy").unwrap_or("").trim().to_string())
}

/// How far into a body [`check_root`] looks for the root's start tag. A real prolog is an XML
/// declaration and perhaps a comment; the root's start tag carries a few namespaces.
pub const ROOT_SCAN_LIMIT: usize = 16 * 1024;

/// Why a body was refused before any parsing, canonicalisation or signature work.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RootError {
    #[error("the body is not an XML document (no root element within its first {ROOT_SCAN_LIMIT} bytes)")]
    NotXml,
    #[error("a DOCTYPE is not accepted")]
    Doctype,
    #[error("the root element is not a camt.054.001.02 or camt.054.001.08 Document")]
    NotCamt054,
}

/// A cheap look at the body before anything expensive: skips the prolog (XML declaration,
/// processing instructions, comments, whitespace), refuses a DOCTYPE, and reads only the root's
/// start tag, which must be `Document` in the camt.054 v02 or v08 namespace, declared on that
/// tag (a root inherits nothing). Its cost is bounded by [`ROOT_SCAN_LIMIT`] whatever the body
/// holds, so an unauthenticated caller cannot make the gateway parse, canonicalise or verify a
/// document that could never be a bank notification. The full parse still checks everything
/// again; this only refuses early.
pub fn check_root(body: &[u8]) -> Result<(), RootError> {
    let b = &body[..body.len().min(ROOT_SCAN_LIMIT)];
    let mut i = if b.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let find = |from: usize, pat: &[u8]| b[from..].windows(pat.len()).position(|w| w == pat).map(|p| from + p);
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    // The prolog.
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>").ok_or(RootError::NotXml)? + 2;
        } else if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->").ok_or(RootError::NotXml)? + 3;
        } else if rest.starts_with(b"<!") {
            return Err(RootError::Doctype);
        } else if rest.starts_with(b"<") {
            i += 1;
            break;
        } else {
            return Err(RootError::NotXml);
        }
    }
    // The root's qualified name.
    let start = i;
    while i < b.len() && !is_space(b[i]) && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    if i == b.len() {
        return Err(RootError::NotXml);
    }
    let name = &b[start..i];
    let (prefix, local) = match name.iter().position(|&c| c == b':') {
        Some(p) => (&name[..p], &name[p + 1..]),
        None => (&b""[..], name),
    };
    if local != b"Document" {
        return Err(RootError::NotCamt054);
    }
    // Its attributes, up to the end of the start tag; only the namespace of its prefix matters.
    let mut ns: Option<&[u8]> = None;
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        match b.get(i) {
            None => return Err(RootError::NotXml),
            Some(b'>') => break,
            Some(b'/') if b.get(i + 1) == Some(&b'>') => break,
            Some(_) => {}
        }
        let attr_start = i;
        while i < b.len() && !is_space(b[i]) && b[i] != b'=' && b[i] != b'>' {
            i += 1;
        }
        let attr = &b[attr_start..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') || attr.is_empty() {
            return Err(RootError::NotXml);
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(RootError::NotXml),
        };
        let value_start = i + 1;
        let value_end = b[value_start..]
            .iter()
            .position(|&c| c == quote)
            .map(|p| value_start + p)
            .ok_or(RootError::NotXml)?;
        i = value_end + 1;
        let declares = if prefix.is_empty() {
            attr == b"xmlns"
        } else {
            attr.strip_prefix(b"xmlns:") == Some(prefix)
        };
        if declares {
            ns = Some(&b[value_start..value_end]);
        }
    }
    match ns {
        Some(n) if n == NS_V02.as_bytes() || n == NS_V08.as_bytes() => Ok(()),
        _ => Err(RootError::NotCamt054),
    }
}

pub fn transactions(doc: &Document) -> Result<Vec<Transaction>, CamtError> {
    let root = &doc.root;
    let ns = element_ns(root, &root.ns_decls).to_string();
    if root.local != "Document" || (ns != NS_V02 && ns != NS_V08) {
        return Err(CamtError::NotCamt054);
    }
    let mut bodies = children(root, "BkToCstmrDbtCdtNtfctn");
    let body = bodies.next().ok_or(CamtError::Missing)?;
    if bodies.next().is_some() {
        return Err(CamtError::Repeated {
            entry: 0,
            field: "BkToCstmrDbtCdtNtfctn",
        });
    }
    let mut out = Vec::new();
    let entries = children(body, "Ntfctn").flat_map(|n| {
        let account = account_of(n);
        children(n, "Ntry").map(move |e| (account.clone(), e))
    });
    for (entry, (account, ntry)) in entries.enumerate() {
        let ind = single(ntry, "CdtDbtInd", entry)?.map(text).unwrap_or_default();
        let dir = direction(&ind, entry)?;
        let reversal = match single(ntry, "RvslInd", entry)? {
            Some(r) => boolean(&text(r), entry)?,
            None => false,
        };
        let status = match single(ntry, "Sts", entry)? {
            // v08: Sts/Cd (or Sts/Prtry, which is not BOOK); v02: the code itself.
            Some(s) => match single(s, "Cd", entry)? {
                Some(cd) => text(cd),
                None if s.child_elements().next().is_some() => String::new(),
                None => text(s),
            },
            None => String::new(),
        };
        let booked = status == "BOOK";
        let entry_amount = single(ntry, "Amt", entry)?;
        let entry_ref = single(ntry, "AcctSvcrRef", entry)?;
        let booking_date = booking_date(ntry, entry)?;
        let details: Vec<&Element> = children(ntry, "NtryDtls").flat_map(|d| children(d, "TxDtls")).collect();
        if out.len() + details.len().max(1) > MAX_TRANSACTIONS {
            return Err(CamtError::TooManyTransactions(MAX_TRANSACTIONS));
        }
        let single_tx = details.len() <= 1;
        let entry_info = match single(ntry, "AddtlNtryInf", entry)? {
            Some(info) if single_tx => Some(info),
            _ => None,
        };
        if details.is_empty() {
            let (amount_vnd, currency) = entry_amount.map(amount).unwrap_or_default();
            let mut found = References::new();
            scan_entry_info(&mut found, entry_info);
            out.push(Transaction {
                entry,
                index: 0,
                direction: dir,
                reversal,
                booked,
                amount_vnd,
                currency,
                bank_transaction: identity(entry_ref),
                reference: found.first.first().cloned(),
                references_found: found.seen.len(),
                account: account.clone(),
                booking_date: booking_date.clone(),
                refs: BankRefs {
                    acct_svcr_ref: identity(entry_ref),
                    ..BankRefs::default()
                },
                tx_refs: BankRefs::default(),
                remittance: String::new(),
                identity: String::new(),
            });
            continue;
        }
        for (index, tx) in details.into_iter().enumerate() {
            if let Some(own) = single(tx, "CdtDbtInd", entry)? {
                let own = text(own);
                if direction(&own, entry)? != dir {
                    return Err(CamtError::DirectionConflict { entry, index, value: own });
                }
            }
            let own_amount = single(tx, "Amt", entry)?;
            let used = match own_amount {
                Some(a) => Some(a),
                None if single_tx => entry_amount,
                None => path(tx, &["AmtDtls", "TxAmt", "Amt"], entry)?,
            };
            let (amount_vnd, currency) = used.map(amount).unwrap_or_default();
            let bank_transaction = match identity(path(tx, &["Refs", "AcctSvcrRef"], entry)?) {
                Some(r) => Some(r),
                None => match identity(path(tx, &["Refs", "TxId"], entry)?) {
                    Some(r) => Some(r),
                    None if single_tx => identity(entry_ref),
                    None => None,
                },
            };
            let found = references(tx, entry_info, entry)?;
            let tx_refs = BankRefs {
                acct_svcr_ref: identity(path(tx, &["Refs", "AcctSvcrRef"], entry)?),
                tx_id: identity(path(tx, &["Refs", "TxId"], entry)?),
                end_to_end_id: identity(path(tx, &["Refs", "EndToEndId"], entry)?),
            };
            let mut refs = tx_refs.clone();
            if refs.acct_svcr_ref.is_none() && single_tx {
                refs.acct_svcr_ref = identity(entry_ref);
            }
            out.push(Transaction {
                entry,
                index,
                direction: dir,
                reversal,
                booked,
                amount_vnd,
                currency,
                bank_transaction,
                reference: found.first.first().cloned(),
                references_found: found.seen.len(),
                account: account.clone(),
                booking_date: booking_date.clone(),
                refs,
                tx_refs,
                remittance: remittance_text(tx, entry)?,
                identity: String::new(),
            });
        }
    }
    assign_identities(&mut out);
    Ok(out)
}

/// `Ntfctn/Acct/Id/IBAN`, else `Ntfctn/Acct/Id/Othr/Id`: the account the notification reports.
/// A repeat or an absence is no account: it then matches no agency.
fn account_of(ntfctn: &Element) -> Option<String> {
    let id = path(ntfctn, &["Acct", "Id"], 0).ok().flatten()?;
    let iban = path(id, &["IBAN"], 0).ok().flatten().map(text);
    let other = path(id, &["Othr", "Id"], 0).ok().flatten().map(text);
    iban.or(other).filter(|a| !a.is_empty())
}

/// `BookgDt/Dt`, or the date part of `BookgDt/DtTm`, as written ("" when none).
fn booking_date(ntry: &Element, entry: usize) -> Result<String, CamtError> {
    let Some(d) = single(ntry, "BookgDt", entry)? else {
        return Ok(String::new());
    };
    if let Some(dt) = single(d, "Dt", entry)? {
        return Ok(text(dt));
    }
    Ok(single(d, "DtTm", entry)?
        .map(|t| text(t).chars().take(10).collect())
        .unwrap_or_default())
}

/// The remittance text a person reads: each `Ustrd` line and each `Strd/CdtrRefInf/Ref`, in
/// document order, joined with ` | `.
fn remittance_text(tx: &Element, entry: usize) -> Result<String, CamtError> {
    let Some(rmt) = single(tx, "RmtInf", entry)? else {
        return Ok(String::new());
    };
    let mut parts = Vec::new();
    for c in rmt.child_elements() {
        match c.local.as_str() {
            "Ustrd" => parts.push(c.text()),
            "Strd" => {
                if let Some(r) = path(c, &["CdtrRefInf", "Ref"], entry)? {
                    parts.push(r.text());
                }
            }
            _ => {}
        }
    }
    Ok(parts.join(" | "))
}

/// Sets each transaction's identity: the bank's own reference where it gave one; otherwise a
/// content identity that is the same wherever the transaction sits in whichever document, so
/// that a credit re-sent in an end-of-day statement, in any order, is the same credit. Identical
/// transactions of one document are numbered by occurrence (two equal payments in one document
/// are two payments).
fn assign_identities(out: &mut [Transaction]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in out.iter_mut() {
        if let Some(b) = &t.bank_transaction {
            t.identity = b.clone();
            continue;
        }
        // Fields are length-prefixed, so no value can shift text into its neighbour.
        let mut content = String::new();
        for field in [
            if t.direction == Direction::Credit { "CRDT" } else { "DBIT" },
            if t.reversal { "R" } else { "" },
            &t.booking_date,
            &t.amount_vnd.map(|a| a.to_string()).unwrap_or_default(),
            &t.currency,
            t.account.as_deref().unwrap_or(""),
            t.reference.as_deref().unwrap_or(""),
            &t.remittance,
            t.tx_refs.end_to_end_id.as_deref().unwrap_or(""),
        ] {
            content.push_str(&format!("{}:{field};", field.len()));
        }
        let digest = hex::encode(openssl::sha::sha256(content.as_bytes()));
        let n = seen.entry(digest.clone()).or_insert(0);
        t.identity = format!("content:{}:{n}", &digest[..32]);
        *n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The provider: the banks that send camt.054
//
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
mod tests {
    use super::*;
    use hcc_config::Section;

    #[test]
    fn the_root_is_checked_before_anything_is_parsed() {
        let v08 = format!("<Document xmlns=\"{NS_V08}\"><BkToCstmrDbtCdtNtfctn/></Document>");
        assert_eq!(check_root(v08.as_bytes()), Ok(()));
        for ok in [
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- from the bank -->\n{v08}"),
            format!("\u{feff}<?xml version='1.0'?><Document xml:lang=\"vi\" xmlns='{NS_V02}' Id=\"a>b\">"),
            format!("<camt:Document xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:camt=\"{NS_V08}\">"),
            format!("<Document\n  xmlns = \"{NS_V08}\"\n>"),
        ] {
            assert_eq!(check_root(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            (String::new(), RootError::NotXml),
            ("{\"json\": true}".to_string(), RootError::NotXml),
            ("   ".to_string(), RootError::NotXml),
            ("<!DOCTYPE Document [<!ENTITY a \"b\">]><Document/>".to_string(), RootError::Doctype),
            ("<?xml version=\"1.0\"?><!-- never closed".to_string(), RootError::NotXml),
            (
                format!("<Envelope xmlns=\"{NS_V08}\"><Document/></Envelope>"),
                RootError::NotCamt054,
            ),
            (
                "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">".to_string(),
                RootError::NotCamt054,
            ),
            ("<Document>".to_string(), RootError::NotCamt054),
            (format!("<camt:Document xmlns=\"{NS_V08}\">"), RootError::NotCamt054),
            (format!("<x:Document xmlns:camt=\"{NS_V08}\">"), RootError::NotCamt054),
            (format!("<Document xmlns=\"{NS_V08}\""), RootError::NotXml),
            (format!("<Document xmlns={NS_V08}>"), RootError::NotXml),
        ] {
            assert_eq!(check_root(bad.as_bytes()), Err(why), "{bad}");
        }
        for fixture in [
            &include_bytes!("../../../tests/fixtures/xml/01-camt054-v08.xml")[..],
            &include_bytes!("../../../tests/fixtures/xml/02-camt054-v02.xml")[..],
            &include_bytes!("../../../tests/fixtures/xml/13-camt054-v08-batch.xml")[..],
            &include_bytes!("../../../tests/fixtures/xml/14-camt054-v08-reversal.xml")[..],
            &include_bytes!("../../../tests/fixtures/xml/15-camt054-v02-batch.xml")[..],
        ] {
            assert_eq!(check_root(fixture), Ok(()), "{}", String::from_utf8_lossy(&fixture[..200]));
        }
        // Bounded: a prolog longer than the limit is refused unread, however the body goes on.
        let long = format!("<!--{}-->{v08}", "x".repeat(ROOT_SCAN_LIMIT));
        assert_eq!(check_root(long.as_bytes()), Err(RootError::NotXml));
        let attrs = format!("<Document xmlns=\"{NS_V08}\" {}>", "a=\"b\" ".repeat(ROOT_SCAN_LIMIT / 4));
        assert_eq!(check_root(attrs.as_bytes()), Err(RootError::NotXml));
    }

    fn parse(xml: &str) -> Document {
        hcc_signing::xml::dom::parse(xml.as_bytes()).unwrap()
    }

    /// A v08 document around `entries` (each a whole `<Ntry>`).
    fn v08(entries: &str) -> Document {
        parse(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Document xmlns=\"{NS_V08}\"><BkToCstmrDbtCdtNtfctn>\
             <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-25T10:00:00+07:00</CreDtTm></GrpHdr>\
             <Ntfctn><Id>N1</Id><Acct><Id><Othr><Id>0011004123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>{entries}</Ntfctn>\
             </BkToCstmrDbtCdtNtfctn></Document>"
        ))
    }

    const BKTXCD: &str = "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>";

    fn entry(head: &str, txs: &str) -> String {
        format!("<Ntry><NtryRef>7</NtryRef>{head}<BookgDt><Dt>2026-11-25</Dt></BookgDt>{BKTXCD}<NtryDtls>{txs}</NtryDtls></Ntry>")
    }

    #[test]
    fn identities_without_bank_references_do_not_depend_on_position() {
        let bare = |reference: &str, amount: u32| {
            entry(
                &format!("<Amt Ccy=\"VND\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"),
                &format!("<TxDtls><RmtInf><Ustrd>Nop {reference} le phi</Ustrd></RmtInf></TxDtls>"),
            )
        };
        let (a, b) = (bare("HCC261206ABCDEFGH", 100), bare("HCC261206JKLMNPQR", 200));
        let one = transactions(&v08(&a)).unwrap();
        let two = transactions(&v08(&format!("{b}{a}{a}"))).unwrap();
        assert!(one[0].identity.starts_with("content:"), "{}", one[0].identity);
        assert_eq!(one[0].bank_transaction, None);
        assert_eq!(two[1].identity, one[0].identity, "the same credit in another place");
        assert_ne!(two[2].identity, two[1].identity, "an identical second credit is numbered");
        assert_ne!(two[0].identity, two[1].identity);
        assert_eq!(one[0].account.as_deref(), Some("0011004123456"));
        assert_eq!(one[0].booking_date, "2026-11-25");
        assert_eq!(one[0].remittance, "Nop HCC261206ABCDEFGH le phi");
        // The entry's AcctSvcrRef is the credit's identity and its AcctSvcrRef kind, but never
        // a reference its TxDtls carries (what a reversal names the credit by).
        let with_entry_ref = entry(
            "<Amt Ccy=\"VND\">100</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><AcctSvcrRef>FT9</AcctSvcrRef>",
            "<TxDtls><RmtInf><Ustrd>HCC261206ABCDEFGH</Ustrd></RmtInf></TxDtls>",
        );
        let t = &transactions(&v08(&with_entry_ref)).unwrap()[0];
        assert_eq!((t.identity.as_str(), t.refs.acct_svcr_ref.as_deref()), ("FT9", Some("FT9")));
        assert!(t.tx_refs.is_empty());
    }

    #[test]
    fn both_versions_read_alike() {
        let v08 = hcc_signing::xml::dom::parse(include_bytes!("../../../tests/fixtures/xml/01-camt054-v08.xml")).unwrap();
        let t = transactions(&v08).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].entry, t[0].index), (0, 0));
        assert!(t[0].direction == Direction::Credit && t[0].booked && !t[0].reversal);
        assert_eq!(t[0].amount_vnd, Some(100_000));
        assert_eq!(t[0].currency, "VND");
        assert_eq!(t[0].bank_transaction.as_deref(), Some("FT24331ABC"), "TxDtls/Refs/TxId");
        assert_eq!(t[0].reference, None, "the fixture's EndToEndId is not one of ours");
        let v02 = hcc_signing::xml::dom::parse(include_bytes!("../../../tests/fixtures/xml/02-camt054-v02.xml")).unwrap();
        let t = transactions(&v02).unwrap();
        assert!(t[0].booked && t[0].direction == Direction::Credit);
        assert_eq!(t[0].amount_vnd, Some(250_000), "a single transaction falls back to Ntry/Amt");
        assert_eq!(vnd("100.00"), Some(100));
        assert_eq!(vnd("100.50"), None);
        assert_eq!(vnd("-100"), None);
        assert_eq!(vnd("1e5"), None);
        assert_eq!(vnd(""), None);
        let other = parse("<Document xmlns=\"urn:other\"/>");
        assert_eq!(transactions(&other).unwrap_err(), CamtError::NotCamt054);
    }

    /// The hand-written fixtures (tests/fixtures/xml/13..15), read field by field.
    #[test]
    fn the_real_shaped_fixtures_read_as_written() {
        let read = |bytes: &[u8]| transactions(&hcc_signing::xml::dom::parse(bytes).unwrap()).unwrap();
        let row = |t: &Transaction| {
            (
                t.entry,
                t.index,
                t.direction,
                t.reversal,
                t.booked,
                t.amount_vnd,
                t.currency.clone(),
                t.bank_transaction.clone(),
                t.reference.clone(),
                t.references_found,
            )
        };
        let s = |x: &str| Some(x.to_string());
        let batch = read(include_bytes!("../../../tests/fixtures/xml/13-camt054-v08-batch.xml"));
        assert_eq!(
            batch.iter().map(row).collect::<Vec<_>>(),
            vec![
                (
                    0,
                    0,
                    Direction::Credit,
                    false,
                    true,
                    Some(100_000),
                    "VND".into(),
                    s("FT26329A0001"),
                    s("HCC261125AB12CD34"),
                    1
                ),
                (
                    0,
                    1,
                    Direction::Credit,
                    false,
                    true,
                    Some(250_000),
                    "VND".into(),
                    s("FT26329A0002"),
                    s("HCC261125EF56GH78"),
                    1
                ),
                (
                    0,
                    2,
                    Direction::Credit,
                    false,
                    true,
                    Some(50_000),
                    "VND".into(),
                    s("FT26329A0003"),
                    s("HCC261125JK9MN2PQ"),
                    1
                ),
            ]
        );
        let reversal = read(include_bytes!("../../../tests/fixtures/xml/14-camt054-v08-reversal.xml"));
        assert_eq!(
            reversal.iter().map(row).collect::<Vec<_>>(),
            vec![
                // The bank takes the fee credit back: the original's identity and reference.
                (
                    0,
                    0,
                    Direction::Debit,
                    true,
                    true,
                    Some(100_000),
                    "VND".into(),
                    s("FT26329A0001"),
                    s("HCC261125AB12CD34"),
                    1
                ),
                // An earlier debit (a fee) returned: no details, the entry's own reference.
                (
                    1,
                    0,
                    Direction::Credit,
                    true,
                    true,
                    Some(20_000),
                    "VND".into(),
                    s("RV26330B0002"),
                    None,
                    0
                ),
            ]
        );
        let v02 = read(include_bytes!("../../../tests/fixtures/xml/15-camt054-v02-batch.xml"));
        assert_eq!(
            v02.iter().map(row).collect::<Vec<_>>(),
            vec![
                // The reference is cut across two Ustrd lines.
                (
                    0,
                    0,
                    Direction::Credit,
                    false,
                    true,
                    Some(100_000),
                    "VND".into(),
                    s("B915-1"),
                    s("HCC261125QR34ST56"),
                    1
                ),
                // Two references in one transaction: ambiguous.
                (
                    0,
                    1,
                    Direction::Credit,
                    false,
                    true,
                    Some(200_000),
                    "VND".into(),
                    s("B915-2"),
                    s("HCC261125UV78WX92"),
                    2
                ),
            ]
        );
    }

    #[test]
    fn a_batch_entry_gives_each_transaction_its_own_amount_and_references() {
        let txs = "<TxDtls><Refs><AcctSvcrRef>FT1</AcctSvcrRef><EndToEndId>HCC261125AAAA1111</EndToEndId></Refs><Amt Ccy=\"VND\">100000</Amt></TxDtls>\
                   <TxDtls><Refs><TxId>TX2</TxId></Refs><Amt Ccy=\"VND\">250000</Amt><RmtInf><Ustrd>Nop le phi HCC261125BBBB2222</Ustrd></RmtInf></TxDtls>\
                   <TxDtls><Amt Ccy=\"VND\">50000.00</Amt><RmtInf><Strd><CdtrRefInf><Ref>HCC261125CCCC3333</Ref></CdtrRefInf></Strd></RmtInf></TxDtls>";
        let doc = v08(&format!(
            "<Ntry><NtryRef>1</NtryRef><Amt Ccy=\"VND\">400000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>2026-11-25</Dt></BookgDt><AcctSvcrRef>BATCH-9</AcctSvcrRef>{BKTXCD}\
             <NtryDtls><Btch><NbOfTxs>3</NbOfTxs><TtlAmt Ccy=\"VND\">400000</TtlAmt><CdtDbtInd>CRDT</CdtDbtInd></Btch>{txs}</NtryDtls></Ntry>"
        ));
        let t = transactions(&doc).unwrap();
        assert_eq!(t.len(), 3);
        let got: Vec<_> = t
            .iter()
            .map(|t| {
                (
                    t.entry,
                    t.index,
                    t.amount_vnd,
                    t.bank_transaction.as_deref(),
                    t.reference.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, Some(100_000), Some("FT1"), Some("HCC261125AAAA1111")),
                (0, 1, Some(250_000), Some("TX2"), Some("HCC261125BBBB2222")),
                // No reference of its own: never the batch's AcctSvcrRef.
                (0, 2, Some(50_000), None, Some("HCC261125CCCC3333")),
            ]
        );
        assert!(
            t.iter()
                .all(|t| t.amount_vnd != Some(400_000) && t.booked && t.references_found == 1)
        );
        // Without their own amounts, batch transactions have none (never the total).
        let bare = v08(&entry(
            "<Amt Ccy=\"VND\">300000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>",
            "<TxDtls><Refs><EndToEndId>HCC261125AAAA1111</EndToEndId></Refs></TxDtls><TxDtls><Refs><EndToEndId>HCC261125BBBB2222</EndToEndId></Refs></TxDtls>",
        ));
        let t = transactions(&bare).unwrap();
        assert!(t.iter().all(|t| t.amount_vnd.is_none() && t.currency.is_empty()), "{t:?}");
        // v02 keeps a batch transaction's own amount in AmtDtls/TxAmt/Amt.
        let v02 = parse(&format!(
            "<Document xmlns=\"{NS_V02}\"><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-25T10:00:00</CreDtTm></GrpHdr>\
             <Ntfctn><Id>N</Id><CreDtTm>2026-11-25T10:00:00</CreDtTm><Acct><Id><Othr><Id>1</Id></Othr></Id></Acct>\
             <Ntry><Amt Ccy=\"VND\">300000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BkTxCd><Prtry><Cd>NTRF+166</Cd></Prtry></BkTxCd>\
             <NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>\
             <TxDtls><Refs><AcctSvcrRef>A</AcctSvcrRef></Refs><AmtDtls><TxAmt><Amt Ccy=\"VND\">100000</Amt></TxAmt></AmtDtls></TxDtls>\
             <TxDtls><Refs><AcctSvcrRef>B</AcctSvcrRef></Refs><AmtDtls><TxAmt><Amt Ccy=\"VND\">200000</Amt></TxAmt></AmtDtls></TxDtls>\
             </NtryDtls></Ntry></Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"
        ));
        let t = transactions(&v02).unwrap();
        assert_eq!(
            t.iter().map(|t| t.amount_vnd).collect::<Vec<_>>(),
            vec![Some(100_000), Some(200_000)]
        );
        assert!(t.iter().all(|t| t.booked));
    }

    #[test]
    fn reversals_are_read_against_the_original_booking() {
        let tx = "<TxDtls><Refs><AcctSvcrRef>FT1</AcctSvcrRef><EndToEndId>HCC261125AAAA1111</EndToEndId><TxId>FT1</TxId></Refs>\
                  <Amt Ccy=\"VND\">100000</Amt></TxDtls>";
        let doc = v08(&format!(
            "{}{}{}{}",
            entry(
                "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>1</RvslInd><Sts><Cd>BOOK</Cd></Sts>",
                tx
            ),
            entry(
                "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><RvslInd> true </RvslInd><Sts><Cd>BOOK</Cd></Sts>",
                tx
            ),
            entry(
                "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><RvslInd>0</RvslInd><Sts><Cd>PDNG</Cd></Sts>",
                tx
            ),
            entry(
                "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Prtry>BOOK</Prtry></Sts>",
                tx
            ),
        ));
        let t = transactions(&doc).unwrap();
        let got: Vec<_> = t.iter().map(|t| (t.entry, t.direction, t.reversal, t.booked)).collect();
        assert_eq!(
            got,
            vec![
                // DBIT + RvslInd: the bank takes back a credit.
                (0, Direction::Debit, true, true),
                // CRDT + RvslInd: an earlier debit returned.
                (1, Direction::Credit, true, true),
                (2, Direction::Credit, false, false),
                (3, Direction::Debit, false, false),
            ]
        );
        // The reversal repeats the original's identity and reference.
        assert_eq!(t[0].bank_transaction.as_deref(), Some("FT1"));
        assert_eq!(t[0].reference.as_deref(), Some("HCC261125AAAA1111"));
        // Not an xs:boolean, not a direction, a repeated flag: refused, never guessed.
        for (head, err) in [
            (
                "<CdtDbtInd>DBIT</CdtDbtInd><RvslInd>yes</RvslInd>",
                CamtError::Invalid {
                    entry: 0,
                    field: "RvslInd",
                    value: "yes".into(),
                },
            ),
            (
                "<CdtDbtInd>TRUE</CdtDbtInd>",
                CamtError::Invalid {
                    entry: 0,
                    field: "CdtDbtInd",
                    value: "TRUE".into(),
                },
            ),
            (
                "<CdtDbtInd>DBIT</CdtDbtInd><RvslInd>false</RvslInd><RvslInd>true</RvslInd>",
                CamtError::Repeated {
                    entry: 0,
                    field: "RvslInd",
                },
            ),
        ] {
            let doc = v08(&entry(&format!("<Amt Ccy=\"VND\">1</Amt>{head}<Sts><Cd>BOOK</Cd></Sts>"), tx));
            assert_eq!(transactions(&doc).unwrap_err(), err);
        }
        // A transaction whose own CdtDbtInd contradicts its entry's.
        let doc = v08(&entry(
            "<Amt Ccy=\"VND\">1</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>BOOK</Cd></Sts>",
            "<TxDtls><Amt Ccy=\"VND\">1</Amt><CdtDbtInd>CRDT</CdtDbtInd></TxDtls>",
        ));
        assert_eq!(
            transactions(&doc).unwrap_err(),
            CamtError::DirectionConflict {
                entry: 0,
                index: 0,
                value: "CRDT".into()
            }
        );
    }

    fn one(txs: &str) -> Transaction {
        let doc = v08(&entry(
            "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><AcctSvcrRef>ENTRY-1</AcctSvcrRef>",
            txs,
        ));
        let mut t = transactions(&doc).unwrap();
        assert_eq!(t.len(), 1);
        t.remove(0)
    }

    #[test]
    fn references_are_found_on_any_remittance_line_as_whole_words() {
        let t = one(
            "<TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><RmtInf><Ustrd>NGUYEN THI LAN CK</Ustrd>\
             <Ustrd>HCC261125AB12CD34 le phi cap GCN</Ustrd></RmtInf></TxDtls>",
        );
        assert_eq!(t.reference.as_deref(), Some("HCC261125AB12CD34"));
        assert_eq!(t.references_found, 1);
        // Single transaction: the entry's amount and identity.
        assert_eq!((t.amount_vnd, t.currency.as_str()), (Some(100_000), "VND"));
        assert_eq!(t.bank_transaction.as_deref(), Some("ENTRY-1"));
        // Split by a fixed-width cut across two lines.
        let t = one("<TxDtls><RmtInf><Ustrd>Thanh toan le phi ho so HCC261125AB</Ustrd><Ustrd>12CD34 ngay 25/11</Ustrd></RmtInf></TxDtls>");
        assert_eq!((t.reference.as_deref(), t.references_found), (Some("HCC261125AB12CD34"), 1));
        // Structured creditor reference, lower case.
        let t = one(
            "<TxDtls><RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>hcc261125ab12cd34</Ref></CdtrRefInf></Strd></RmtInf></TxDtls>",
        );
        assert_eq!(t.reference.as_deref(), Some("HCC261125AB12CD34"));
        // Not a whole word: glued to letters or digits, in any script.
        for text in [
            "XHCC261125AB12CD34",
            "HCC261125AB12CD345",
            "HCC261125AB12CD34đ",
            "đHCC261125AB12CD34",
            "HCC2611",
        ] {
            let t = one(&format!("<TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls>"));
            assert_eq!(t.reference, None, "{text}");
        }
        // The same reference twice is one; two different ones are ambiguous.
        let t = one(
            "<TxDtls><Refs><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs><RmtInf><Ustrd>hcc261125ab12cd34</Ustrd></RmtInf></TxDtls>",
        );
        assert_eq!(t.references_found, 1);
        let t = one(
            "<TxDtls><Refs><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs><RmtInf><Ustrd>le phi</Ustrd><Ustrd>HCC261125ZZ99YY88</Ustrd></RmtInf></TxDtls>",
        );
        assert_eq!((t.reference.as_deref(), t.references_found), (Some("HCC261125AB12CD34"), 2));
        let t = one(
            "<TxDtls><RmtInf><Ustrd>x</Ustrd><Strd><CdtrRefInf><Ref>HCC261125AB12CD34</Ref></CdtrRefInf></Strd>\
             <Strd><CdtrRefInf><Ref>HCC261125ZZ99YY88</Ref></CdtrRefInf></Strd></RmtInf></TxDtls>",
        );
        assert_eq!(t.references_found, 2);
    }

    /// The entry's narrative after its details, as the schema orders it.
    fn entry_with_info(txs: &str, info: &str) -> Document {
        v08(&format!(
            "<Ntry><NtryRef>7</NtryRef><Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>2026-11-25</Dt></BookgDt>{BKTXCD}{txs}<AddtlNtryInf>{info}</AddtlNtryInf></Ntry>"
        ))
    }

    #[test]
    fn references_in_the_additional_information_follow_the_same_rules() {
        // TxDtls/AddtlTxInf, after RmtInf.
        let t = one("<TxDtls><RmtInf><Ustrd>NGUYEN THI LAN</Ustrd></RmtInf><AddtlTxInf>CK HCC261125AB12CD34 LE PHI</AddtlTxInf></TxDtls>");
        assert_eq!((t.reference.as_deref(), t.references_found), (Some("HCC261125AB12CD34"), 1));
        // Whole words only.
        let t = one("<TxDtls><AddtlTxInf>CKHCC261125AB12CD34</AddtlTxInf></TxDtls>");
        assert_eq!(t.reference, None);
        // Another reference there makes the transaction ambiguous; EndToEndId is still first.
        let t = one("<TxDtls><Refs><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs><AddtlTxInf>HCC261125ZZ99YY88</AddtlTxInf></TxDtls>");
        assert_eq!((t.reference.as_deref(), t.references_found), (Some("HCC261125AB12CD34"), 2));
        // Ntry/AddtlNtryInf: for a single transaction, and for an entry without details.
        let t = transactions(&entry_with_info(
            "<NtryDtls><TxDtls><RmtInf><Ustrd>x</Ustrd></RmtInf></TxDtls></NtryDtls>",
            "IBFT hcc261125ab12cd34 NOP LE PHI",
        ))
        .unwrap();
        assert_eq!((t[0].reference.as_deref(), t[0].references_found), (Some("HCC261125AB12CD34"), 1));
        let t = transactions(&entry_with_info("", "HCC261125AB12CD34")).unwrap();
        assert_eq!((t[0].reference.as_deref(), t[0].references_found), (Some("HCC261125AB12CD34"), 1));
        let t = transactions(&entry_with_info(
            "<NtryDtls><TxDtls><AddtlTxInf>HCC261125AB12CD34</AddtlTxInf></TxDtls></NtryDtls>",
            "HCC261125ZZ99YY88",
        ))
        .unwrap();
        assert_eq!(t[0].references_found, 2);
        // In a batch the entry's narrative belongs to no one transaction: not read.
        let t = transactions(&entry_with_info(
            "<NtryDtls><TxDtls><Amt Ccy=\"VND\">1</Amt></TxDtls><TxDtls><Amt Ccy=\"VND\">2</Amt></TxDtls></NtryDtls>",
            "HCC261125AB12CD34",
        ))
        .unwrap();
        assert!(t.iter().all(|t| t.reference.is_none() && t.references_found == 0));
    }

    #[test]
    fn the_bank_identity_is_never_the_entry_sequence_number() {
        // Only NtryRef: no identity.
        let doc = v08(&entry(
            "<Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>",
            "<TxDtls><Refs><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs></TxDtls>",
        ));
        assert_eq!(transactions(&doc).unwrap()[0].bank_transaction, None);
        // TxDtls AcctSvcrRef before TxId before Ntry/AcctSvcrRef; NOTPROVIDED is no identity.
        let t = one("<TxDtls><Refs><AcctSvcrRef>A1</AcctSvcrRef><TxId>T1</TxId></Refs></TxDtls>");
        assert_eq!(t.bank_transaction.as_deref(), Some("A1"));
        let t = one("<TxDtls><Refs><AcctSvcrRef> </AcctSvcrRef><TxId>T1</TxId></Refs></TxDtls>");
        assert_eq!(t.bank_transaction.as_deref(), Some("T1"));
        let t = one("<TxDtls><Refs><TxId>NOTPROVIDED</TxId></Refs></TxDtls>");
        assert_eq!(t.bank_transaction.as_deref(), Some("ENTRY-1"));
        // An entry without details is one transaction.
        let doc = v08(
            "<Ntry><NtryRef>3</NtryRef><Amt Ccy=\"VND\">5000</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BkTxCd><Prtry><Cd>FEE</Cd></Prtry></BkTxCd></Ntry>",
        );
        let t = transactions(&doc).unwrap();
        assert_eq!((t.len(), t[0].amount_vnd, t[0].bank_transaction.clone()), (1, Some(5000), None));
    }

    #[test]
    fn entries_are_counted_across_notifications_and_bounded() {
        let e = entry(
            "<Amt Ccy=\"VND\">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>",
            "<TxDtls><Amt Ccy=\"VND\">1</Amt></TxDtls>",
        );
        let doc = parse(&format!(
            "<Document xmlns=\"{NS_V08}\"><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-25T10:00:00</CreDtTm></GrpHdr>\
             <Ntfctn><Id>A</Id>{e}{e}</Ntfctn><Ntfctn><Id>B</Id>{e}</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"
        ));
        let t = transactions(&doc).unwrap();
        assert_eq!(
            t.iter().map(|t| (t.entry, t.index)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 0), (2, 0)]
        );
        let many = "<TxDtls><Amt Ccy=\"VND\">1</Amt></TxDtls>".repeat(MAX_TRANSACTIONS + 1);
        let doc = v08(&entry(
            "<Amt Ccy=\"VND\">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>",
            &many,
        ));
        assert_eq!(transactions(&doc).unwrap_err(), CamtError::TooManyTransactions(MAX_TRANSACTIONS));
        let exactly = "<TxDtls><Amt Ccy=\"VND\">1</Amt></TxDtls>".repeat(MAX_TRANSACTIONS);
        let doc = v08(&entry(
            "<Amt Ccy=\"VND\">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>",
            &exactly,
        ));
        assert_eq!(transactions(&doc).unwrap().len(), MAX_TRANSACTIONS);
    }

    fn banks_keys(text: &str, production: bool, trust_ca_dir: &str) -> Vec<String> {
        let section = Section::from_toml("banks", text).expect("toml");
        match super::super::test_build(&KIND, Some(&section), production, trust_ca_dir, vec![]) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|p| p.key).collect(),
        }
    }

    #[test]
    fn production_refuses_pinned_banks_without_a_trust_store() {
        let missing = "[vcb]\ncert = \"/nonexistent/vcb.pem\"\n";
        let keys = banks_keys(missing, true, "");
        assert_eq!(keys, vec!["trust.ca_dir"]);
        // Outside production the next problem is the certificate itself, by key.
        assert_eq!(banks_keys(missing, false, ""), vec!["banks.vcb.cert"]);
        assert_eq!(banks_keys("[VCB]\ncert = \"x\"\n", false, ""), vec!["banks.VCB"]);
        assert_eq!(banks_keys("", true, ""), Vec::<String>::new(), "no bank: nothing pinned");
        for bad in ["97043", "9704366", "97043a", " 970436"] {
            let text = format!("[vcb]\ncert = \"/nonexistent/vcb.pem\"\nbin = \"{bad}\"\n");
            assert_eq!(banks_keys(&text, false, ""), vec!["banks.vcb.bin"], "{bad:?}");
        }
    }

    #[test]
    fn banks_never_create_payments_and_are_not_asked() {
        assert!(KIND.creates.is_none());
        assert!(super::super::test_build(&KIND, None, false, "", vec![]).expect("valid").is_none());
    }
}
