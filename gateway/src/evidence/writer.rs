//! The background writer of one process's chain: appends records in the order they come,
//! rotates the file at Vietnam's midnight, and every `evidence.batch_secs` asks the authority
//! for a token over the chain head, appended as a stamp record when it comes.
//!
//! The writer never holds up an exchange: records come over a channel whose memory is bounded
//! by [`super::Shared::pending_bytes`] (a record that does not fit is counted and the count
//! written as a gap record), and the authority is asked from a task of its own, one request at
//! a time, so a slow or absent authority delays stamping, never writing.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::record::{self, GENESIS, Record, kind};
use super::{Entry, Shared};
use crate::tsa::TsaClient;

/// How long the last stamp may take at shutdown.
const FINAL_STAMP_WAIT: Duration = Duration::from_secs(3);

/// A token that came back for the head it was asked over.
struct Stamped {
    covers: [u8; 32],
    covers_seq: u64,
    token: Vec<u8>,
}

struct Chain {
    dir: PathBuf,
    shared: Arc<Shared>,
    seq: u64,
    head: [u8; 32],
    /// The seq of the last record that is not a stamp: a stamp is asked for only when there is
    /// something new to cover (else each stamp would call for the next).
    content_seq: u64,
    stamped_seq: u64,
    /// The first record not yet covered, and the first one written after the stamp in flight
    /// was asked for: (seq, time) each.
    first_unstamped: Option<(u64, i64)>,
    first_after_asked: Option<(u64, i64)>,
    asked: Option<u64>,
    file: Option<(String, BufWriter<File>)>,
    failing: bool,
    /// The line being written and its JSON, reused from record to record.
    line: Vec<u8>,
    scratch: Vec<u8>,
}

impl Chain {
    /// A chain with nothing written yet: the first record appended is its start.
    fn new(dir: PathBuf, shared: Arc<Shared>) -> Self {
        Chain {
            dir,
            shared,
            seq: 0,
            head: [0; 32],
            content_seq: 0,
            stamped_seq: 0,
            first_unstamped: None,
            first_after_asked: None,
            asked: None,
            file: None,
            failing: false,
            line: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
        }
    }

    fn append(&mut self, mut r: Record, at_ms: i64) {
        let date = record::vn_date(at_ms);
        if self.file.as_ref().is_none_or(|(d, _)| *d != date) && !self.open(&date) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        r.seq = self.seq + 1;
        r.instance = self.shared.instance.clone();
        r.prev = if self.seq == 0 && r.kind == kind::START {
            GENESIS.to_string()
        } else {
            hex::encode(self.head)
        };
        self.line.clear();
        let hash = r.line_into(&mut self.line, &mut self.scratch);
        let Some((_, w)) = self.file.as_mut() else { return };
        match w.write_all(&self.line) {
            Ok(()) => {
                self.seq = r.seq;
                self.head = hash;
                self.shared.written.fetch_add(1, Ordering::Relaxed);
                if r.kind != kind::STAMP {
                    self.content_seq = r.seq;
                    if self.first_unstamped.is_none() {
                        self.first_unstamped = Some((r.seq, at_ms));
                        self.shared.oldest_unstamped_ms.store(at_ms, Ordering::Relaxed);
                    }
                    if self.asked.is_some() && self.first_after_asked.is_none() {
                        self.first_after_asked = Some((r.seq, at_ms));
                    }
                }
                self.healthy();
            }
            Err(e) => {
                // A line cut by a full disk would break the chain: the rest of this file is
                // abandoned and the next record opens a fresh one.
                self.fail(&e);
                self.file = None;
            }
        }
    }

    /// Opens (appends to) the file of `date`, flushing and syncing the one before.
    fn open(&mut self, date: &str) -> bool {
        self.sync();
        let path = self.dir.join(record::file_name(&self.shared.instance, date));
        match std::fs::create_dir_all(&self.dir).and_then(|_| OpenOptions::new().create(true).append(true).open(&path)) {
            Ok(f) => {
                self.file = Some((date.to_string(), BufWriter::with_capacity(256 * 1024, f)));
                true
            }
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn flush(&mut self) {
        if let Some((_, w)) = self.file.as_mut()
            && let Err(e) = w.flush()
        {
            self.fail(&e);
        }
    }

    /// Flushes and syncs the current file: what is stamped is on disk first.
    fn sync(&mut self) {
        self.flush();
        if let Some((_, w)) = self.file.as_mut()
            && let Err(e) = w.get_ref().sync_data()
        {
            self.fail(&e);
        }
    }

    /// Logged once when writing starts failing, once when it recovers (a state change, not a
    /// line per record).
    fn fail(&mut self, e: &std::io::Error) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing {
            self.failing = true;
            tracing::error!(alarm = true, error = %e, "the evidence log cannot be written; records are counted as dropped until it can");
        }
    }

    fn healthy(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::warn!("the evidence log is written again");
        }
    }

    fn stamp_due(&self) -> bool {
        self.asked.is_none() && self.content_seq > self.stamped_seq
    }

    fn stamped(&mut self, s: Stamped, at_ms: i64) {
        let gen_time = hcc_signing::tsp::inspect_token(&s.token).ok().map(|i| i.gen_time);
        self.append(
            Record {
                kind: kind::STAMP.into(),
                time: hcc_core::time::rfc3339_ms(at_ms),
                covers: Some(hex::encode(s.covers)),
                covers_seq: Some(s.covers_seq),
                gen_time,
                token: Some(base64::engine::general_purpose::STANDARD.encode(&s.token)),
                ..Record::default()
            },
            at_ms,
        );
        self.stamped_seq = self.stamped_seq.max(s.covers_seq);
        self.asked = None;
        self.first_unstamped = self.first_after_asked.take();
        self.shared
            .oldest_unstamped_ms
            .store(self.first_unstamped.map_or(0, |(_, ms)| ms), Ordering::Relaxed);
        self.shared.stamps.fetch_add(1, Ordering::Relaxed);
        self.shared.last_stamp_ms.store(at_ms, Ordering::Relaxed);
    }

    fn stamp_failed(&mut self) {
        self.asked = None;
        self.first_after_asked = None;
    }
}

/// Writes `instance`'s chain in `dir` until `stop`, then writes what is queued, asks for a last
/// stamp (briefly) and syncs.
pub(super) async fn run(
    dir: PathBuf,
    shared: Arc<Shared>,
    mut entries: mpsc::UnboundedReceiver<Entry>,
    tsa: Option<TsaClient>,
    batch: Duration,
    stop: CancellationToken,
) {
    let mut chain = Chain::new(dir, shared.clone());
    let now = hcc_core::time::now_ms();
    chain.append(
        Record {
            kind: kind::START.into(),
            time: hcc_core::time::rfc3339_ms(now),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Record::default()
        },
        now,
    );
    chain.flush();
    let (stamped_tx, mut stamped_rx) = mpsc::channel::<Result<Stamped, String>>(1);
    let mut tick = tokio::time::interval(batch);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut buf = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            n = entries.recv_many(&mut buf, 1024) => {
                if n == 0 {
                    break;
                }
                for e in buf.drain(..) {
                    write_entry(&mut chain, e);
                }
                chain.flush();
            }
            Some(result) = stamped_rx.recv() => match result {
                Ok(s) => {
                    chain.stamped(s, hcc_core::time::now_ms());
                    chain.flush();
                }
                Err(why) => {
                    chain.stamp_failed();
                    shared.stamp_failures.fetch_add(1, Ordering::Relaxed);
                    // Logged once as an outage (records wait for a stamp meanwhile), and counted.
                    shared.tsa().failed(&why);
                }
            },
            _ = tick.tick() => {
                if let Some(tsa) = &tsa && chain.stamp_due() {
                    // What is stamped is on disk first: the lines are handed to the kernel here,
                    // and synced on a blocking thread (an fdatasync takes milliseconds on a slow
                    // disk, which must not stall a runtime worker); the writer goes on meanwhile.
                    chain.flush();
                    let synced = chain.file.as_ref().and_then(|(_, w)| w.get_ref().try_clone().ok());
                    chain.asked = Some(chain.seq);
                    let (covers, covers_seq, tsa, tx, shared) = (chain.head, chain.seq, tsa.clone(), stamped_tx.clone(), shared.clone());
                    tokio::spawn(async move {
                        if let Some(file) = synced {
                            let done = tokio::task::spawn_blocking(move || file.sync_data()).await;
                            if !matches!(done, Ok(Ok(()))) {
                                shared.write_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let got = tsa.timestamp_digest(covers).await.map(|token| Stamped { covers, covers_seq, token }).map_err(|e| e.to_string());
                        if got.is_ok() {
                            shared.tsa().ok();
                        }
                        let _ = tx.send(got).await;
                    });
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    // Shutdown: what was queued is written, then one last stamp is asked for, briefly.
    entries.close();
    while let Ok(e) = entries.try_recv() {
        write_entry(&mut chain, e);
    }
    if chain.asked.is_some() {
        match tokio::time::timeout(FINAL_STAMP_WAIT, stamped_rx.recv()).await {
            Ok(Some(Ok(s))) => chain.stamped(s, hcc_core::time::now_ms()),
            _ => chain.stamp_failed(),
        }
    }
    if let Some(tsa) = &tsa
        && chain.stamp_due()
    {
        chain.sync();
        let (covers, covers_seq) = (chain.head, chain.seq);
        if let Ok(Ok(token)) = tokio::time::timeout(FINAL_STAMP_WAIT, tsa.timestamp_digest(covers)).await {
            chain.asked = Some(covers_seq);
            chain.stamped(Stamped { covers, covers_seq, token }, hcc_core::time::now_ms());
        }
    }
    chain.sync();
}

fn write_entry(chain: &mut Chain, e: Entry) {
    let gap = chain.shared.dropped.swap(0, Ordering::Relaxed);
    if gap > 0 {
        let now = hcc_core::time::now_ms();
        chain.append(
            Record {
                kind: kind::GAP.into(),
                time: hcc_core::time::rfc3339_ms(now),
                dropped: Some(gap),
                ..Record::default()
            },
            now,
        );
        chain.shared.dropped_total.fetch_add(gap, Ordering::Relaxed);
    }
    chain.shared.pending_bytes.fetch_sub(e.cost, Ordering::Relaxed);
    chain.append(e.record, e.at_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::verify::{Options, verify_dir};

    /// Vietnam's midnight starts a new file; the chain goes on across it and verifies whole.
    #[test]
    fn files_rotate_at_vietnams_midnight_and_the_chain_goes_on() {
        let mut tag = [0u8; 6];
        hcc_core::random_bytes(&mut tag).unwrap();
        let dir = std::env::temp_dir().join(format!("hcc-evidence-rotate-{}", hex::encode(tag)));
        let shared = Arc::new(Shared {
            instance: "1796576000-abcdef".into(),
            ..Shared::default()
        });
        let mut chain = Chain::new(dir.clone(), shared.clone());
        // 23:59:59 and 00:00:00 in Vietnam (16:59:59Z and 17:00:00Z on the 6th).
        let before = 1_796_576_399_000;
        let after = 1_796_576_400_000;
        let record = |kind: &str, at: i64| Record {
            kind: kind.into(),
            time: hcc_core::time::rfc3339_ms(at),
            ..Record::default()
        };
        chain.append(record(kind::START, before), before);
        chain.append(record(kind::EXCHANGE, before), before);
        chain.append(record(kind::EXCHANGE, after), after);
        chain.sync();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "evidence-1796576000-abcdef-2026-12-06.jsonl",
                "evidence-1796576000-abcdef-2026-12-07.jsonl"
            ]
        );
        let report = verify_dir(&dir, &Options::default()).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.chains.len(), report.chains[0].files, report.chains[0].records), (1, 2, 3));
        assert_eq!(shared.written.load(Ordering::Relaxed), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
