//! The national procedure catalogue as a counterpart serves it: the list of procedures and
//! each one's details, in the counterpart's own fields. A destination that can serve it (the
//! portal, through its own session) says so with [`crate::Adapter::catalogue`]; the gateway's
//! core keeps the copy, paces and resumes the pull, and checks dossiers against it.

use serde_json::Value;

use crate::BoxFuture;
use crate::inbound::SourceError;

/// One procedure of the list: its code (`MATTHC`) and name (`TENTTHC`), and the entry as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedProcedure {
    /// 1 to 50 visible characters, no `/` (it is a path segment of the API).
    pub code: String,
    pub name: String,
    pub raw: Value,
}

/// Whether `s` may be a procedure code the gateway keeps and serves: 1 to 50 printable ASCII
/// characters without a space or `/` (national codes look like `1.001234` or `2.000123.000.00.00.H46`).
pub fn is_procedure_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 50 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
}

/// A counterpart that serves the catalogue. Every call is bounded in time by the counterpart
/// and is not retried inside: the sync paces and retries.
pub trait CatalogueSource: Send + Sync {
    /// Every procedure the counterpart lists now, at most `max` (more is an error: a list that
    /// large is not the catalogue).
    fn procedures(&self, max: usize) -> BoxFuture<'_, Result<Vec<ListedProcedure>, SourceError>>;

    /// One procedure's details as sent (`LayThuTuc`), at most `max_bytes` of answer.
    fn procedure<'a>(&'a self, code: &'a str, max_bytes: usize) -> BoxFuture<'a, Result<Value, SourceError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procedure_codes_are_short_visible_ascii_without_separators() {
        for ok in ["1.001234", "2.000123.000.00.00.H46", "BTP-HCM-123"] {
            assert!(is_procedure_code(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "..\\x", &"1".repeat(51), "thủ tục"] {
            assert!(!is_procedure_code(bad), "{bad}");
        }
    }
}
