//! The mock portal's state as Rust sees it: the constructor, and the control and inspection
//! methods tests, tools and the `/_mock/...` handlers call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{Arrival, DEFAULT_CATALOGUE, Inner, PortalConfig, PortalCounters, PortalState};
use crate::faults::Faults;

impl PortalState {
    pub fn new(cfg: PortalConfig) -> Self {
        PortalState {
            paygov: crate::paygov::PaygovState::new(&cfg.paygov_partner, &cfg.paygov_secret),
            push: super::push::PushState::default(),
            inner: Arc::new(Mutex::new(Inner {
                cfg,
                sessions: HashMap::new(),
                catalogue: DEFAULT_CATALOGUE.iter().map(|s| s.to_string()).collect(),
                cat: Default::default(),
                faults: Faults::default(),
                arrivals: Vec::new(),
                last_status: HashMap::new(),
                last_progress_time: HashMap::new(),
                seen_items: HashSet::new(),
                dossiers: HashMap::new(),
                counters: PortalCounters::default(),
                required_dstcode: None,
                lookup_answer: None,
                per_second: BTreeMap::new(),
                exists_code: None,
                refusals: HashMap::new(),
                bodies: Default::default(),
                stale_answer: None,
            })),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> PortalCounters {
        self.lock().counters.clone()
    }

    /// `/integration` calls per Unix second, every second that had one.
    pub fn per_second(&self) -> BTreeMap<u64, u64> {
        self.lock().per_second.clone()
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// Writes accepted more than once, as (service, `MaHoSo`, times), sorted: what made
    /// `duplicates` count, named.
    pub fn repeated_writes(&self) -> Vec<(String, String, usize)> {
        let mut times: HashMap<(String, String), (String, usize)> = HashMap::new();
        for a in &self.lock().arrivals {
            let e = times
                .entry((a.service.clone(), a.item.to_string()))
                .or_insert_with(|| (a.ma_ho_so.clone(), 0));
            e.1 += 1;
        }
        let mut out: Vec<(String, String, usize)> = times
            .into_iter()
            .filter(|(_, (_, n))| *n > 1)
            .map(|((service, _), (ma, n))| (service, ma, n))
            .collect();
        out.sort();
        out
    }

    /// The SHA-256 (hex) of every `/integration` body that named dossier `ma`, in order.
    pub fn bodies_naming(&self, ma: &str) -> Vec<String> {
        self.lock()
            .bodies
            .iter()
            .filter(|r| r.codes.iter().any(|c| c == ma))
            .map(|r| r.sha256.clone())
            .collect()
    }

    /// The `traceparent` header of every `/integration` call naming `ma`, in arrival order
    /// (`None` for a call without one).
    pub fn traceparents_naming(&self, ma: &str) -> Vec<Option<String>> {
        self.lock()
            .bodies
            .iter()
            .filter(|r| r.codes.iter().any(|c| c == ma))
            .map(|r| r.traceparent.clone())
            .collect()
    }

    /// Arrivals of one dossier, in order.
    pub fn arrivals_of(&self, ma: &str) -> Vec<Arrival> {
        self.lock().arrivals.iter().filter(|a| a.ma_ho_so == ma).cloned().collect()
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    pub fn set_session_lifetime(&self, d: Duration) {
        self.lock().cfg.session_lifetime = d;
    }

    pub fn add_catalogue(&self, code: &str) {
        self.lock().catalogue.insert(code.to_string());
    }

    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Makes the LGSP require `dstcode` on every call (`None`: no requirement, the default).
    pub fn require_dstcode(&self, code: Option<String>) {
        self.lock().required_dstcode = code;
    }

    /// Makes every `TraCuuHoSo` answer `answer` verbatim (HTTP 200); `None` restores the truth.
    pub fn set_lookup_answer(&self, answer: Option<Value>) {
        self.lock().lookup_answer = answer;
    }

    /// Makes a create of a dossier the portal already has answer `error_code` `code` with
    /// "Hồ sơ ... đã tồn tại" (`None`: the default refusal, code 2).
    pub fn set_exists_code(&self, code: Option<Value>) {
        self.lock().exists_code = code;
    }

    /// Makes every write of `ma` (`DongBoHoSoMC`, `CapNhatTienDoHoSoMC`) answer `answer`
    /// (HTTP 200) before any other check but the session's; `None` lifts it.
    pub fn set_refusal(&self, ma: &str, answer: Option<Value>) {
        let mut s = self.lock();
        match answer {
            Some(a) => s.refusals.insert(ma.to_string(), a),
            None => s.refusals.remove(ma),
        };
    }

    /// Makes a call on a stale session answer `answer` (HTTP 200) instead of a random one of
    /// the stale-session forms; `None` restores those.
    pub fn set_stale_answer(&self, answer: Option<Value>) {
        self.lock().stale_answer = answer;
    }

    /// The portal has this dossier already, as if another system had synced it. It is not an
    /// arrival: nothing came through the integration endpoint.
    pub fn seed_dossier(&self, item: Value) -> Result<(), String> {
        let ma = item
            .get("MaHoSo")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or("MaHoSo is required")?
            .to_string();
        self.lock().dossiers.insert(ma, item);
        Ok(())
    }
}
