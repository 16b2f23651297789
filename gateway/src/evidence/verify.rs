//! `hcc-gateway evidence verify`: recomputes every chain in the folder, from the files alone.
//!
//! For each chain (one instance's files, day by day) every line's hash is recomputed from its
//! content, every record must name the one before it (`prev`) and follow it (`seq`), and every
//! stamp's token must be an RFC 3161 token whose imprint is the hash of the record it says it
//! covers, signed by an authority that chains to `evidence.tsa_ca`. The first failure in each
//! chain is named by file, line and record; the chain is not read past it.
//!
//! A process killed while writing can leave its last line cut short: a last line without its
//! newline, at the very end of a chain, is reported and not counted; anywhere else it breaks.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::path::Path;

use base64::Engine as _;
use hcc_signing::pki::TrustStore;

use super::record::{self, GENESIS, kind};

/// What to check.
#[derive(Default)]
pub struct Options {
    /// Only the files of days from this time on (Unix ms).
    pub from_ms: Option<i64>,
    /// Only the files of days up to this time (Unix ms).
    pub to_ms: Option<i64>,
    /// What the tokens must chain to (`evidence.tsa_ca`); without it a stamp is a break.
    pub anchor: Option<TrustStore>,
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: String,
    pub line: usize,
    /// The record's id (`instance:seq`), as far as it can be told.
    pub record: String,
    pub why: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} ({} line {}): {}", self.record, self.file, self.line, self.why)
    }
}

/// One chain's summary.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    pub instance: String,
    pub files: usize,
    pub records: u64,
    /// Records made inside the asked time range.
    pub in_range: u64,
    pub stamps: u64,
    /// The last stamp's token time.
    pub last_stamp: Option<String>,
    /// Records after the last stamped one (waiting for the next batch, or never stamped).
    pub unstamped: u64,
    /// A last line cut short by a crash, ignored.
    pub torn: bool,
    pub broken: Option<Break>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chains: Vec<ChainReport>,
}

impl Report {
    pub fn first_break(&self) -> Option<&Break> {
        self.chains.iter().find_map(|c| c.broken.as_ref())
    }

    pub fn ok(&self) -> bool {
        self.first_break().is_none()
    }
}

/// Checks every chain in `dir`.
pub fn verify_dir(dir: &Path, opts: &Options) -> std::io::Result<Report> {
    let from = opts.from_ms.map(record::vn_date);
    let to = opts.to_ms.map(record::vn_date);
    let mut chains: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((instance, date)) = record::parse_file_name(&name) {
            if from.as_ref().is_some_and(|f| date < *f) || to.as_ref().is_some_and(|t| date > *t) {
                continue;
            }
            chains.entry(instance).or_default().push((date, name));
        }
    }
    let mut report = Report::default();
    for (instance, mut files) in chains {
        files.sort();
        report.chains.push(verify_chain(dir, &instance, &files, opts)?);
    }
    Ok(report)
}

fn verify_chain(dir: &Path, instance: &str, files: &[(String, String)], opts: &Options) -> std::io::Result<ChainReport> {
    let mut out = ChainReport {
        instance: instance.to_string(),
        files: files.len(),
        ..ChainReport::default()
    };
    let mut prev: Option<(u64, [u8; 32])> = None;
    // The hashes a later stamp may cover: those after the last covered record.
    let mut window: VecDeque<(u64, [u8; 32], bool)> = VecDeque::new();
    let mut covered = 0u64;
    let b64 = base64::engine::general_purpose::STANDARD;
    'files: for (i, (_, name)) in files.iter().enumerate() {
        let last_file = i + 1 == files.len();
        let mut reader = std::io::BufReader::new(std::fs::File::open(dir.join(name))?);
        let mut buf = Vec::new();
        let mut line_no = 0usize;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            line_no += 1;
            let expected = prev.map_or(1, |(s, _)| s + 1);
            let broke = |why: String| Break {
                file: name.clone(),
                line: line_no,
                record: format!("{instance}:{expected}"),
                why,
            };
            if buf.last() != Some(&b'\n') {
                let mut rest = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut rest)?;
                if last_file && rest.is_empty() {
                    out.torn = true;
                    break 'files;
                }
                out.broken = Some(broke("the line is cut short".into()));
                break 'files;
            }
            let Ok(text) = std::str::from_utf8(&buf[..buf.len() - 1]) else {
                out.broken = Some(broke("the line is not UTF-8".into()));
                break 'files;
            };
            let (r, hash) = match record::parse_line(text) {
                Ok(x) => x,
                Err(e) => {
                    out.broken = Some(broke(e.to_string()));
                    break 'files;
                }
            };
            if r.instance != instance {
                out.broken = Some(broke(format!("it names instance {:?}, not its file's", r.instance)));
                break 'files;
            }
            match prev {
                None if r.kind == kind::START && (r.seq != 1 || r.prev != GENESIS) => {
                    out.broken = Some(broke("a chain's first record must be seq 1 with a zero prev".into()));
                    break 'files;
                }
                // The range starts inside the chain: its first record is taken as it stands.
                None => {}
                Some((seq, h)) => {
                    if r.seq != seq + 1 {
                        out.broken = Some(broke(format!(
                            "it is seq {} where {} should follow: a record is missing or added",
                            r.seq,
                            seq + 1
                        )));
                        break 'files;
                    }
                    if r.prev != hex::encode(h) {
                        out.broken = Some(broke(format!(
                            "its prev is not the hash of record {instance}:{seq}: a record before it was changed, removed or added"
                        )));
                        break 'files;
                    }
                }
            }
            let broke = |why: String| Break {
                file: name.clone(),
                line: line_no,
                record: format!("{instance}:{}", r.seq),
                why,
            };
            if r.kind == kind::STAMP {
                if let Err(why) = check_stamp(&r, &mut window, &mut covered, opts, &b64) {
                    out.broken = Some(broke(why));
                    break 'files;
                }
                out.stamps += 1;
                out.last_stamp = r.gen_time.clone();
            }
            window.push_back((r.seq, hash, r.kind == kind::STAMP));
            out.records += 1;
            let t = hcc_core::time::parse_rfc3339_ms(&r.time);
            if t.is_some_and(|t| opts.from_ms.is_none_or(|f| t >= f) && opts.to_ms.is_none_or(|to| t <= to)) {
                out.in_range += 1;
            }
            prev = Some((r.seq, hash));
        }
    }
    // What follows the last covered record (stamps aside, which need no stamp of their own).
    out.unstamped = window.iter().filter(|(s, _, stamp)| *s > covered && !stamp).count() as u64;
    Ok(out)
}

/// A stamp covers an earlier record of its chain, by hash, with a token the authority signed.
fn check_stamp(
    r: &record::Record,
    window: &mut VecDeque<(u64, [u8; 32], bool)>,
    covered: &mut u64,
    opts: &Options,
    b64: &base64::engine::GeneralPurpose,
) -> Result<(), String> {
    let (Some(covers), Some(covers_seq), Some(token)) = (&r.covers, r.covers_seq, &r.token) else {
        return Err("the stamp lacks covers, covers_seq or token".into());
    };
    if covers_seq >= r.seq || covers_seq <= *covered {
        return Err(format!(
            "the stamp covers record {covers_seq}, which is not before it and after the last covered"
        ));
    }
    while window.front().is_some_and(|(s, _, _)| *s < covers_seq) {
        window.pop_front();
    }
    let hash = match window.front() {
        Some((s, h, _)) if *s == covers_seq => *h,
        _ => return Err(format!("the stamp covers record {covers_seq}, which this chain does not hold")),
    };
    if *covers != hex::encode(hash) {
        return Err(format!("the stamp's covers is not the hash of record {covers_seq}"));
    }
    let der = b64.decode(token).map_err(|_| "the token is not base64".to_string())?;
    let info = hcc_signing::tsp::inspect_token(&der).map_err(|e| format!("the token is not a timestamp token: {e}"))?;
    if info.imprint_algorithm != hcc_signing::tsp::ID_SHA256 || !hcc_core::ct_eq(&info.imprint, &hash) {
        return Err(format!("the token's imprint is not the hash of record {covers_seq}"));
    }
    let anchor = opts
        .anchor
        .as_ref()
        .ok_or("no evidence.tsa_ca is configured to check the token's authority against")?;
    crate::tsa::authority_is_anchored(&info, anchor, "evidence.tsa_ca")
        .map_err(|why| format!("the token's authority is refused: {why}"))?;
    *covered = covers_seq;
    Ok(())
}

/// Why `evidence verify` could not check at all (a break is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("configuration problems: {0}")]
    Settings(String),
    #[error("--{0} must be an RFC 3339 time, such as 2026-12-07T00:00:00+07:00")]
    Time(&'static str),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
}

/// `hcc-gateway evidence verify`: prints one line per chain and the first break, and gives the
/// exit code (0: every chain holds; 1: a break).
pub fn command(s: &hcc_config::Settings, from: Option<&str>, to: Option<&str>) -> Result<i32, CommandError> {
    let e = super::settings(s).map_err(|p| CommandError::Settings(p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")))?;
    let time = |v: Option<&str>, name: &'static str| -> Result<Option<i64>, CommandError> {
        v.map(|t| hcc_core::time::parse_rfc3339_ms(t).ok_or(CommandError::Time(name)))
            .transpose()
    };
    let opts = Options {
        from_ms: time(from, "from")?,
        to_ms: time(to, "to")?,
        anchor: super::anchor(&e).map_err(CommandError::Settings)?,
    };
    let dir = Path::new(e.dir.trim());
    let report = verify_dir(dir, &opts).map_err(|err| CommandError::Read(dir.display().to_string(), err))?;
    print!("{}", render(&report, opts.anchor.is_some()));
    Ok(if report.ok() { 0 } else { 1 })
}

/// The report as `evidence verify` prints it.
pub fn render(report: &Report, anchored: bool) -> String {
    let mut out = String::new();
    if report.chains.is_empty() {
        out.push_str("no evidence files found\n");
    }
    for c in &report.chains {
        let state = if c.broken.is_some() { "BROKEN" } else { "ok" };
        out.push_str(&format!(
            "chain {}: {state}, {} files, {} records ({} in range), {} stamps{}, {} records not yet stamped{}\n",
            c.instance,
            c.files,
            c.records,
            c.in_range,
            c.stamps,
            c.last_stamp.as_ref().map(|t| format!(" (last {t})")).unwrap_or_default(),
            c.unstamped,
            if c.torn {
                ", its last line cut short by a crash (ignored)"
            } else {
                ""
            },
        ));
    }
    if !anchored {
        out.push_str("note: no evidence.tsa_ca: a chain with stamps cannot be checked\n");
    }
    match report.first_break() {
        Some(b) => out.push_str(&format!("FAILED: {b}\n")),
        None => out.push_str("OK: every chain holds\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::Record;

    /// A chain of `n` exchange records after its start record, written as the writer writes it.
    fn chain(dir: &Path, instance: &str, n: u64) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(record::file_name(instance, "2026-12-07"));
        let mut text = String::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=n + 1 {
            let r = Record {
                seq,
                time: "2026-12-07T01:00:00.000Z".into(),
                instance: instance.into(),
                kind: if seq == 1 { kind::START } else { kind::EXCHANGE }.into(),
                request_sha256: Some(hcc_core::sha256_hex(format!("body {seq}").as_bytes())),
                prev: prev.clone(),
                ..Record::default()
            };
            let (line, hash) = r.line();
            text.push_str(&line);
            prev = hex::encode(hash);
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let mut tag = [0u8; 6];
        hcc_core::random_bytes(&mut tag).unwrap();
        std::env::temp_dir().join(format!("hcc-evidence-{name}-{}", hex::encode(tag)))
    }

    fn verify(d: &Path) -> Report {
        verify_dir(d, &Options::default()).unwrap()
    }

    #[test]
    fn a_whole_chain_holds() {
        let d = dir("whole");
        chain(&d, "1-aa", 5);
        let r = verify(&d);
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.chains[0].records, r.chains[0].unstamped, r.chains[0].torn), (6, 6, false));
    }

    #[test]
    fn one_changed_byte_breaks_the_chain_at_its_record() {
        let d = dir("byte");
        let path = chain(&d, "1-bb", 5);
        let mut bytes = std::fs::read(&path).unwrap();
        // A byte inside the fourth line's JSON (record 4).
        let start = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).unwrap().0 + 1;
        let at = start + 100;
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        std::fs::write(&path, bytes).unwrap();
        let r = verify(&d);
        let b = r.first_break().expect("broken");
        assert_eq!((b.record.as_str(), b.line), ("1-bb:4", 4), "{b}");
        assert!(b.why.contains("hash"), "{b}");
    }

    #[test]
    fn a_deleted_line_breaks_the_chain_at_the_record_after_it() {
        let d = dir("deleted");
        let path = chain(&d, "1-cc", 5);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| l).collect();
        std::fs::write(&path, format!("{}\n", kept.join("\n"))).unwrap();
        let b = verify(&d).first_break().cloned().expect("broken");
        assert_eq!(b.line, 3, "{b}");
        assert!(b.why.contains("missing"), "{b}");
    }

    #[test]
    fn only_a_cut_last_line_is_forgiven() {
        let d = dir("torn");
        let path = chain(&d, "1-dd", 3);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 20);
        std::fs::write(&path, &bytes).unwrap();
        let r = verify(&d);
        assert!(r.ok(), "{r:?}");
        assert!(r.chains[0].torn);
        assert_eq!(r.chains[0].records, 3, "the cut record is not counted");
        // A cut line followed by more is a break.
        bytes.extend_from_slice(b"\nmore\n");
        std::fs::write(&path, &bytes).unwrap();
        assert!(!verify(&d).ok());
    }

    #[test]
    fn a_stamp_without_a_configured_authority_is_a_break() {
        let d = dir("stamp");
        let path = chain(&d, "1-ee", 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap();
        let head = last.split_once(' ').unwrap().0.to_string();
        let stamp = Record {
            seq: 4,
            time: "2026-12-07T01:00:01.000Z".into(),
            instance: "1-ee".into(),
            kind: kind::STAMP.into(),
            covers: Some(head.clone()),
            covers_seq: Some(3),
            token: Some("AAAA".into()),
            prev: head,
            ..Record::default()
        };
        std::fs::write(&path, format!("{text}{}", stamp.line().0)).unwrap();
        let b = verify(&d).first_break().cloned().expect("a token that is not one breaks");
        assert_eq!(b.record, "1-ee:4", "{b}");
    }
}
