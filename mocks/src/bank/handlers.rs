//! The endpoints: `/_mock/bank/credit`, `/_mock/bank/statement` and `/_mock/bank/vietqr`,
//! and the signing and sending of a document they share.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::camt::{camt, document, iso_now, ntry, shape};
use super::sign::{signing, xmlsec_sign};
use super::{BankState, Credit, MAX_COPIES, MAX_STATEMENT_ENTRIES, Signing, one, v08};

pub(super) async fn credit(state: web::Data<BankState>, c: web::Json<Credit>) -> HttpResponse {
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
pub(super) struct Statement {
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

pub(super) async fn statement(state: web::Data<BankState>, st: web::Json<Statement>) -> HttpResponse {
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
pub(super) struct VietqrScan {
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

pub(super) async fn vietqr(state: web::Data<BankState>, q: web::Json<VietqrScan>) -> HttpResponse {
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
