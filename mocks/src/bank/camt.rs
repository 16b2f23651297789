//! The camt.054 document as the bank writes it: the entry's shape decided from a request,
//! then each `Ntry` (bank transaction code, remittance, references) and the whole document.

use super::{BankState, Credit, DEFAULT_ACCOUNT, MAX_TRANSACTIONS, Refs, SPLIT_WIDTH, Shape, Tx, TxSpec};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `yyyyMMddHHmmss` (Vietnam time) to `(yyyy-MM-ddTHH:mm:ss+07:00, yyyy-MM-dd)`.
pub(super) fn iso_now() -> (String, String) {
    let t = crate::paygov::chrono_like_now();
    if t.len() != 14 {
        return ("2026-11-25T10:00:00+07:00".into(), "2026-11-25".into());
    }
    let date = format!("{}-{}-{}", &t[0..4], &t[4..6], &t[6..8]);
    (format!("{date}T{}:{}:{}+07:00", &t[8..10], &t[10..12], &t[12..14]), date)
}

pub(super) fn shape(state: &BankState, c: &Credit) -> Result<Shape, String> {
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
pub(super) fn ntry(s: &Shape) -> String {
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
pub(super) fn document(v02: bool, msg_id: &str, created: &str, notifications: &[(String, Vec<String>)]) -> String {
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

pub(super) fn camt(s: &Shape) -> String {
    document(s.v02, &s.entry_ref, &s.created, &[(s.account.clone(), vec![ntry(s)])])
}
