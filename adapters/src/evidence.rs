//! What the evidence log is told of an exchange with the outside, and how it is told without
//! any counterpart naming the log.
//!
//! The gateway opens a [`scope`] around each piece of work that talks to the outside (a
//! delivery attempt, a payment's creation, a reconciliation query): the scope names what the
//! work is about (the ordering key, the payment reference, the message) and holds the recorder.
//! Every HTTP call an adapter makes goes through [`crate::http::send`], which, inside a scope,
//! reads the answer whole and notes the exchange: the SHA-256 of the exact request bytes and of
//! the exact answer bytes, the status, and the bodies the counterpart signs (kept whole, since
//! their signatures are the evidence). When the work ends, the gateway settles the scope with
//! its outcome and the records are written. Outside a scope, or with the log off, nothing is
//! noted and nothing is read twice.
//!
//! Requests that carry credentials (a login) have no request digest: the SHA-256 of a small
//! body holding a password is a password hash anyone could attack offline.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Which way an exchange went: the gateway called out, or a counterpart called the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// Which of an exchange's bodies are kept whole beside their digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Digests only (a citizen's dossier, an event to the centre).
    Nothing,
    /// The request as sent (a confirmation the counterpart signed and sent to the gateway).
    Request,
    /// The answer as received (a signed answer to a query).
    Answer,
}

/// What an exchange is, as the adapter names it before sending.
#[derive(Debug, Clone)]
pub struct Label {
    pub counterpart: String,
    pub operation: String,
    pub keep: Keep,
    /// The request carries a credential: its digest is withheld (see the module note).
    pub credentials: bool,
}

impl Label {
    pub fn new(counterpart: impl Into<String>, operation: impl Into<String>) -> Self {
        Label {
            counterpart: counterpart.into(),
            operation: operation.into(),
            keep: Keep::Nothing,
            credentials: false,
        }
    }

    pub fn keep(mut self, keep: Keep) -> Self {
        self.keep = keep;
        self
    }

    /// The request holds a password or a similar secret.
    pub fn with_credentials(mut self) -> Self {
        self.credentials = true;
        self
    }
}

/// One exchange, as noted: digests, status, and the bodies kept.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub direction: Direction,
    pub counterpart: String,
    pub operation: String,
    /// None when the request carried credentials (withheld) or had no body.
    pub request_sha256: Option<[u8; 32]>,
    pub request_len: usize,
    /// None when no answer came (the transport failed).
    pub answer_sha256: Option<[u8; 32]>,
    pub answer_len: usize,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why no whole answer came (timed out, connection failed, larger than the bound).
    pub failure: Option<String>,
    pub kept_request: Option<Vec<u8>>,
    pub kept_answer: Option<Vec<u8>>,
}

impl Exchange {
    /// An exchange over `request` and `answer` (None: no answer), as `label` says to keep them.
    pub fn new(direction: Direction, label: &Label, request: &[u8], answer: Option<&[u8]>) -> Self {
        Exchange {
            direction,
            counterpart: label.counterpart.clone(),
            operation: label.operation.clone(),
            request_sha256: (!label.credentials).then(|| hcc_core::sha256(request)),
            request_len: request.len(),
            answer_sha256: answer.map(hcc_core::sha256),
            answer_len: answer.map_or(0, <[u8]>::len),
            status: None,
            failure: None,
            kept_request: (label.keep == Keep::Request && !label.credentials).then(|| request.to_vec()),
            kept_answer: match (label.keep, answer) {
                (Keep::Answer, Some(a)) => Some(a.to_vec()),
                _ => None,
            },
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn failed(mut self, why: impl Into<String>) -> Self {
        self.failure = Some(why.into());
        self
    }
}

/// What the work was about: the keys a record is found by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The dossier (`MaHoSo`) or other ordering key of a queued message.
    pub ordering_key: Option<String>,
    /// A payment's `MaThamChieu`.
    pub reference: Option<String>,
    /// The queued message's id.
    pub message_id: Option<String>,
}

impl Subject {
    pub fn message(id: &str, ordering_key: &str) -> Self {
        Subject {
            ordering_key: (!ordering_key.is_empty()).then(|| ordering_key.to_string()),
            reference: None,
            message_id: Some(id.to_string()),
        }
    }

    pub fn payment(reference: &str) -> Self {
        Subject {
            reference: Some(reference.to_string()),
            ..Subject::default()
        }
    }
}

/// The evidence log as the counterparts' callers see it: takes finished exchanges and never
/// blocks (a full log drops and counts; it never slows an exchange).
pub trait Recorder: Send + Sync {
    fn record(&self, subject: &Subject, exchange: Exchange, outcome: &str);
}

/// The open scope of one piece of work.
struct Open {
    noted: Mutex<Vec<Exchange>>,
}

tokio::task_local! {
    static SCOPE: Arc<Open>;
}

/// The exchanges a piece of work made, waiting for its outcome.
#[must_use = "settle the exchanges with the work's outcome, or they are not recorded"]
pub struct Noted {
    recorder: Option<Arc<dyn Recorder>>,
    subject: Subject,
    exchanges: Vec<Exchange>,
}

impl Noted {
    /// Records every exchange with the work's outcome.
    pub fn settle(self, outcome: &str) {
        if let Some(r) = &self.recorder {
            for e in self.exchanges {
                r.record(&self.subject, e, outcome);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }
}

/// Runs `work` in a scope whose exchanges are noted, when there is a recorder; else runs it
/// as it is. The exchanges come back with the work's output, for [`Noted::settle`].
pub async fn scope<F: Future>(recorder: Option<&Arc<dyn Recorder>>, subject: Subject, work: F) -> (F::Output, Noted) {
    let Some(recorder) = recorder else {
        return (
            work.await,
            Noted {
                recorder: None,
                subject,
                exchanges: Vec::new(),
            },
        );
    };
    let open = Arc::new(Open {
        noted: Mutex::new(Vec::new()),
    });
    let out = SCOPE.scope(open.clone(), work).await;
    let exchanges = std::mem::take(&mut *open.noted.lock().unwrap_or_else(|e| e.into_inner()));
    (
        out,
        Noted {
            recorder: Some(recorder.clone()),
            subject,
            exchanges,
        },
    )
}

/// Whether the running task is inside a scope (so an answer is worth reading whole).
pub fn noting() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Notes an exchange in the running task's scope; outside one it is dropped.
pub fn note(exchange: Exchange) {
    let _ = SCOPE.try_with(|open| open.noted.lock().unwrap_or_else(|e| e.into_inner()).push(exchange));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Subject, Exchange, String)>>);

    impl Recorder for Collect {
        fn record(&self, subject: &Subject, exchange: Exchange, outcome: &str) {
            self.0.lock().unwrap().push((subject.clone(), exchange, outcome.to_string()));
        }
    }

    #[tokio::test]
    async fn a_scope_records_what_its_work_noted_with_the_outcome() {
        let collect = Arc::new(Collect::default());
        let recorder: Arc<dyn Recorder> = collect.clone();
        let label = Label::new("dvcqg", "DongBoHoSoMC");
        let (out, noted) = scope(Some(&recorder), Subject::message("m1", "H46-1"), async {
            assert!(noting());
            note(Exchange::new(Direction::Out, &label, b"request", Some(b"answer")).status(200));
            7
        })
        .await;
        assert_eq!(out, 7);
        assert!(collect.0.lock().unwrap().is_empty(), "nothing is written before the outcome");
        noted.settle("delivered");
        let got = collect.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (subject, e, outcome) = &got[0];
        assert_eq!(subject.ordering_key.as_deref(), Some("H46-1"));
        assert_eq!(outcome, "delivered");
        assert_eq!(e.request_sha256, Some(hcc_core::sha256(b"request")));
        assert_eq!(e.answer_sha256, Some(hcc_core::sha256(b"answer")));
        assert_eq!(e.kept_request, None);
    }

    #[tokio::test]
    async fn without_a_recorder_nothing_is_noted() {
        let (_, noted) = scope(None, Subject::default(), async {
            assert!(!noting());
            note(Exchange::new(Direction::Out, &Label::new("x", "y"), b"r", None));
        })
        .await;
        assert!(noted.is_empty());
        assert!(!noting());
    }

    #[test]
    fn a_request_with_credentials_has_no_digest_and_is_never_kept() {
        let label = Label::new("dvcqg", "login").keep(Keep::Request).with_credentials();
        let e = Exchange::new(Direction::Out, &label, br#"{"password":"p"}"#, Some(b"{}"));
        assert_eq!(e.request_sha256, None);
        assert_eq!(e.kept_request, None);
        assert!(e.answer_sha256.is_some());
    }

    #[test]
    fn kept_bodies_follow_the_label() {
        let a = Exchange::new(
            Direction::Out,
            &Label::new("vnpay", "querydr").keep(Keep::Answer),
            b"q",
            Some(b"signed"),
        );
        assert_eq!(a.kept_answer.as_deref(), Some(&b"signed"[..]));
        assert_eq!(a.kept_request, None);
        let r = Exchange::new(
            Direction::In,
            &Label::new("banks", "camt.054").keep(Keep::Request),
            b"<Document/>",
            Some(b""),
        );
        assert_eq!(r.kept_request.as_deref(), Some(&b"<Document/>"[..]));
    }
}
