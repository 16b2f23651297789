//! Unit tests for the camt.054 reader and the `banks` provider.

use super::camt054::*;
use super::*;
use hcc_config::Section;
use hcc_signing::xml::dom::Document;

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
        &include_bytes!("../../../../tests/fixtures/xml/01-camt054-v08.xml")[..],
        &include_bytes!("../../../../tests/fixtures/xml/02-camt054-v02.xml")[..],
        &include_bytes!("../../../../tests/fixtures/xml/13-camt054-v08-batch.xml")[..],
        &include_bytes!("../../../../tests/fixtures/xml/14-camt054-v08-reversal.xml")[..],
        &include_bytes!("../../../../tests/fixtures/xml/15-camt054-v02-batch.xml")[..],
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
    let v08 = hcc_signing::xml::dom::parse(include_bytes!("../../../../tests/fixtures/xml/01-camt054-v08.xml")).unwrap();
    let t = transactions(&v08).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].entry, t[0].index), (0, 0));
    assert!(t[0].direction == Direction::Credit && t[0].booked && !t[0].reversal);
    assert_eq!(t[0].amount_vnd, Some(100_000));
    assert_eq!(t[0].currency, "VND");
    assert_eq!(t[0].bank_transaction.as_deref(), Some("FT24331ABC"), "TxDtls/Refs/TxId");
    assert_eq!(t[0].reference, None, "the fixture's EndToEndId is not one of ours");
    let v02 = hcc_signing::xml::dom::parse(include_bytes!("../../../../tests/fixtures/xml/02-camt054-v02.xml")).unwrap();
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
    let batch = read(include_bytes!("../../../../tests/fixtures/xml/13-camt054-v08-batch.xml"));
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
    let reversal = read(include_bytes!("../../../../tests/fixtures/xml/14-camt054-v08-reversal.xml"));
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
    let v02 = read(include_bytes!("../../../../tests/fixtures/xml/15-camt054-v02-batch.xml"));
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
    let t =
        one("<TxDtls><Refs><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs><RmtInf><Ustrd>hcc261125ab12cd34</Ustrd></RmtInf></TxDtls>");
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
