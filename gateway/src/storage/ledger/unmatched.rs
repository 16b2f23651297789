//! Bank money that paid or reversed nothing: kept for a person, never dropped. A bank credit or
//! reversal from a configured bank that the matching rules could not apply (no reference, an
//! ambiguous one, another amount, another account, a reversal of nothing, a possible repeat, a
//! fee already paid) becomes one entry here, `open` until a finance officer assigns it to a
//! payment or marks it to be returned to the payer (docs/operations.md).
//!
//! An entry's id is derived from the bank, the transaction's identity and the reason, so a
//! statement sent again lists nothing twice. Both backends keep the same rules; the Redis one
//! shares the payment ledger's hash tag.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:{l}:unmatched:e:<id>` | hash | `entry` (JSON), `state`, `reason`, `created`, `updated`, `settled_with`, `settled_by` |
//! | `p:{l}:unmatched:ix:all` | zset | id -> creation time, of every entry |
//! | `p:{l}:unmatched:ix:s:<state>` | zset | id -> creation time, of the entries in that state |
//! | `p:{l}:unmatched:open` | hash | reason -> open entries (kept by put and settle, for the metric), `counted` |
//! | `p:{l}:payment:bankdoc:<source>:<identity>` | string | the document that first carried a content identity |

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::{Script, Value};
use serde::{Deserialize, Serialize};

use super::PaymentLedger;
// The memory backend's book lives in the ledger's state, under the one mutex that mirrors a
// Redis script (the deliberate circle of `ledger::memory` and `storage::memory`).
use super::memory::MemoryLedger;
use super::redis::RedisLedger;
use crate::storage::redis::{corrupt, counter, one_of_two, reply, text};
use crate::storage::{Millis, StorageError, dispatch};

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/unmatched_put.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/unmatched_settle.lua")));
static OPEN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/unmatched_open.lua")));

/// Where an unmatched entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedState {
    /// Waiting for a person.
    Open,
    /// It paid the payment named in `settled_with`.
    Assigned,
    /// To be given back to the payer, for the reason in `settled_with`.
    Returned,
}

impl UnmatchedState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnmatchedState::Open => "open",
            UnmatchedState::Assigned => "assigned",
            UnmatchedState::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "assigned" => Self::Assigned,
            "returned" => Self::Returned,
            _ => return None,
        })
    }
}

/// What the bank said, as kept (the remittance text with identity numbers already masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnmatchedFacts {
    pub id: String,
    /// The configured bank's id.
    pub bank: String,
    /// `credit` or `reversal`.
    pub kind: String,
    /// Why it paid or reversed nothing: `no_reference`, `ambiguous_reference`,
    /// `amount_mismatch`, `wrong_account`, `unmatched_reversal`, `possible_repeat`,
    /// `already_paid`.
    pub reason: String,
    /// What exactly, in a sentence.
    pub detail: String,
    /// The account the bank reported.
    pub account: Option<String>,
    /// Whole đồng.
    pub amount: u64,
    pub currency: String,
    pub booking_date: String,
    /// The bank's identity of the transaction (a `content:` identity when it gave none).
    pub bank_transaction: String,
    /// The bank's references, by kind.
    #[schema(value_type = Object)]
    pub refs: hcc_adapters::payments::BankRefs,
    /// The payment reference it named, when it named exactly one.
    #[serde(rename = "MaThamChieu")]
    pub reference: Option<String>,
    /// The remittance text, identity numbers masked.
    pub remittance: String,
}

/// One unmatched entry with its state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnmatchedEntry {
    #[serde(flatten)]
    pub facts: UnmatchedFacts,
    pub state: UnmatchedState,
    /// Unix ms.
    #[serde(skip)]
    pub created_at: Millis,
    #[serde(skip)]
    pub updated_at: Millis,
    /// The payment it paid (`assigned`) or why it is returned (`returned`).
    pub settled_with: Option<String>,
    /// The API key that settled it.
    pub settled_by: Option<String>,
}

/// What a settle request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    Unknown,
    Done,
    /// The same decision was made before: nothing changed.
    Same,
    /// Another decision was made before: nothing changed.
    Settled(UnmatchedState),
}

/// The list's filter.
#[derive(Debug, Clone, Default)]
pub struct UnmatchedFilter {
    pub state: Option<UnmatchedState>,
    pub bank: Option<String>,
    /// Created at or after (Unix ms).
    pub since: Option<Millis>,
}

/// The most index entries read to apply a bank filter on top of a state index.
pub const MAX_UNMATCHED_SCANNED: usize = 5000;

/// The memory backend's book: entries by id, the same indexes as the Redis zsets.
#[derive(Default)]
pub(in crate::storage) struct UnmatchedBook {
    entries: HashMap<String, UnmatchedEntry>,
    indexes: HashMap<String, super::memory::ZSet>,
    first_documents: HashMap<String, String>,
}

impl UnmatchedBook {
    fn index(&mut self, name: &str) -> &mut super::memory::ZSet {
        self.indexes.entry(name.to_string()).or_default()
    }
}

fn index_name(state: Option<UnmatchedState>) -> String {
    match state {
        Some(s) => format!("s:{}", s.as_str()),
        None => "all".into(),
    }
}

impl PaymentLedger {
    /// Keeps `facts` as a new open entry; `false` when its id is kept already.
    pub async fn unmatched_put(&self, facts: &UnmatchedFacts, now: Millis) -> Result<bool, StorageError> {
        dispatch!(self, PaymentLedger, l => l.unmatched_put(facts, now).await)
    }

    pub async fn unmatched_get(&self, id: &str) -> Result<Option<UnmatchedEntry>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.unmatched_get(id).await)
    }

    /// Newest first; `offset`/`limit` page through the filter's entries.
    pub async fn unmatched_list(&self, f: &UnmatchedFilter, offset: usize, limit: usize) -> Result<Vec<UnmatchedEntry>, StorageError> {
        let index = index_name(f.state);
        let since = f.since.unwrap_or(0);
        let ids: Vec<String> = match &f.bank {
            None => dispatch!(self, PaymentLedger, l => l.unmatched_ids(&index, since, offset, limit).await)?,
            Some(_) => dispatch!(self, PaymentLedger, l => l.unmatched_ids(&index, since, 0, MAX_UNMATCHED_SCANNED).await)?,
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(e) = self.unmatched_get(&id).await?
                && f.bank.as_ref().is_none_or(|b| *b == e.facts.bank)
            {
                out.push(e);
            }
        }
        if f.bank.is_some() {
            out = out.into_iter().skip(offset).take(limit).collect();
        }
        Ok(out)
    }

    /// Moves an open entry to `to` (`assigned` or `returned`) with what it was settled with.
    pub async fn unmatched_settle(
        &self,
        id: &str,
        to: UnmatchedState,
        with: &str,
        by: &str,
        now: Millis,
    ) -> Result<SettleOutcome, StorageError> {
        dispatch!(self, PaymentLedger, l => l.unmatched_settle(id, to, with, by, now).await)
    }

    /// The document that first carried `identity` from `source`: `document` itself when this is
    /// the first time.
    pub async fn first_document(&self, source: &str, identity: &str, document: &str) -> Result<String, StorageError> {
        dispatch!(self, PaymentLedger, l => l.first_document(source, identity, document).await)
    }

    /// How many entries are open, by reason (`hcc_bank_unmatched_open`): reasons with none may
    /// be missing or 0. Cheap enough for every scrape (see `unmatched_open.lua`).
    pub async fn unmatched_open_by_reason(&self) -> Result<HashMap<String, u64>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.unmatched_open_by_reason().await)
    }
}

fn settle_outcome(s: &str) -> Result<SettleOutcome, StorageError> {
    Ok(match s {
        "unknown" => SettleOutcome::Unknown,
        "done" => SettleOutcome::Done,
        "same" => SettleOutcome::Same,
        _ => match s.strip_prefix("settled:").and_then(UnmatchedState::parse) {
            Some(st) => SettleOutcome::Settled(st),
            None => return Err(corrupt(format_args!("unmatched settle reply {s:?}"))),
        },
    })
}

fn entry_from(mut map: HashMap<String, String>) -> Result<UnmatchedEntry, StorageError> {
    let mut take = |k: &str| map.remove(k);
    let facts: UnmatchedFacts = take("entry")
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| corrupt("unmatched entry"))?;
    let state = take("state")
        .and_then(|s| UnmatchedState::parse(&s))
        .ok_or_else(|| corrupt("unmatched state"))?;
    let ms = |v: Option<String>, k: &str| {
        v.and_then(|x| x.parse::<Millis>().ok())
            .ok_or_else(|| corrupt(format_args!("unmatched {k}")))
    };
    Ok(UnmatchedEntry {
        facts,
        state,
        created_at: ms(take("created"), "created")?,
        updated_at: ms(take("updated"), "updated")?,
        settled_with: take("settled_with"),
        settled_by: take("settled_by"),
    })
}

impl RedisLedger {
    fn unmatched_key(&self, id: &str) -> String {
        format!("{}unmatched:e:{id}", self.base())
    }

    fn unmatched_index(&self, name: &str) -> String {
        format!("{}unmatched:ix:{name}", self.base())
    }

    fn unmatched_open(&self) -> String {
        format!("{}unmatched:open", self.base())
    }

    pub async fn unmatched_open_by_reason(&self) -> Result<HashMap<String, u64>, StorageError> {
        let mut inv = OPEN.key(self.unmatched_open());
        inv.key(self.unmatched_index("s:open")).arg(self.base());
        let flat: Vec<Value> = reply(&self.store().run(&inv).await?, "unmatched open reply")?;
        let mut out = HashMap::new();
        for pair in flat.chunks(2) {
            let [reason, n] = pair else {
                return Err(corrupt("unmatched open reply: an odd number of elements"));
            };
            out.insert(text(reason, "unmatched open reason")?, counter(n, "unmatched open count")?);
        }
        Ok(out)
    }

    pub async fn unmatched_put(&self, facts: &UnmatchedFacts, now: Millis) -> Result<bool, StorageError> {
        let json = serde_json::to_string(facts).map_err(|e| corrupt(format_args!("unmatched entry: {e}")))?;
        let mut inv = PUT.key(self.unmatched_key(&facts.id));
        inv.key(self.unmatched_index("all"))
            .key(self.unmatched_index("s:open"))
            .key(self.unmatched_open())
            .arg(&facts.id)
            .arg(json)
            .arg(now)
            .arg(&facts.reason);
        one_of_two(
            &self.store().run_acknowledged(&inv, self.base()).await?,
            "unmatched put reply",
            "created",
            "exists",
        )
    }

    pub async fn unmatched_get(&self, id: &str) -> Result<Option<UnmatchedEntry>, StorageError> {
        let map: HashMap<String, String> = self.store().cmd(redis::cmd("HGETALL").arg(self.unmatched_key(id))).await?;
        if map.is_empty() {
            return Ok(None);
        }
        entry_from(map).map(Some)
    }

    async fn unmatched_ids(&self, index: &str, since: Millis, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        self.newest_first(self.unmatched_index(index), since, offset, limit).await
    }

    pub async fn unmatched_settle(
        &self,
        id: &str,
        to: UnmatchedState,
        with: &str,
        by: &str,
        now: Millis,
    ) -> Result<SettleOutcome, StorageError> {
        let mut inv = SETTLE.key(self.unmatched_key(id));
        inv.key(self.unmatched_index("s:open"))
            .key(self.unmatched_index(&format!("s:{}", to.as_str())))
            .key(self.unmatched_open())
            .arg(id)
            .arg(to.as_str())
            .arg(with)
            .arg(by)
            .arg(now);
        let answer: String = reply(&self.store().run_acknowledged(&inv, self.base()).await?, "unmatched settle reply")?;
        settle_outcome(&answer)
    }

    pub async fn first_document(&self, source: &str, identity: &str, document: &str) -> Result<String, StorageError> {
        let key = format!("{}payment:bankdoc:{source}:{identity}", self.base());
        let before: Option<String> = self
            .store()
            .cmd(redis::cmd("SET").arg(key).arg(document).arg("NX").arg("GET"))
            .await?;
        Ok(before.unwrap_or_else(|| document.to_string()))
    }
}

impl MemoryLedger {
    pub async fn unmatched_put(&self, facts: &UnmatchedFacts, now: Millis) -> Result<bool, StorageError> {
        Ok(self.with(|l, _| {
            let book = &mut l.unmatched;
            if book.entries.contains_key(&facts.id) {
                return false;
            }
            book.entries.insert(
                facts.id.clone(),
                UnmatchedEntry {
                    facts: facts.clone(),
                    state: UnmatchedState::Open,
                    created_at: now,
                    updated_at: now,
                    settled_with: None,
                    settled_by: None,
                },
            );
            book.index("all").add(&facts.id, now);
            book.index("s:open").add(&facts.id, now);
            true
        }))
    }

    pub async fn unmatched_get(&self, id: &str) -> Result<Option<UnmatchedEntry>, StorageError> {
        Ok(self.with(|l, _| l.unmatched.entries.get(id).cloned()))
    }

    async fn unmatched_ids(&self, index: &str, since: Millis, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.with(|l, _| {
            l.unmatched
                .indexes
                .get(index)
                .map(|z| z.newest_first(since, offset, limit))
                .unwrap_or_default()
        }))
    }

    pub async fn unmatched_settle(
        &self,
        id: &str,
        to: UnmatchedState,
        with: &str,
        by: &str,
        now: Millis,
    ) -> Result<SettleOutcome, StorageError> {
        Ok(self.with(|l, _| {
            let book = &mut l.unmatched;
            let Some(e) = book.entries.get_mut(id) else {
                return SettleOutcome::Unknown;
            };
            if e.state != UnmatchedState::Open {
                let same = e.state == to && (to == UnmatchedState::Returned || e.settled_with.as_deref() == Some(with));
                return if same {
                    SettleOutcome::Same
                } else {
                    SettleOutcome::Settled(e.state)
                };
            }
            e.state = to;
            e.settled_with = Some(with.to_string());
            e.settled_by = Some(by.to_string());
            e.updated_at = now;
            let created = e.created_at;
            book.index("s:open").remove(id);
            book.index(&format!("s:{}", to.as_str())).add(id, created);
            SettleOutcome::Done
        }))
    }

    /// A walk over every entry: the memory backend is for the demo and development, where the
    /// book stays small.
    pub async fn unmatched_open_by_reason(&self) -> Result<HashMap<String, u64>, StorageError> {
        Ok(self.with(|l, _| {
            let mut out = HashMap::new();
            for e in l.unmatched.entries.values().filter(|e| e.state == UnmatchedState::Open) {
                *out.entry(e.facts.reason.clone()).or_insert(0) += 1;
            }
            out
        }))
    }

    pub async fn first_document(&self, source: &str, identity: &str, document: &str) -> Result<String, StorageError> {
        Ok(self.with(|l, _| {
            l.unmatched
                .first_documents
                .entry(format!("{source}:{identity}"))
                .or_insert_with(|| document.to_string())
                .clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_replies_the_wrapper_does_not_know_are_corrupt() {
        assert_eq!(settle_outcome("done").ok(), Some(SettleOutcome::Done));
        assert_eq!(
            settle_outcome("settled:assigned").ok(),
            Some(SettleOutcome::Settled(UnmatchedState::Assigned))
        );
        for bad in ["", "settled:", "settled:open2", "DONE"] {
            assert!(matches!(settle_outcome(bad), Err(StorageError::Corrupt(_))), "{bad:?}");
        }
    }
}
