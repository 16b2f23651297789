//! PAdES on the signing library alone: what it signs keeps the original bytes and verifies
//! here, in both cross-reference forms; a signature whose `/ByteRange` lies is invalid even
//! when its CMS is mathematically right. The real tools' verdicts (pdfsig, pyHanko) on the
//! gateway's PDFs are in the end-to-end tests (`tests/e2e/pades.rs`), through the HTTP API.

mod common;

use common::{pki, run, s};
use hcc_signing::cades;
use hcc_signing::pades::{self, PadesError, SignOptions};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/pdf/result-classic.pdf");
/// 2026-11-25T20:30:05Z.
const TIME: i64 = 1_795_638_605;

fn options(visible: bool) -> SignOptions {
    SignOptions {
        visible,
        time: TIME,
        reserve: 16 * 1024,
    }
}

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).unwrap()
}

#[test]
fn a_signed_pdf_keeps_its_original_bytes_and_verifies() {
    let p = pki();
    let original = fixture();
    for visible in [false, true] {
        let signed = pades::sign(&original, &p.pki.gateway, &options(visible)).unwrap();
        assert_eq!(&signed[..original.len()], &original[..], "the original bytes changed");
        let report = pades::verify(&signed, &p.trust).unwrap();
        assert_eq!(report.len(), 1);
        let sig = &report[0];
        assert!(sig.valid && sig.trusted && sig.covers_whole_document, "{sig:?}");
        assert!(sig.signer.as_ref().unwrap().subject.contains("hcc-gateway"));
        // The CMS signing-time attribute (the moment of signing, UTC) wins over the
        // dictionary's /M, which is only a fallback for CMS without one.
        let at = sig.signed_at.as_deref().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z') && at != "2026-11-26T03:30:05+07:00", "{at}");
    }
    assert!(pades::verify(&original, &p.trust).unwrap().is_empty());
}

#[test]
fn a_pdf_with_an_xref_stream_gets_an_xref_stream_update() {
    let p = pki();
    let original = p.dir.join("classic.pdf");
    let streams = p.dir.join("streams.pdf");
    std::fs::write(&original, fixture()).unwrap();
    let (ok, log) = run("qpdf", &["--object-streams=generate", s(&original), s(&streams)]);
    assert!(ok, "{log}");
    let bytes = std::fs::read(&streams).unwrap();
    let signed = pades::sign(&bytes, &p.pki.gateway, &options(true)).unwrap();
    let update = String::from_utf8_lossy(&signed[bytes.len()..]).into_owned();
    assert!(update.contains("/Type/XRef") && !update.contains("\nxref\n"), "{update:.300}");
    // Signed twice: both signatures stay valid, only the second covers the whole file.
    let twice = pades::sign(&signed, &p.pki.gateway, &options(false)).unwrap();
    let report = pades::verify(&twice, &p.trust).unwrap();
    let flags: Vec<(bool, bool)> = report.iter().map(|r| (r.valid, r.covers_whole_document)).collect();
    assert_eq!(flags, vec![(true, false), (true, true)], "{report:?}");
}

#[test]
fn a_lying_byte_range_is_invalid_even_with_a_matching_cms() {
    let p = pki();
    let prepared = pades::prepare(&fixture(), &p.pki.gateway.cert, &options(false)).unwrap();
    let [_, gap_start, gap_end, _] = prepared.byte_range();
    let mut pdf = prepared.pdf().to_vec();
    // Widen the gap by 6 bytes past the hex string (over the dictionary's closing ">>" and
    // beyond), rewrite /ByteRange in place, and sign exactly what the lying range covers.
    let liar = gap_end + 6;
    let old = format!("[0 {gap_start} {gap_end} {}]", pdf.len() - gap_end);
    let new = format!("[0 {gap_start} {liar} {}]", pdf.len() - liar);
    let at = pdf.windows(old.len()).position(|w| w == old.as_bytes()).unwrap();
    let padded = format!("{new:<width$}", width = old.len() + 1);
    pdf[at..at + padded.len()].copy_from_slice(padded.as_bytes());
    let mut covered = pdf[..gap_start].to_vec();
    covered.extend_from_slice(&pdf[liar..]);
    let der = cades::sign(&p.pki.gateway, &covered).unwrap().into_der();
    let hex = hex::encode_upper(&der);
    pdf[gap_start + 1..gap_start + 1 + hex.len()].copy_from_slice(hex.as_bytes());
    // The CMS matches what the range covers, so only the range check can catch it.
    assert!(cades::verify(&der, &covered, &p.trust).unwrap().valid);
    let report = pades::verify(&pdf, &p.trust).unwrap();
    assert_eq!(report.len(), 1);
    assert!(!report[0].valid, "{:?}", report[0]);
    assert!(report[0].reason.as_deref().unwrap().contains("/ByteRange"), "{:?}", report[0]);
}

#[test]
fn encrypted_truncated_and_non_pdf_bodies_are_refused() {
    let p = pki();
    let src = p.dir.join("plain.pdf");
    let enc = p.dir.join("enc.pdf");
    std::fs::write(&src, fixture()).unwrap();
    // An empty user password: readers open it without asking, and it is still encrypted.
    let (ok, log) = run("qpdf", &["--encrypt", "", "owner-secret", "256", "--", s(&src), s(&enc)]);
    assert!(ok, "{log}");
    let encrypted = std::fs::read(&enc).unwrap();
    assert!(matches!(
        pades::sign(&encrypted, &p.pki.gateway, &options(false)),
        Err(PadesError::Encrypted)
    ));
    assert!(matches!(pades::verify(&encrypted, &p.trust), Err(PadesError::Encrypted)));
    let whole = fixture();
    let truncated = &whole[..whole.len() * 2 / 3];
    assert!(matches!(
        pades::sign(truncated, &p.pki.gateway, &options(false)),
        Err(PadesError::Malformed(_))
    ));
    assert!(matches!(
        pades::sign(b"not a pdf", &p.pki.gateway, &options(false)),
        Err(PadesError::Malformed(_))
    ));
}

#[test]
fn a_signature_too_large_for_its_reserve_is_refused() {
    let p = pki();
    let small = SignOptions {
        reserve: 64,
        ..options(false)
    };
    assert!(matches!(
        pades::sign(&fixture(), &p.pki.gateway, &small),
        Err(PadesError::SignatureTooLarge { reserved: 64, .. })
    ));
}

/// The fixture with its last `/Size` replaced by `size` (in place: no offset moves), as a
/// classic table or, with `streams`, a cross-reference stream.
fn with_size(p: &common::Pki, streams: bool, size: &str) -> Vec<u8> {
    let mut bytes = fixture();
    if streams {
        let (original, out) = (p.dir.join("size-classic.pdf"), p.dir.join("size-streams.pdf"));
        std::fs::write(&original, &bytes).unwrap();
        let (ok, log) = run("qpdf", &["--object-streams=generate", s(&original), s(&out)]);
        assert!(ok, "{log}");
        bytes = std::fs::read(&out).unwrap();
    }
    let at = bytes.windows(6).rposition(|w| w == b"/Size ").unwrap() + "/Size ".len();
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut out = bytes[..at].to_vec();
    if streams {
        // The entries stay where they were: /Index says which objects they are, as /Size no
        // longer does.
        let count = std::str::from_utf8(&bytes[at..at + digits]).unwrap();
        out.truncate(at - "/Size ".len());
        out.extend_from_slice(format!("/Index [0 {count}] /Size ").as_bytes());
    }
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(&bytes[at + digits..]);
    out
}

#[test]
fn an_object_count_beyond_what_a_pdf_may_hold_is_refused_never_a_panic() {
    let p = pki();
    for streams in [false, true] {
        for size in ["4294967295", "4294967296", "8388609", "8388608"] {
            let pdf = with_size(&p, streams, size);
            let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pades::sign(&pdf, &p.pki.gateway, &options(false))));
            match signed {
                Ok(Err(PadesError::Malformed(why))) => assert!(why.contains("/Size"), "{size}: {why}"),
                Ok(Err(e)) => panic!("streams={streams} /Size {size}: {e}"),
                Ok(Ok(_)) => panic!("streams={streams} /Size {size}: signed"),
                Err(_) => panic!("streams={streams} /Size {size}: panicked"),
            }
            let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pades::verify(&pdf, &p.trust)));
            assert!(verified.is_ok(), "streams={streams} /Size {size}: verify panicked");
        }
        // A /Size that is merely generous still signs, with object numbers above it.
        let pdf = with_size(&p, streams, "1000");
        let signed = pades::sign(&pdf, &p.pki.gateway, &options(false)).unwrap();
        let report = pades::verify(&signed, &p.trust).unwrap();
        assert!(report.len() == 1 && report[0].valid, "{report:?}");
    }
}

#[test]
fn a_change_after_signing_is_named_and_a_second_signature_is_not_one() {
    let p = pki();
    let signed = pades::sign(&fixture(), &p.pki.gateway, &options(true)).unwrap();
    // A second signature (visible: a new widget with its appearance) changes nothing signed.
    let twice = pades::sign(&signed, &p.pki.gateway, &options(true)).unwrap();
    let report = pades::verify(&twice, &p.trust).unwrap();
    assert!(
        report.iter().all(|s| s.valid && !s.modified_after_signing && s.reason.is_none()),
        "{report:?}"
    );
    assert!(!report[0].covers_whole_document);
    // The document information dictionary is metadata: updating it is no modification.
    let info = common::redefine_object(&signed, 6, "<< /Title (HCC result document) /ModDate (D:20270101000000Z) >>");
    let report = pades::verify(&info, &p.trust).unwrap();
    assert!(report[0].valid && !report[0].modified_after_signing, "{report:?}");
    // The page's content changed after signing: the signature still verifies over its range,
    // and the answer says the document was modified, and what.
    for changed in [
        common::redefine_object(&signed, 4, common::REVOKED_CONTENT),
        common::redefine_object(&twice, 4, common::REVOKED_CONTENT),
    ] {
        let report = pades::verify(&changed, &p.trust).unwrap();
        for s in &report {
            assert!(s.valid && s.modified_after_signing && !s.covers_whole_document, "{report:?}");
            let reason = s.reason.as_deref().unwrap();
            assert!(
                reason.contains("modified after signing") && reason.contains("object 4 0"),
                "{reason}"
            );
        }
    }
    // A page that gains another annotation (not a signature) is modified too.
    let page = "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R /Annots [] >>";
    let report = pades::verify(&common::redefine_object(&fixture_signed_plain(&p), 3, page), &p.trust).unwrap();
    assert!(report[0].modified_after_signing, "{report:?}");
}

/// The fixture signed invisibly (its page then keeps its own dictionary but for /Annots).
fn fixture_signed_plain(p: &common::Pki) -> Vec<u8> {
    pades::sign(&fixture(), &p.pki.gateway, &options(false)).unwrap()
}
