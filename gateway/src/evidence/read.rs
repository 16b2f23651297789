//! Finding records for `GET /v1/evidence`: by ordering key, by payment reference, or by id
//! (`instance:seq`), each with its place in its chain and the stamp that covers it.
//!
//! The files are the only store, read newest chain first. Every search is bounded by how many
//! records it returns and by how many bytes it reads, and says when it stopped early.

use std::io::BufRead;
use std::path::Path;

use super::record::{self, Record, kind};

/// A record as found, with what proves it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    /// `instance:seq`.
    pub id: String,
    pub file: String,
    pub line: usize,
    /// The hash of this record (the line's first field) and of the one before it.
    pub hash: String,
    /// The exact line as written, without its newline: `sha256sum` of the text after the first
    /// space is `hash`.
    pub line_text: String,
    pub record: Record,
    /// The first stamp after it in its chain: its token covers this record through the chain.
    pub stamp: Option<StampRef>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StampRef {
    pub id: String,
    /// The record whose hash the token's imprint is (`-digest` for `openssl ts -verify`).
    pub covers: String,
    pub covers_seq: u64,
    pub gen_time: Option<String>,
    /// Base64 DER `TimeStampToken`.
    pub token: String,
}

/// What a search looks for.
pub enum Query<'a> {
    OrderingKey(&'a str),
    Reference(&'a str),
    Id { instance: &'a str, seq: u64 },
}

impl Query<'_> {
    fn matches(&self, r: &Record) -> bool {
        match self {
            Query::OrderingKey(k) => r.ordering_key.as_deref() == Some(*k),
            // A bank's notice may name several payments, joined by commas.
            Query::Reference(k) => r.reference.as_deref().is_some_and(|refs| refs.split(',').any(|x| x == *k)),
            Query::Id { seq, .. } => r.seq == *seq,
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Results {
    pub records: Vec<Found>,
    /// The search stopped at its byte budget or its limit before reading every file.
    pub truncated: bool,
}

/// The records `q` finds in `dir`, newest chain first, at most `limit`, reading at most
/// `budget` bytes.
pub fn search(dir: &Path, q: &Query<'_>, limit: usize, budget: u64) -> std::io::Result<Results> {
    let mut chains: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some((instance, _)) = record::parse_file_name(&name) {
            if let Query::Id { instance: want, .. } = q
                && instance != *want
            {
                continue;
            }
            chains.entry(instance).or_default().push(name);
        }
    }
    let mut out = Results::default();
    let mut read = 0u64;
    // Instance ids begin with their start time: the newest chain is the last.
    for (instance, mut files) in chains.into_iter().rev() {
        files.sort();
        let mut waiting: Vec<Found> = Vec::new();
        'files: for name in &files {
            let mut reader = std::io::BufReader::new(std::fs::File::open(dir.join(name))?);
            let mut buf = String::new();
            let mut line_no = 0;
            loop {
                buf.clear();
                let n = reader.read_line(&mut buf)?;
                if n == 0 || !buf.ends_with('\n') {
                    break;
                }
                read += n as u64;
                line_no += 1;
                let text = buf.trim_end_matches('\n');
                let Ok((r, hash)) = record::parse_line(text) else { continue };
                if r.kind == kind::STAMP {
                    let covers_seq = r.covers_seq.unwrap_or(0);
                    let stamp = StampRef {
                        id: format!("{instance}:{}", r.seq),
                        covers: r.covers.clone().unwrap_or_default(),
                        covers_seq,
                        gen_time: r.gen_time.clone(),
                        token: r.token.clone().unwrap_or_default(),
                    };
                    for f in waiting.extract_if(.., |f| f.record.seq <= covers_seq) {
                        out.records.push(Found {
                            stamp: Some(stamp.clone()),
                            ..f
                        });
                    }
                } else if q.matches(&r) {
                    waiting.push(Found {
                        id: format!("{instance}:{}", r.seq),
                        file: name.clone(),
                        line: line_no,
                        hash: hex::encode(hash),
                        line_text: text.to_string(),
                        record: r,
                        stamp: None,
                    });
                }
                // Enough records, each with its stamp found: nothing later can change them.
                if out.records.len() >= limit {
                    break 'files;
                }
                if read > budget {
                    out.truncated = true;
                    break 'files;
                }
            }
        }
        out.records.append(&mut waiting);
        if out.records.len() >= limit || out.truncated {
            out.truncated |= out.records.len() > limit;
            out.records.truncate(limit);
            break;
        }
    }
    Ok(out)
}
