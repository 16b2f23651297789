//! Bank camt.054 documents as ISO 20022 describes them, checked without the gateway's HTTP
//! handler: the hand-written fixtures signed by `xmlsec1` with the algorithms banks use, and
//! every shape mock-bank can send, verified by `dsig::verify_enveloped` under the pinned bank
//! certificate and read by `camt054::transactions`.

use std::path::PathBuf;
use std::process::Command;

use hcc_adapters::payments::bank::camt054::{self, Direction, Transaction};
use hcc_mocks::bank::BankState;
use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
use hcc_signing::pki::{CertError, Identity, TrustStore};
use hcc_signing::xml::dom;
use hcc_signing::xml::dsig::{DsigError, XmlTrust, verify_enveloped};
use hcc_tests::workspace_dir;
use serde_json::{Value, json};

struct Pki {
    dir: PathBuf,
    pki: DevPki,
    trust: TrustStore,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("hcc-bankxml-{}", uuid::Uuid::new_v4().simple()));
    let pki = DevPki::generate().unwrap();
    pki.write(&dir).unwrap();
    let trust = TrustStore::from_dir(&dir.join("trust")).unwrap();
    Pki { dir, pki, trust }
}

impl Pki {
    fn bank(&self) -> XmlTrust<'_> {
        XmlTrust::Pinned {
            cert: &self.pki.bank.cert,
            store: Some(&self.trust),
        }
    }

    fn xmlsec1(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("xmlsec1")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run xmlsec1 (apt-get install -y xmlsec1): {e}"));
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// `xmlsec1 --verify` against the dev root.
    fn xmlsec_verifies(&self, name: &str, signed: &[u8]) -> (bool, String) {
        let path = self.dir.join(format!("check-{name}.xml"));
        std::fs::write(&path, signed).unwrap();
        let root = self.dir.join("root.pem");
        self.xmlsec1(&["--verify", "--trusted-pem", root.to_str().unwrap(), path.to_str().unwrap()])
    }
}

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const INCLUSIVE: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// A signature template as .NET's SignedXml writes one (unprefixed, inclusive C14N, only the
/// enveloped transform), or the `ds:`-prefixed exclusive shape.
fn template(inclusive: bool, sig: &str, digest: &str) -> String {
    if inclusive {
        format!(
            "<Signature xmlns=\"{DSIG}\"><SignedInfo><CanonicalizationMethod Algorithm=\"{INCLUSIVE}\"/><SignatureMethod Algorithm=\"{sig}\"/>\
             <Reference URI=\"\"><Transforms><Transform Algorithm=\"{DSIG}enveloped-signature\"/></Transforms>\
             <DigestMethod Algorithm=\"{digest}\"/><DigestValue/></Reference></SignedInfo><SignatureValue/>\
             <KeyInfo><X509Data/></KeyInfo></Signature>"
        )
    } else {
        format!(
            "<ds:Signature xmlns:ds=\"{DSIG}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXCLUSIVE}\"/>\
             <ds:SignatureMethod Algorithm=\"{sig}\"/><ds:Reference URI=\"\"><ds:Transforms>\
             <ds:Transform Algorithm=\"{DSIG}enveloped-signature\"/><ds:Transform Algorithm=\"{EXCLUSIVE}\"/></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>\
             <ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"
        )
    }
}

fn xmlsec_sign(p: &Pki, name: &str, xml: &str, tmpl: &str) -> Vec<u8> {
    let at = xml.rfind("</Document>").unwrap();
    let path = p.dir.join(format!("tmpl-{name}"));
    let out = p.dir.join(format!("signed-{name}"));
    std::fs::write(&path, format!("{}{tmpl}{}", &xml[..at], &xml[at..])).unwrap();
    let keys = format!("{},{}", p.dir.join("bank.key").display(), p.dir.join("bank.pem").display());
    let (ok, log) = p.xmlsec1(&[
        "--sign",
        "--privkey-pem",
        &keys,
        "--output",
        out.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(ok, "xmlsec1 could not sign {name}: {log}");
    std::fs::read(out).unwrap()
}

fn read(xml: &[u8]) -> Vec<Transaction> {
    camt054::transactions(&dom::parse(xml).unwrap()).unwrap()
}

#[test]
fn camt054_fixtures_signed_by_xmlsec1_like_a_bank_verify_and_read_the_same() {
    let p = pki();
    let names = [
        "01-camt054-v08.xml",
        "02-camt054-v02.xml",
        "13-camt054-v08-batch.xml",
        "14-camt054-v08-reversal.xml",
        "15-camt054-v02-batch.xml",
    ];
    for name in names {
        let xml = std::fs::read_to_string(workspace_dir().join("tests/fixtures/xml").join(name)).unwrap();
        let unsigned = read(xml.as_bytes());
        for (variant, tmpl) in [
            ("inclusive-rsa-sha512", template(true, RSA_SHA512, SHA512)),
            ("inclusive-rsa-sha512-sha256", template(true, RSA_SHA512, SHA256)),
            ("exclusive-rsa-sha256", template(false, RSA_SHA256, SHA256)),
        ] {
            let signed = xmlsec_sign(&p, &format!("{variant}-{name}"), &xml, &tmpl);
            let v = verify_enveloped(&signed, &p.bank()).unwrap_or_else(|e| panic!("{variant} {name}: {e}"));
            assert!(v.signer.subject.contains("Dev Bank"));
            // What is read from the verified document is what the fixture says.
            assert_eq!(camt054::transactions(&v.document).unwrap(), unsigned, "{variant} {name}");
            // One character of an amount changed: refused by us and by xmlsec1.
            let text = String::from_utf8(signed.clone()).unwrap();
            let tampered = text.replacen("00</Amt>", "01</Amt>", 1);
            assert_ne!(tampered, text);
            assert_eq!(
                verify_enveloped(tampered.as_bytes(), &p.bank()).unwrap_err(),
                DsigError::DigestMismatch,
                "{variant} {name}"
            );
            assert!(!p.xmlsec_verifies(&format!("{variant}-{name}"), tampered.as_bytes()).0);
        }
    }
}

struct Bank {
    p: Pki,
    running: hcc_mocks::Running,
    client: reqwest::Client,
}

impl Bank {
    async fn start() -> Bank {
        let p = pki();
        let (key, cert) = issue(
            &CertSpec {
                common_name: "Stranger Bank",
                key: KeyKind::Rsa2048,
                role: Role::Signer,
                from_days: -1,
                to_days: 30,
            },
            Some((&p.pki.root, &p.pki.root_key)),
        )
        .unwrap();
        let state = BankState::new(
            "HCCDEV01",
            "secret",
            Identity {
                key: p.pki.bank_key.clone().into(),
                cert: p.pki.bank.cert.clone(),
                chain: vec![],
            },
            Identity {
                key: key.into(),
                cert,
                chain: vec![],
            },
        );
        let running = hcc_mocks::bank::spawn("127.0.0.1:0", state).unwrap();
        Bank {
            p,
            running,
            client: reqwest::Client::new(),
        }
    }

    /// Asks the mock to build (not send) a document; returns the HTTP status and the answer.
    async fn ask(&self, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/_mock/bank/credit", self.running.url()))
            .json(&body)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The document the mock signed, verified under the pinned bank certificate and read.
    async fn document(&self, body: Value) -> (String, Vec<Transaction>) {
        let (status, answer) = self.ask(body.clone()).await;
        assert_eq!(status, 200, "{body}: {answer}");
        let xml = answer["document"].as_str().unwrap().to_string();
        let v = verify_enveloped(xml.as_bytes(), &self.p.bank()).unwrap_or_else(|e| panic!("{body}: {e}\n{xml}"));
        assert!(xml.contains("<BkTxCd>"), "real documents always carry BkTxCd: {xml}");
        let (ok, log) = self.p.xmlsec_verifies("mock", xml.as_bytes());
        assert!(ok, "xmlsec1 refused the mock's {body}: {log}");
        (xml.clone(), camt054::transactions(&v.document).unwrap())
    }
}

#[tokio::test]
async fn mock_bank_sends_what_iso_20022_describes() {
    let b = Bank::start().await;
    let r = "HCC261125AB12CD34";

    // A plain credit, both versions: reference, amount, the bank's identity.
    for (version, remittance) in [("08", "e2e"), ("02", "ustrd")] {
        let (xml, t) = b
            .document(json!({"reference": r, "amount_vnd": 120_000, "version": version, "bank_ref": "FT100"}))
            .await;
        assert!(xml.contains(&format!("camt.054.001.{version}")));
        assert_eq!(t.len(), 1, "{remittance}");
        let t = &t[0];
        assert_eq!((t.direction, t.reversal, t.booked), (Direction::Credit, false, true));
        assert_eq!((t.amount_vnd, t.currency.as_str()), (Some(120_000), "VND"));
        assert_eq!(t.bank_transaction.as_deref(), Some("FT100"));
        assert_eq!((t.reference.as_deref(), t.references_found), (Some(r), 1), "{version}");
    }

    // Every place a reference may sit, in both versions.
    for version in ["08", "02"] {
        for remittance in ["e2e", "ustrd", "ustrd_multiline", "ustrd_split", "strd"] {
            let (xml, t) = b
                .document(json!({"reference": r, "amount_vnd": 50_000, "version": version, "remittance": remittance}))
                .await;
            assert_eq!(
                (t[0].reference.as_deref(), t[0].references_found),
                (Some(r), 1),
                "{version} {remittance}"
            );
            match remittance {
                "ustrd_multiline" => assert_eq!(xml.matches("<Ustrd>").count(), 2),
                // Split: no single line holds the whole reference.
                "ustrd_split" => assert!(!xml.contains(r), "{xml}"),
                "strd" => assert!(xml.contains(&format!("<Ref>{r}</Ref>"))),
                _ => {}
            }
        }
    }

    // A batch entry: each transaction its own amount and bank reference, never the total.
    for version in ["08", "02"] {
        let (xml, t) = b
            .document(
                json!({"version": version, "bank_ref": "B7", "remittance": "ustrd_multiline", "transactions": [
                    {"reference": "HCC261125AAAA1111", "amount_vnd": 100_000, "bank_ref": "B7-A"},
                    {"reference": "HCC261125BBBB2222", "amount_vnd": 250_000, "bank_ref": "B7-B"},
                    {"reference": "HCC261125CCCC3333", "amount_vnd": 50_000},
                ]}),
            )
            .await;
        assert!(
            xml.contains("<NbOfTxs>3</NbOfTxs>") && xml.contains("<TtlAmt Ccy=\"VND\">400000</TtlAmt>"),
            "{xml}"
        );
        assert!(xml.contains("<Amt Ccy=\"VND\">400000</Amt>"));
        let got: Vec<_> = t
            .iter()
            .map(|t| (t.entry, t.index, t.amount_vnd, t.bank_transaction.clone(), t.reference.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, Some(100_000), Some("B7-A".into()), Some("HCC261125AAAA1111".into())),
                (0, 1, Some(250_000), Some("B7-B".into()), Some("HCC261125BBBB2222".into())),
                (0, 2, Some(50_000), Some("B7-3".into()), Some("HCC261125CCCC3333".into())),
            ],
            "{version}"
        );
    }

    // The reversal of a credit: DBIT with RvslInd, repeating the original's references; the
    // entry has its own AcctSvcrRef.
    b.document(json!({"reference": r, "amount_vnd": 200_000, "bank_ref": "FT1"})).await;
    for version in ["08", "02"] {
        let (xml, t) = b
            .document(json!({"reference": r, "amount_vnd": 200_000, "reversal": true, "bank_ref": "RV1", "version": version}))
            .await;
        assert!(xml.contains("<CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>"), "{xml}");
        assert!(xml.contains("<AcctSvcrRef>RV1</AcctSvcrRef>"));
        let t = &t[0];
        assert_eq!((t.direction, t.reversal, t.booked), (Direction::Debit, true, true));
        assert_eq!(t.bank_transaction.as_deref(), Some("FT1"), "the original credit's identity");
        assert_eq!((t.reference.as_deref(), t.amount_vnd), (Some(r), Some(200_000)));
    }
    // Named explicitly; and the return of an earlier debit (CRDT + RvslInd).
    let (_, t) = b
        .document(json!({"reference": r, "amount_vnd": 1, "reversal": true, "original_bank_ref": "FT-OLD"}))
        .await;
    assert_eq!(t[0].bank_transaction.as_deref(), Some("FT-OLD"));
    let (_, t) = b
        .document(json!({"reference": r, "amount_vnd": 1, "reversal": true, "debit": false}))
        .await;
    assert_eq!((t[0].direction, t[0].reversal), (Direction::Credit, true));
    let (_, t) = b.document(json!({"reference": r, "amount_vnd": 1, "debit": true})).await;
    assert_eq!((t[0].direction, t[0].reversal), (Direction::Debit, false));
    let (_, t) = b
        .document(json!({"reference": r, "amount_vnd": 1, "status": "PDNG", "bktxcd": "proprietary"}))
        .await;
    assert!(!t[0].booked);

    // Signed by xmlsec1 with the algorithms of other signers.
    for (body, expect) in [
        (
            json!({"c14n": "inclusive", "signature": "rsa-sha512"}),
            [INCLUSIVE, RSA_SHA512, SHA512],
        ),
        (json!({"c14n": "inclusive"}), [INCLUSIVE, RSA_SHA256, SHA256]),
        (
            json!({"signature": "rsa-sha512", "digest": "sha256", "version": "02"}),
            [EXCLUSIVE, RSA_SHA512, SHA256],
        ),
        (json!({"c14n": "exclusive"}), [EXCLUSIVE, RSA_SHA256, SHA256]),
    ] {
        let mut request = json!({"reference": r, "amount_vnd": 75_000});
        for (k, v) in body.as_object().unwrap() {
            request[k] = v.clone();
        }
        let (xml, t) = b.document(request).await;
        for uri in expect {
            assert!(xml.contains(&format!("Algorithm=\"{uri}\"")), "{body}: {uri} not in {xml}");
        }
        assert_eq!((t[0].reference.as_deref(), t[0].amount_vnd), (Some(r), Some(75_000)));
    }

    // Tampered after signing, and signed by another bank: refused.
    for (extra, want) in [
        (json!({"tamper": true}), DsigError::DigestMismatch),
        (
            json!({"tamper": true, "c14n": "inclusive", "signature": "rsa-sha512"}),
            DsigError::DigestMismatch,
        ),
        (
            json!({"stranger": true}),
            DsigError::Certificate(CertError::NotTheConfiguredCertificate),
        ),
        (
            json!({"stranger": true, "c14n": "inclusive"}),
            DsigError::Certificate(CertError::NotTheConfiguredCertificate),
        ),
    ] {
        let mut request = json!({"reference": r, "amount_vnd": 75_000});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        let (status, answer) = b.ask(request).await;
        assert_eq!(status, 200);
        let xml = answer["document"].as_str().unwrap();
        assert_eq!(verify_enveloped(xml.as_bytes(), &b.p.bank()).unwrap_err(), want, "{extra}");
    }

    // A request the mock cannot honour says why.
    for bad in [
        json!({"amount_vnd": 1}),
        json!({"reference": r, "amount_vnd": 1, "c14n": "c14n11"}),
        json!({"reference": r, "amount_vnd": 1, "remittance": "elsewhere"}),
        json!({"reference": r, "amount_vnd": 1, "copies": 0}),
        json!({"transactions": []}),
    ] {
        let (status, answer) = b.ask(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].is_string());
    }
    b.running.stop().await;
}
