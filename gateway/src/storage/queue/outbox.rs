//! An event for the centre as a settlement writes it to its partition's outbox, in the same
//! atomic step, and as the relay reads it back ([`super::MessageQueue::relay_outbox`]).

/// An event for the centre that a settlement writes to its partition's outbox in the same
/// atomic step; a relay moves it to the centre's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub kind: String,
    pub ordering_key: String,
    pub payload: String,
    /// The trace of the attempt that settled the message (W3C `traceparent`), which the
    /// event's delivery to the centre continues.
    pub traceparent: Option<String>,
}

/// Marks the optional line that holds the trace. A payload is the gateway's JSON envelope, so
/// it never starts with this; entries written before traces were kept have no such line.
const TRACE_LINE: &str = "trace=";

impl OutboxEvent {
    /// `<kind>\n<ordering key>\n[trace=<traceparent>\n]<payload>`: the kind, the key and the
    /// trace hold no newline (a kind is ours, an ordering key is checked at the edge, a
    /// traceparent is ours), the payload comes last.
    pub(in crate::storage) fn encode(&self) -> String {
        match &self.traceparent {
            Some(t) if !t.contains('\n') => format!("{}\n{}\n{TRACE_LINE}{t}\n{}", self.kind, self.ordering_key, self.payload),
            _ => format!("{}\n{}\n{}", self.kind, self.ordering_key, self.payload),
        }
    }

    /// An outbox entry `<event id>\n<event>`: the event id and the event.
    pub(in crate::storage) fn decode(raw: &str) -> Option<(String, OutboxEvent)> {
        let mut parts = raw.splitn(4, '\n').map(str::to_string);
        let (id, kind, ordering_key, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let (traceparent, payload) = match rest.strip_prefix(TRACE_LINE).and_then(|r| r.split_once('\n')) {
            Some((t, payload)) => (Some(t.to_string()), payload.to_string()),
            None => (None, rest),
        };
        let event = OutboxEvent {
            kind,
            ordering_key,
            payload,
            traceparent,
        };
        Some((id, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(traceparent: Option<&str>) -> OutboxEvent {
        OutboxEvent {
            kind: "dossier.rejected".into(),
            ordering_key: "000.00.22.H46-241125-0001".into(),
            payload: "{\"type\":\"dossier.rejected\",\"data\":{\"reason\":\"line one\\nline two\"}}\nand more".into(),
            traceparent: traceparent.map(str::to_string),
        }
    }

    #[test]
    fn an_event_reads_back_as_written_with_or_without_its_trace() {
        for tp in [None, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")] {
            let e = event(tp);
            assert_eq!(
                OutboxEvent::decode(&format!("m1.rejected.1\n{}", e.encode())),
                Some(("m1.rejected.1".into(), e))
            );
        }
    }

    #[test]
    fn an_entry_written_before_traces_were_kept_still_reads() {
        let raw = "m1.rejected.1\ndossier.rejected\nH46-1\n{\"type\":\"dossier.rejected\"}";
        let (_, e) = OutboxEvent::decode(raw).expect("decodes");
        assert_eq!((e.payload.as_str(), e.traceparent), ("{\"type\":\"dossier.rejected\"}", None));
    }
}
