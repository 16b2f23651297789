//! A dossier's traffic as the centre sends it: the fixture dossier and progress bodies, the
//! life-cycle of updates, posting them as a careful client does (same `Idempotency-Key`, through
//! 503s and failovers), and reading back what the portal saw, in order.

use std::time::{Duration, Instant};

use crate::CENTRE_KEY;

/// The fixture dossier of `tests/fixtures/`, with its code and status replaced.
pub fn dossier(ma: &str, status: u8) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(include_str!("../fixtures/dossier.json")).unwrap_or_default();
    v["MaHoSo"] = serde_json::json!(ma);
    v["TrangThaiHoSo"] = serde_json::json!(status);
    v
}

/// The fixture progress entry, for dossier `ma` at status `status`, `minute` minutes in.
pub fn progress(ma: &str, status: u8, minute: u32) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(include_str!("../fixtures/progress.json")).unwrap_or_default();
    v["MaHoSo"] = serde_json::json!(ma);
    v["TrangThai"] = serde_json::json!(status);
    v["ThoiDiemXuLy"] = serde_json::json!(format!(
        "202411{:02}{:02}{:02}00",
        26 + minute / 1440,
        (minute / 60) % 24,
        minute % 60
    ));
    v
}

/// One update of a dossier's life, as the centre would send it.
#[derive(Debug, Clone)]
pub enum Update {
    /// A sync at a status; the second number tells repeated statuses apart (5 → 4 → ... 4).
    Sync(u8, u32),
    Progress(u8, u32),
}

/// The life-cycle 1 → 2 → 4 → 5 → 4 → 9 → 10 with progress entries: ten updates.
pub fn life_cycle() -> Vec<Update> {
    use Update::*;
    vec![
        Sync(1, 0),
        Sync(2, 1),
        Progress(4, 1),
        Sync(4, 2),
        Progress(5, 2),
        Sync(5, 3),
        Sync(4, 4),
        Progress(9, 3),
        Sync(9, 5),
        Sync(10, 6),
    ]
}

impl Update {
    pub fn path_and_body(&self, ma: &str) -> (String, serde_json::Value) {
        match self {
            Update::Sync(s, step) => {
                let mut d = dossier(ma, *s);
                d["GhiChu"] = serde_json::json!(format!("bước {step}"));
                ("/v1/dossiers".into(), d)
            }
            Update::Progress(s, m) => (format!("/v1/dossiers/{ma}/progress"), progress(ma, *s, *m)),
        }
    }

    /// (service, status) as the portal should see it.
    pub fn expected(&self) -> (&'static str, u8) {
        match self {
            Update::Sync(s, _) => ("DongBoHoSoMC", *s),
            Update::Progress(s, _) => ("CapNhatTienDoHoSoMC", *s),
        }
    }
}

/// Posts an update until the gateway accepts it (202), reusing one Idempotency-Key, as a
/// careful client would; gives up after `limit`. Returns the message id.
pub async fn post_until_accepted(client: &reqwest::Client, base: &str, ma: &str, u: &Update, key: &str, limit: Duration) -> String {
    let (path, body) = u.path_and_body(ma);
    let deadline = Instant::now() + limit;
    loop {
        let sent = client
            .post(format!("{base}{path}"))
            .bearer_auth(CENTRE_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = sent
            && r.status() == 202
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            return v["id"].as_str().unwrap_or_default().to_string();
        }
        if Instant::now() > deadline {
            panic!("update {u:?} of {ma} was never accepted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts `u` until it is accepted, retrying on 503 and connection errors with the same key, as
/// a client must during a Redis failover; any other answer fails the test. Returns when the
/// accepting request was sent.
pub async fn post_until_202(client: &reqwest::Client, base: &str, ma: &str, u: &Update, key: &str, deadline: Instant) -> Instant {
    let (path, body) = u.path_and_body(ma);
    loop {
        let sent_at = Instant::now();
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(CENTRE_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 202 => return sent_at,
            Ok(r) if r.status() == 503 => {}
            Ok(r) => panic!("update {key} of {ma}: unexpected {}", r.status()),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "update {key} of {ma} was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the portal saw of a dossier with immediate repeats dropped: a delivery whose
/// settlement was lost (a crash, a failover) is made again, which the portal takes as a repeat.
pub fn dedup(mut v: Vec<(String, u8)>) -> Vec<(String, u8)> {
    v.dedup();
    v
}

/// The dossiers whose updates the portal has not (yet) seen whole and in life-cycle order
/// (immediate repeats allowed, see [`dedup`]), waiting up to `limit` for them to settle; each
/// with what the portal did see.
pub async fn not_in_order_after(
    state: &hcc_mocks::dvcqg::PortalState,
    dossiers: &[String],
    limit: Duration,
) -> Vec<(String, Vec<(String, u8)>)> {
    let expected: Vec<(String, u8)> = life_cycle().iter().map(|u| (u.expected().0.to_string(), u.expected().1)).collect();
    let wrong = || -> Vec<(String, Vec<(String, u8)>)> {
        dossiers
            .iter()
            .map(|ma| {
                let seen: Vec<(String, u8)> = state.arrivals_of(ma).into_iter().map(|a| (a.service, a.status)).collect();
                (ma.clone(), seen)
            })
            .filter(|(_, seen)| dedup(seen.clone()) != expected)
            .collect()
    };
    let settle_by = Instant::now() + limit;
    while !wrong().is_empty() && Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wrong()
}
