//! Bank-to-customer debit/credit notifications (ISO 20022 camt.054, versions 001.02 and
//! 001.08), read from a document whose signature has already been verified. Each transaction
//! becomes one [`Transaction`]: one per `Ntry/NtryDtls/TxDtls`, or one for an entry without
//! details. The reading follows ISO 20022's definitions (docs/bank-xml.md):

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

use std::collections::{BTreeMap, BTreeSet};

use hcc_signing::xml::c14n::element_ns;
use hcc_signing::xml::dom::{Document, Element};

use crate::payments::BankRefs;

pub const NS_V02: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02";
pub const NS_V08: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";

/// Transactions read from one document at most: a notification is a few entries, and a
/// caller-grown list is always bounded.
pub const MAX_TRANSACTIONS: usize = 10_000;
/// Distinct references counted per transaction at most; one is all a payment may name.
pub const MAX_REFERENCES: usize = 100;
/// Length of a reference of the gateway's shape ([`crate::payments::new_reference`]).
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
pub(super) fn vnd(text: &str) -> Option<u64> {
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
    /// The shape itself is [`crate::payments::find_reference`]'s, asked of exactly the candidate.
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
            if let Some(r) = crate::payments::find_reference(&upper[start..end])
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
