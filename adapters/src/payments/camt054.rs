//! Bank-to-customer debit/credit notifications (ISO 20022 camt.054, versions 001.02 and
//! 001.08), read from a document whose signature has already been verified. Each entry becomes
//! one [`Entry`]: whether it is a booked credit, a reversal, its amount, the bank's transaction
//! reference, and the payment reference found in `EndToEndId` or the remittance information.

use hcc_signing::xml::c14n::element_ns;
use hcc_signing::xml::dom::{Document, Element};

use super::find_reference;

pub const NS_V02: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02";
pub const NS_V08: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: usize,
    pub credit: bool,
    pub booked: bool,
    pub reversal: bool,
    pub amount_vnd: Option<u64>,
    pub currency: String,
    /// The bank's own reference for the movement (AcctSvcrRef, TxId, NtryRef, in that order).
    pub bank_reference: String,
    pub reference: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CamtError {
    #[error("not a camt.054.001.02 or camt.054.001.08 document")]
    NotCamt054,
    #[error("the notification has no BkToCstmrDbtCdtNtfctn")]
    Missing,
}

fn child<'a>(e: &'a Element, name: &str) -> Option<&'a Element> {
    e.child_elements().find(|c| c.local == name)
}

fn path<'a>(e: &'a Element, names: &[&str]) -> Option<&'a Element> {
    names.iter().try_fold(e, |cur, n| child(cur, n))
}

fn text_at(e: &Element, names: &[&str]) -> String {
    path(e, names).map(|x| x.text().trim().to_string()).unwrap_or_default()
}

/// Whole đồng; camt amounts are decimals, VND has no minor unit.
fn vnd(text: &str) -> Option<u64> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if !frac.chars().all(|c| c == '0') {
        return None;
    }
    whole.parse().ok()
}

pub fn entries(doc: &Document) -> Result<Vec<Entry>, CamtError> {
    let root = &doc.root;
    let ns = element_ns(root, &root.ns_decls).to_string();
    if root.local != "Document" || (ns != NS_V02 && ns != NS_V08) {
        return Err(CamtError::NotCamt054);
    }
    let body = child(root, "BkToCstmrDbtCdtNtfctn").ok_or(CamtError::Missing)?;
    let mut out = Vec::new();
    for ntfctn in body.child_elements().filter(|e| e.local == "Ntfctn") {
        for ntry in ntfctn.child_elements().filter(|e| e.local == "Ntry") {
            let amt = child(ntry, "Amt");
            let status = child(ntry, "Sts")
                .map(|s| child(s, "Cd").map(|c| c.text()).unwrap_or_else(|| s.text()))
                .unwrap_or_default();
            let details: Vec<&Element> = child(ntry, "NtryDtls")
                .map(|d| d.child_elements().filter(|t| t.local == "TxDtls").collect())
                .unwrap_or_default();
            let mut reference = None;
            let mut tx_id = String::new();
            for tx in &details {
                let candidates = [
                    text_at(tx, &["Refs", "EndToEndId"]),
                    text_at(tx, &["RmtInf", "Ustrd"]),
                    text_at(tx, &["RmtInf", "Strd", "CdtrRefInf", "Ref"]),
                ];
                reference = reference.or_else(|| candidates.iter().find_map(|c| find_reference(c)));
                if tx_id.is_empty() {
                    tx_id = [text_at(tx, &["Refs", "AcctSvcrRef"]), text_at(tx, &["Refs", "TxId"])]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .unwrap_or_default();
                }
            }
            let bank_reference = [text_at(ntry, &["AcctSvcrRef"]), tx_id, text_at(ntry, &["NtryRef"])]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            out.push(Entry {
                index: out.len(),
                credit: text_at(ntry, &["CdtDbtInd"]) == "CRDT",
                booked: status.trim() == "BOOK",
                reversal: text_at(ntry, &["RvslInd"]) == "true",
                amount_vnd: amt.and_then(|a| vnd(&a.text())),
                currency: amt.and_then(|a| a.attr("Ccy")).unwrap_or("").to_string(),
                bank_reference,
                reference,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_read_alike() {
        let v08 = hcc_signing::xml::dom::parse(include_bytes!("../../../tests/fixtures/xml/01-camt054-v08.xml")).unwrap();
        let e = entries(&v08).unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].credit && e[0].booked && !e[0].reversal);
        assert_eq!(e[0].amount_vnd, Some(100_000));
        assert_eq!(e[0].bank_reference, "FT24331ABC");
        assert_eq!(e[0].reference, None, "the fixture's EndToEndId is not one of ours");
        let v02 = hcc_signing::xml::dom::parse(include_bytes!("../../../tests/fixtures/xml/02-camt054-v02.xml")).unwrap();
        let e = entries(&v02).unwrap();
        assert!(e[0].booked && e[0].credit);
        assert_eq!(e[0].amount_vnd, Some(250_000));
        assert_eq!(vnd("100.00"), Some(100));
        assert_eq!(vnd("100.50"), None);
        let other = hcc_signing::xml::dom::parse(b"<Document xmlns=\"urn:other\"/>").unwrap();
        assert_eq!(entries(&other).unwrap_err(), CamtError::NotCamt054);
    }
}
