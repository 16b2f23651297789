//! The national procedure catalogue through the portal's session (public code: OpenCPS
//! `getSharingDictCollection` / `getSharingData`, `docs/dvcqg.md`): `LayDanhSachTTHC` on the
//! **share** endpoint lists the procedures, `LayThuTuc` `{maTTHC}` on the **integration**
//! endpoint gives one procedure's details. Answers are `{error_code, result: [...]}` with
//! upper-case fields (`MATTHC`, `TENTTHC`); `data` is read too, and a one-object `result` as
//! well as a list of one.

use serde_json::{Map, Value};

use super::{Answer, Attempt, DvcqgAdapter, Failure};
use crate::BoxFuture;
use crate::catalogue::{CatalogueSource, ListedProcedure, is_procedure_code};
use crate::inbound::SourceError;

/// The list's answer may be large (a few thousand procedures, a few hundred bytes each).
const MAX_LIST_BYTES: usize = 32 * 1024 * 1024;

fn failed(f: Failure, what: &str) -> SourceError {
    let reason = match f.outcome {
        crate::Outcome::Retry { reason, .. } | crate::Outcome::Reject { reason } => reason,
        crate::Outcome::Delivered => format!("{what} failed"),
    };
    SourceError {
        reason: format!("{what}: {reason}"),
        alarm: !f.transient,
    }
}

/// The entries of an answer: `result` (or `data`) as a list, or one object as a list of one.
fn entries(answer: &Value) -> Option<Vec<Value>> {
    let v = answer.get("result").or_else(|| answer.get("data"))?;
    match v {
        Value::Array(items) => Some(items.clone()),
        Value::Object(_) => Some(vec![v.clone()]),
        _ => None,
    }
}

/// A text field by any of its spellings across versions (`MATTHC`, `MaTTHC`).
fn text<'a>(entry: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| entry.get(*n).and_then(Value::as_str)).map(str::trim)
}

/// The list as the portal sends it; entries without a usable code are skipped (and counted in
/// the log), a list over `max` is refused whole.
pub fn read_list(answer: &Value, max: usize) -> Result<Vec<ListedProcedure>, SourceError> {
    let items = entries(answer).ok_or_else(|| SourceError::alarm("LayDanhSachTTHC answered without a result list"))?;
    if items.len() > max {
        return Err(SourceError::alarm(format!(
            "LayDanhSachTTHC listed {} procedures, more than the {max} taken",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = 0usize;
    for item in items {
        match text(&item, &["MATTHC", "MaTTHC", "maTTHC"]) {
            Some(code) if is_procedure_code(code) => out.push(ListedProcedure {
                code: code.to_string(),
                name: text(&item, &["TENTTHC", "TenTTHC", "tenTTHC"]).unwrap_or("").to_string(),
                raw: item.clone(),
            }),
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            destination = super::DESTINATION,
            skipped,
            "LayDanhSachTTHC entries without a usable MATTHC were skipped"
        );
    }
    Ok(out)
}

/// One procedure's details: the entry naming `code` (or the only one).
pub fn read_procedure(answer: &Value, code: &str) -> Result<Value, SourceError> {
    let items = entries(answer).ok_or_else(|| SourceError::alarm("LayThuTuc answered without a result"))?;
    let named = items
        .iter()
        .find(|i| text(i, &["MATTHC", "MaTTHC", "maTTHC"]) == Some(code))
        .or(if items.len() == 1 { items.first() } else { None });
    named
        .filter(|v| v.is_object())
        .cloned()
        .ok_or_else(|| SourceError::transient("LayThuTuc answered without this procedure"))
}

impl CatalogueSource for DvcqgAdapter {
    fn procedures(&self, max: usize) -> BoxFuture<'_, Result<Vec<ListedProcedure>, SourceError>> {
        Box::pin(async move {
            let attempt = Attempt::starting_now(self.cfg.timeout);
            match self
                .call_at(&self.share_url, "LayDanhSachTTHC", &Map::new(), attempt, MAX_LIST_BYTES)
                .await
            {
                Ok(Answer::Ok(v)) => read_list(&v, max),
                Ok(Answer::Refused { code, .. }) => Err(SourceError::transient(format!(
                    "the portal refused LayDanhSachTTHC (error_code {code})"
                ))),
                Err(f) => Err(failed(f, "LayDanhSachTTHC")),
            }
        })
    }

    fn procedure<'a>(&'a self, code: &'a str, max_bytes: usize) -> BoxFuture<'a, Result<Value, SourceError>> {
        Box::pin(async move {
            let attempt = Attempt::starting_now(self.cfg.timeout);
            let mut fields = Map::new();
            fields.insert("maTTHC".into(), Value::from(code));
            match self.call_at(&self.integration_url, "LayThuTuc", &fields, attempt, max_bytes).await {
                Ok(Answer::Ok(v)) => read_procedure(&v, code),
                Ok(Answer::Refused { code: c, .. }) => {
                    Err(SourceError::transient(format!("the portal refused LayThuTuc (error_code {c})")))
                }
                Err(f) => Err(failed(f, "LayThuTuc")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_list_is_read_in_any_spelling_and_bad_codes_are_skipped() {
        let answer = json!({"error_code": "0", "result": [
            {"MATTHC": "1.001234", "TENTTHC": "Đăng ký khai sinh"},
            {"MaTTHC": "2.000123", "TenTTHC": "Cấp phép"},
            {"MATTHC": "a/b"},
            {"TENTTHC": "no code"}
        ]});
        let l = read_list(&answer, 10).expect("read");
        assert_eq!(l.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(), vec!["1.001234", "2.000123"]);
        assert_eq!(l[0].name, "Đăng ký khai sinh");
        assert_eq!(l[0].raw["TENTTHC"], "Đăng ký khai sinh");
        assert!(read_list(&answer, 3).is_err(), "a list over the bound is refused whole");
        assert!(read_list(&json!({"error_code": 0}), 10).is_err());
    }

    #[test]
    fn details_name_the_procedure_asked_for() {
        let one = json!({"result": {"MATTHC": "1.001234", "LINHVUCTHUCHIEN": [{"MALINHVUC": "HT"}]}});
        assert_eq!(
            read_procedure(&one, "1.001234").expect("read")["LINHVUCTHUCHIEN"][0]["MALINHVUC"],
            "HT"
        );
        let list = json!({"data": [{"MATTHC": "9"}, {"MATTHC": "1.001234", "X": 1}]});
        assert_eq!(read_procedure(&list, "1.001234").expect("read")["X"], 1);
        assert!(read_procedure(&json!({"result": [{"MATTHC": "9"}, {"MATTHC": "8"}]}), "1.001234").is_err());
        assert!(read_procedure(&json!({"result": ["x"]}), "1.001234").is_err());
    }
}
