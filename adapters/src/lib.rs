//! The counterparts of hcc-gateway: the destinations it delivers to and the payment providers
//! it pays through. An adapter does two things only: it builds the upstream request for one
//! message, and it classifies the answer as an [`Outcome`]. Queueing, retries, backoff, the
//! breaker and dead letters belong to the gateway's delivery engine, which drives every adapter
//! the same way. A provider builds and checks its provider's messages. Adding either means
//! adding one module here and one line in [`standard`].
//!
//! # Layout
//!
//! - this file: the [`Adapter`] trait and what crosses it ([`Delivery`], [`Outcome`],
//!   [`CentreEvent`]);
//! - this file also holds [`standard`], every counterpart of hcc-gateway: here, above the
//!   registry and the counterparts, so that none of them uses another both ways;
//! - [`registry`]: the registry of counterparts (destinations and payment providers), their
//!   settings sections and their builds;
//! - [`domain`]: the dossier code and the payment reference, shared by the core and the
//!   counterparts;
//! - [`text`]: Vietnamese made ASCII for counterparts that take only ASCII;
//! - [`dvcqg`]: the national portal (session, answers, the dossier model, its ingest routes,
//!   the dossiers it pushes down);
//! - [`dvclt`]: the civil-registration link-up, polled for dossiers and sent their status;
//! - [`webhook`]: the centre's signed webhook, which also carries the gateway's events;
//! - [`payments`]: the payment providers (PayGov, VNPAY, VietQR, banks' camt.054) and their
//!   settings;
//! - [`catalogue`]: the national procedure catalogue as a counterpart serves it;
//! - [`inbound`]: dossiers handed down by a counterpart (pushed or polled), and the status
//!   the centre sends back up for them;
//! - [`http`]: the HTTP client and status reading every HTTP destination shares;
//! - [`fields`]: reading untrusted JSON objects field by field.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod catalogue;
pub mod domain;
pub mod dvclt;
pub mod dvcqg;
pub mod emc;
pub mod evidence;
pub mod fields;
pub mod http;
pub mod inbound;
pub mod payments;
pub mod registry;
#[cfg(test)]
mod testing;
pub mod text;
pub mod webhook;

pub use fields::FieldError;

/// Every counterpart of hcc-gateway: the destinations it delivers to, and the payment
/// providers it creates payments with and takes confirmations from. The one list the gateway
/// builds, routes, documents and reconciles from.
pub fn standard() -> registry::Registry {
    registry::Registry::empty()
        .with(dvcqg::spec())
        .with(dvclt::spec())
        .with(webhook::spec())
        .with(emc::spec())
        .with_provider(payments::paygov::KIND)
        .with_provider(payments::vnpay::KIND)
        .with_provider(payments::vietqr::KIND)
        .with_provider(payments::bank::KIND)
        .with_source(dvcqg::push::SOURCE)
        .with_source(dvclt::SOURCE)
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has the message.
    Delivered,
    /// A transient failure: try again later, not before `after` when the upstream said so.
    Retry { reason: String, after: Option<Duration> },
    /// The destination refused the message itself; retrying cannot help.
    Reject { reason: String },
}

impl Outcome {
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }
    pub fn reject(reason: impl Into<String>) -> Self {
        Outcome::Reject { reason: reason.into() }
    }
}

/// One message as the engine hands it to an adapter.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub ordering_key: &'a str,
    pub payload: &'a [u8],
    /// 1 on the first attempt.
    pub attempt: u32,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A destination. Implementations must bound every upstream call with a timeout shorter than
/// the engine's lease; the engine enforces an outer bound as well.
pub trait Adapter: Send + Sync + 'static {
    /// The destination's name; it is also the queue's name.
    fn destination(&self) -> &str;
    fn deliver<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome>;

    /// The status a message carries to the destination, in the form it is sent (a dossier's
    /// `TrangThaiHoSo`, a progress entry's `TrangThai`); the gateway keeps the last one
    /// delivered per ordering key. `None` for destinations without such a status.
    fn carried_status(&self, _delivery: &Delivery<'_>) -> Option<String> {
        None
    }

    /// Whether the centre is told of this destination's dead letters, and of their delivery
    /// after a replay (the events of [`Adapter::dead_letter_event`] and
    /// [`Adapter::redelivered_event`]). Not for the centre's own webhooks: an event about an
    /// event would never end.
    fn tells_centre(&self) -> bool {
        false
    }

    /// The event that tells the centre this destination gave up on a message (for the portal,
    /// `dossier.rejected`), with `reason` already cleaned of identity numbers by the engine.
    /// Asked only when [`Adapter::tells_centre`] and the centre has a webhook; the engine
    /// queues it in the settlement's own atomic step.
    fn dead_letter_event(&self, _delivery: &Delivery<'_>, _reason: &str) -> Option<CentreEvent> {
        None
    }

    /// The event that tells the centre a message dead-lettered earlier was delivered after a
    /// replay (for the portal, `dossier.delivered`); the store queues it only for a replayed
    /// message. Asked as [`Adapter::dead_letter_event`] is.
    fn redelivered_event(&self, _delivery: &Delivery<'_>) -> Option<CentreEvent> {
        None
    }

    /// The national procedure catalogue, when this destination serves it (the portal, through
    /// the session it delivers with).
    fn catalogue(&self) -> Option<&dyn catalogue::CatalogueSource> {
        None
    }
}

/// An event for the centre about one message, as a destination words it: its type and its
/// `data`. The gateway wraps it in the envelope every event to the centre has (`type`,
/// `timestamp`, `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct CentreEvent {
    pub kind: &'static str,
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_registry_names_each_counterpart_once_and_one_event_sink() {
        let r = standard();
        let mut names = r.names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), r.specs().len() + r.providers().len(), "one section per counterpart");
        assert_eq!(r.specs().iter().filter(|s| s.event_sink).count(), 1);
        assert_eq!(r.event_sink(), Some(webhook::DESTINATION));
        // A source shares its destination's section and queue: its id is a destination's
        // name, claims no section of its own, and each push route is one source's.
        for source in r.sources() {
            assert!(r.specs().iter().any(|s| s.name == source.id), "{} has no destination", source.id);
            if let Some(path) = source.push_path {
                assert_eq!(r.push_source(path).map(|k| k.id), Some(source.id));
            }
        }
        let mut ids: Vec<_> = r.sources().iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), r.sources().len(), "one source per id");
        // A copied kind is some ingest route's, or the copy would never be made.
        for spec in r.specs() {
            for kind in spec.copies {
                assert!(
                    r.ingest_routes().any(|(_, route)| route.kind == *kind),
                    "{} copies {kind}",
                    spec.name
                );
            }
        }
        // Every ingest route's documented path is its template with other parameter names.
        for (_, route) in r.ingest_routes() {
            let shape = |p: &'static str| p.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect::<Vec<_>>();
            assert_eq!(shape(route.path), shape(route.openapi_path), "{}", route.path);
            assert_eq!(
                (route.operation)()["responses"]["202"]["content"]["application/json"]["schema"]["properties"]["kind"]["enum"][0],
                route.kind
            );
        }
    }
}
