//! The catalogue in Redis, under the hash tag `{catalogue}`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:{catalogue}:cat:p:<code>` | hash | a procedure: `name`, `listed`, `details` (JSON), `lv` (JSON list), `synced`, `withdrawn` |
//! | `p:{catalogue}:cat:sum` | hash | code -> its [`Summary`] (JSON): what a search and the acceptance check read |
//! | `p:{catalogue}:cat:sync` | string | the [`SyncState`] (JSON) |
//! | `p:{catalogue}:cat:todo` | list | the codes of the run's list, in order |
//! | `p:{catalogue}:cat:lease` | string | the owner of the sync's lease (`catalogue_lease.lua`) |
//! | `p:{catalogue}:cat:req` | string | a sync was asked for |
//! | `p:{catalogue}:cat:of:<MaHoSo>` | string | the procedure a dossier was last accepted with (180 days) |

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use redis::Script;
use serde_json::Value;

use super::{Procedure, Summary, SyncState};
use crate::storage::redis::{corrupt, reply};
use crate::storage::{Millis, RedisStore, StorageError};

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/catalogue_lease.lua")));

/// How long a dossier's procedure is remembered.
const REMEMBER_SECS: u64 = 180 * 86_400;

/// How many codes one `RPUSH` carries.
const CHUNK: usize = 500;

#[derive(Clone)]
pub struct RedisCatalogue {
    store: RedisStore,
}

impl RedisCatalogue {
    pub(super) fn new(store: RedisStore) -> Self {
        RedisCatalogue { store }
    }

    fn key(&self, name: &str) -> String {
        self.store.key("catalogue", &format!("cat:{name}"))
    }

    async fn put_summary(&self, code: &str, s: &Summary) -> Result<(), StorageError> {
        let json = serde_json::to_string(s).map_err(corrupt)?;
        self.store
            .cmd::<()>(redis::cmd("HSET").arg(self.key("sum")).arg(code).arg(json))
            .await
    }

    pub(super) async fn summary(&self, code: &str) -> Result<Option<Summary>, StorageError> {
        let raw: Option<String> = self.store.cmd(redis::cmd("HGET").arg(self.key("sum")).arg(code)).await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|_| corrupt("catalogue summary is not JSON")))
            .transpose()
    }

    pub(super) async fn put_listed(&self, listed: &[(String, String, Value)], now: Millis) -> Result<(), StorageError> {
        for (code, name, raw) in listed {
            let mut s = self.summary(code).await?.unwrap_or(Summary {
                name: String::new(),
                linh_vuc: Vec::new(),
                withdrawn: false,
            });
            let fresh = self
                .store
                .cmd::<i64>(redis::cmd("EXISTS").arg(self.key(&format!("p:{code}"))))
                .await?
                == 0;
            let mut cmd = redis::cmd("HSET");
            cmd.arg(self.key(&format!("p:{code}")))
                .arg("name")
                .arg(name)
                .arg("listed")
                .arg(raw.to_string())
                .arg("withdrawn")
                .arg("0");
            if fresh {
                cmd.arg("synced").arg(now);
            }
            self.store.cmd::<()>(&cmd).await?;
            s.name = name.clone();
            s.withdrawn = false;
            self.put_summary(code, &s).await?;
        }
        Ok(())
    }

    pub(super) async fn put_details(&self, code: &str, details: &Value, linh_vuc: &[String], now: Millis) -> Result<(), StorageError> {
        let lv = serde_json::to_string(linh_vuc).map_err(corrupt)?;
        self.store
            .cmd::<()>(
                redis::cmd("HSET")
                    .arg(self.key(&format!("p:{code}")))
                    .arg("details")
                    .arg(details.to_string())
                    .arg("lv")
                    .arg(lv)
                    .arg("synced")
                    .arg(now),
            )
            .await?;
        if let Some(mut s) = self.summary(code).await? {
            s.linh_vuc = linh_vuc.to_vec();
            self.put_summary(code, &s).await?;
        }
        Ok(())
    }

    pub(super) async fn withdraw_others(&self, listed: &HashSet<String>, _now: Millis) -> Result<u64, StorageError> {
        let mut n = 0;
        for (code, mut s) in self.summaries().await? {
            if listed.contains(&code) || s.withdrawn {
                continue;
            }
            self.store
                .cmd::<()>(redis::cmd("HSET").arg(self.key(&format!("p:{code}"))).arg("withdrawn").arg("1"))
                .await?;
            s.withdrawn = true;
            self.put_summary(&code, &s).await?;
            n += 1;
        }
        Ok(n)
    }

    pub(super) async fn get(&self, code: &str) -> Result<Option<Procedure>, StorageError> {
        let mut map: HashMap<String, String> = self.store.cmd(redis::cmd("HGETALL").arg(self.key(&format!("p:{code}")))).await?;
        if map.is_empty() {
            return Ok(None);
        }
        let json = |v: Option<String>| -> Result<Option<Value>, StorageError> {
            v.map(|t| serde_json::from_str(&t).map_err(|_| corrupt("catalogue entry is not JSON")))
                .transpose()
        };
        Ok(Some(Procedure {
            code: code.to_string(),
            name: map.remove("name").unwrap_or_default(),
            listed: json(map.remove("listed"))?.unwrap_or(Value::Null),
            details: json(map.remove("details"))?,
            linh_vuc: json(map.remove("lv"))?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            synced_at: map.remove("synced").and_then(|v| v.parse().ok()).unwrap_or(0),
            withdrawn: map.remove("withdrawn").as_deref() == Some("1"),
        }))
    }

    pub(super) async fn summaries(&self) -> Result<BTreeMap<String, Summary>, StorageError> {
        let all: HashMap<String, String> = self.store.cmd(redis::cmd("HGETALL").arg(self.key("sum"))).await?;
        all.into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v)
                    .map(|s| (k, s))
                    .map_err(|_| corrupt("catalogue summary is not JSON"))
            })
            .collect()
    }

    pub(super) async fn count(&self) -> Result<u64, StorageError> {
        self.store.cmd(redis::cmd("HLEN").arg(self.key("sum"))).await
    }

    pub(super) async fn sync_state(&self) -> Result<SyncState, StorageError> {
        let raw: Option<String> = self.store.cmd(redis::cmd("GET").arg(self.key("sync"))).await?;
        match raw {
            Some(r) => serde_json::from_str(&r).map_err(|_| corrupt("catalogue sync state is not JSON")),
            None => Ok(SyncState {
                phase: "idle".into(),
                ..SyncState::default()
            }),
        }
    }

    pub(super) async fn save_sync_state(&self, s: &SyncState) -> Result<(), StorageError> {
        let json = serde_json::to_string(s).map_err(corrupt)?;
        self.store.cmd::<()>(redis::cmd("SET").arg(self.key("sync")).arg(json)).await
    }

    pub(super) async fn set_todo(&self, codes: &[String]) -> Result<(), StorageError> {
        let key = self.key("todo");
        self.store.cmd::<()>(redis::cmd("DEL").arg(&key)).await?;
        for chunk in codes.chunks(CHUNK) {
            self.store.cmd::<()>(redis::cmd("RPUSH").arg(&key).arg(chunk)).await?;
        }
        Ok(())
    }

    pub(super) async fn todo(&self, from: u64, n: u64) -> Result<Vec<String>, StorageError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.store
            .cmd(redis::cmd("LRANGE").arg(self.key("todo")).arg(from).arg(from + n - 1))
            .await
    }

    pub(super) async fn lease(&self, owner: &str, ttl_ms: u64, _now: Millis) -> Result<bool, StorageError> {
        let mut inv = LEASE.key(self.key("lease"));
        inv.arg(owner).arg(ttl_ms);
        let got: i64 = reply(&self.store.run(&inv).await?, "catalogue lease reply")?;
        Ok(got == 1)
    }

    pub(super) async fn release(&self, owner: &str) -> Result<(), StorageError> {
        let holder: Option<String> = self.store.cmd(redis::cmd("GET").arg(self.key("lease"))).await?;
        if holder.as_deref() == Some(owner) {
            self.store.cmd::<()>(redis::cmd("DEL").arg(self.key("lease"))).await?;
        }
        Ok(())
    }

    pub(super) async fn remember_procedure(&self, ordering_key: &str, code: &str) -> Result<(), StorageError> {
        self.store
            .cmd::<()>(
                redis::cmd("SET")
                    .arg(self.key(&format!("of:{ordering_key}")))
                    .arg(code)
                    .arg("EX")
                    .arg(REMEMBER_SECS),
            )
            .await
    }

    pub(super) async fn procedure_of(&self, ordering_key: &str) -> Result<Option<String>, StorageError> {
        self.store.cmd(redis::cmd("GET").arg(self.key(&format!("of:{ordering_key}")))).await
    }

    pub(super) async fn request_sync(&self) -> Result<(), StorageError> {
        self.store.cmd::<()>(redis::cmd("SET").arg(self.key("req")).arg(1)).await
    }

    pub(super) async fn take_request(&self) -> Result<bool, StorageError> {
        let n: i64 = self.store.cmd(redis::cmd("DEL").arg(self.key("req"))).await?;
        Ok(n > 0)
    }
}
