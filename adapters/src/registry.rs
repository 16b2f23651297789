//! The registry: the one list of counterparts the gateway knows, of both kinds.
//!
//! - A **destination** (the portal, the centre's webhooks) describes itself with a
//!   [`DestinationSpec`]: its name, which is also its queue's and its settings section's, how to
//!   build its adapter from that section, and the routes through which the centre hands it
//!   messages.
//! - A **payment provider** (PayGov, VNPAY, VietQR, the banks) describes itself with a
//!   [`ProviderKind`]: its id, which is also its settings section's, its callback routes, and
//!   how to build it.
//!
//! Both are built the same way, from a [`BuildContext`], by [`Registry::build`], which reports
//! every problem of every section at once. [`crate::standard`] lists the gateway's own; the
//! gateway's core builds, routes and documents whatever a registry holds, so it never names a
//! counterpart, and a test adds one of its own the same way. Adding one is a module here, a mock
//! in `mocks/`, and one line in [`crate::standard`] (see `docs/adding-a-counterpart.md`).
//!
//! A destination may also take **copies** of another's ingest kinds ([`DestinationSpec::copies`]):
//! each message the centre hands the portal as `dossier.sync` is queued for it as well, in its
//! own queue, so a monitoring system hears of every step without a route of its own and
//! without either destination waiting for the other.
//!
//! Ingest routes are part of the spec, not of the built adapter: a route is served (and
//! documented) whether or not the destination is configured, and answers 503 when it is not,
//! so a centre sees "not configured here" rather than "no such resource".

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use hcc_config::{DeliverySettings, Problem, Role, Section, Settings};
use serde_json::{Map, Value, json};

use crate::inbound::{InboundSource, SourceKind};
use crate::payments::{Agency, CallbackRoute, PaymentProvider, ProviderKind};
use crate::{Adapter, FieldError};

/// What a destination's `build` gives: its adapter, `None` when its section leaves it off, or
/// every problem with the section, each named `section.key`.
pub type BuiltDestination = Result<Option<Arc<dyn Adapter>>, Vec<Problem>>;

/// One destination, as its module describes it.
#[derive(Clone, Copy)]
pub struct DestinationSpec {
    /// The destination's name: its queue's name and its settings section's.
    pub name: &'static str,
    /// Builds the adapter from the destination's section.
    pub build: fn(&BuildContext<'_>) -> BuiltDestination,
    /// The routes through which the centre hands this destination messages.
    pub ingest: &'static [IngestRoute],
    /// This destination delivers the gateway's own events (payment confirmations, ...) to the
    /// centre. At most one destination in a registry says so.
    pub event_sink: bool,
    /// The ingest kinds (another destination's, e.g. `dossier.sync`) whose accepted messages
    /// this destination also gets: the same kind, ordering key and payload, in its own queue,
    /// so neither destination ever waits for the other. A monitoring system that hears of
    /// every dossier step (EMC) is one; `&[]` for most.
    pub copies: &'static [&'static str],
}

/// What a counterpart's `build` gets: its own section, and the few shared settings a
/// counterpart may need, nothing else of the configuration.
pub struct BuildContext<'a> {
    /// The destination's or provider's name, which is its section's.
    pub name: &'static str,
    /// Its section; `None` when no file or variable mentions it.
    pub section: Option<&'a Section>,
    /// `delivery` with the destination's `[destinations.<name>]` overrides applied.
    pub delivery: DeliverySettings,
    /// `HCC_ENV=production`: refuse what is only fit for development.
    pub production: bool,
    /// `trust.ca_dir`: the CA certificates a signature must chain to; empty when none.
    pub trust_ca_dir: &'a str,
    /// The receiving agencies (`agencies.<id>`) payments are made to.
    pub agencies: Vec<Agency>,
}

impl<'a> BuildContext<'a> {
    pub fn new(settings: &'a Settings, name: &'static str) -> Self {
        BuildContext {
            name,
            section: settings.section(name),
            delivery: settings.delivery_for(name),
            production: settings.is_production(),
            trust_ca_dir: &settings.trust.ca_dir,
            agencies: Agency::all(settings),
        }
    }

    /// A context with only a section, for tests of one counterpart's checks: development, no
    /// trust store, no agency, the default delivery settings.
    pub fn bare(name: &'static str, section: Option<&'a Section>) -> Self {
        BuildContext {
            name,
            section,
            delivery: DeliverySettings::default(),
            production: false,
            trust_ca_dir: "",
            agencies: Vec::new(),
        }
    }

    /// The section typed as `T`; `T::default()` when the section is absent.
    pub fn settings<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Vec<Problem>> {
        match self.section {
            Some(s) => s.parse().map_err(|p| vec![p]),
            None => Ok(T::default()),
        }
    }

    /// The bound on one delivery attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.delivery.upstream_timeout_ms)
    }

    /// A problem with `key` of this section (`dvcqg.dstcode`).
    pub fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            key: format!("{}.{key}", self.name),
            message: message.into(),
        }
    }

    /// Adds a problem unless `value` is an http or https URL; in production, unless it is
    /// https or names a loopback host ([`hcc_config::check_outside_url`]).
    pub fn check_http_url(&self, problems: &mut Vec<Problem>, key: &str, value: &str) {
        hcc_config::check_outside_url(problems, &format!("{}.{key}", self.name), value, self.production);
    }
}

/// A `POST` route through which the centre hands a destination a message. The core does what
/// every such route shares (authentication and the route's roles, the body's content type,
/// size and JSON syntax, `Idempotency-Key`, queueing, the 202 answer); `parse` does the rest.
pub struct IngestRoute {
    /// The actix template, e.g. `/v1/dossiers/{ma_ho_so}/progress`; parameter names are also
    /// what metrics show (`:ma_ho_so`).
    pub path: &'static str,
    /// The same path as the API document writes it, e.g. `/v1/dossiers/{MaHoSo}/progress`.
    pub openapi_path: &'static str,
    /// The kind of the messages it queues, e.g. `dossier.progress`.
    pub kind: &'static str,
    /// The roles that may call it.
    pub roles: &'static [Role],
    /// The request as the destination takes it: the ordering key and the payload to queue,
    /// or what is wrong with it.
    pub parse: fn(&IngestRequest<'_>) -> Result<Ingest, IngestError>,
    /// Its OpenAPI 3.1 Operation object.
    pub operation: fn() -> Value,
}

/// A request to an ingest route, as `parse` sees it: the path parameters, and the body, which
/// the core has read and parsed as JSON, or could not. `parse` asks for each when it needs it,
/// so a bad path parameter is reported before a bad body, whichever comes first in its checks.
pub struct IngestRequest<'a> {
    params: &'a [(&'a str, &'a str)],
    body: Result<&'a Value, &'a str>,
}

impl<'a> IngestRequest<'a> {
    /// `body` is the parsed JSON document, or why it is not one (no input quoted).
    pub fn new(params: &'a [(&'a str, &'a str)], body: Result<&'a Value, &'a str>) -> Self {
        IngestRequest { params, body }
    }

    /// A path parameter by the name the route's template gives it.
    pub fn param(&self, name: &str) -> Result<&'a str, IngestError> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
            IngestError::Invalid(vec![FieldError {
                field: format!("{name} (path)"),
                message: "is required".into(),
            }])
        })
    }

    /// The body as a JSON value.
    pub fn body(&self) -> Result<&'a Value, IngestError> {
        self.body.map_err(|e| IngestError::Malformed(e.to_string()))
    }
}

/// A message an ingest route accepted, to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingest {
    /// Messages with one ordering key are delivered one at a time, in the order accepted.
    pub ordering_key: String,
    /// What the adapter gets back at delivery; its SHA-256 is the idempotency fingerprint.
    pub payload: Vec<u8>,
    /// The national procedure the message names (`MaTTHC`), for the core's catalogue check;
    /// `None` when it names none.
    pub procedure: Option<String>,
}

impl Ingest {
    /// A JSON object as the payload. serde_json's map is ordered by key, so the same object
    /// sent with its members in another order or other spacing is the same payload.
    pub fn json(ordering_key: &str, object: &Map<String, Value>) -> Result<Ingest, IngestError> {
        Ok(Ingest {
            ordering_key: ordering_key.to_string(),
            payload: serde_json::to_vec(object).map_err(|_| IngestError::Unencodable)?,
            procedure: None,
        })
    }

    /// The same, naming the national procedure it is about.
    pub fn naming(mut self, procedure: Option<String>) -> Self {
        self.procedure = procedure;
        self
    }
}

/// Why an ingest route refused a request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not JSON (400); the reason quotes no input.
    #[error("{0}")]
    Malformed(String),
    /// Fields or path parameters that do not parse (422), each named.
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The accepted value could not be written back out (a bug, 500).
    #[error("the payload could not be encoded")]
    Unencodable,
}

impl From<Vec<FieldError>> for IngestError {
    fn from(errors: Vec<FieldError>) -> Self {
        IngestError::Invalid(errors)
    }
}

/// The counterparts a gateway knows, in the order they were added: destinations and payment
/// providers.
#[derive(Default, Clone)]
pub struct Registry {
    destinations: Vec<DestinationSpec>,
    providers: Vec<ProviderKind>,
    sources: Vec<SourceKind>,
}

/// What a registry's counterparts came to under one configuration: the destinations' adapters
/// and the payment providers, each only when its section switches it on.
#[derive(Default)]
pub struct Built {
    pub adapters: Vec<Arc<dyn Adapter>>,
    pub providers: HashMap<&'static str, Arc<dyn PaymentProvider>>,
    /// The sources of inbound dossiers, by id.
    pub sources: HashMap<&'static str, Arc<dyn InboundSource>>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry::default()
    }

    /// Adds a destination; one of the same name is replaced, so a test can swap one.
    pub fn with(mut self, spec: DestinationSpec) -> Self {
        self.destinations.retain(|s| s.name != spec.name);
        self.destinations.push(spec);
        self
    }

    /// Adds a payment provider; one of the same id is replaced, so a test can swap one.
    pub fn with_provider(mut self, kind: ProviderKind) -> Self {
        self.providers.retain(|k| k.id != kind.id);
        self.providers.push(kind);
        self
    }

    /// Adds a source of inbound dossiers; one of the same id is replaced. Its id is a
    /// destination's name too (the status goes back through that destination's queue) and it
    /// shares that destination's section.
    pub fn with_source(mut self, kind: SourceKind) -> Self {
        self.sources.retain(|k| k.id != kind.id);
        self.sources.push(kind);
        self
    }

    pub fn sources(&self) -> &[SourceKind] {
        &self.sources
    }

    /// The source whose push route this is.
    pub fn push_source(&self, path: &str) -> Option<&SourceKind> {
        self.sources.iter().find(|k| k.push_path == Some(path))
    }

    pub fn specs(&self) -> &[DestinationSpec] {
        &self.destinations
    }

    pub fn providers(&self) -> &[ProviderKind] {
        &self.providers
    }

    /// The provider of this id that creates payments, configured or not.
    pub fn creating(&self, id: &str) -> Option<&ProviderKind> {
        self.providers.iter().find(|k| k.id == id && k.creates.is_some())
    }

    /// The ids of the providers that create payments.
    pub fn creating_ids(&self) -> Vec<&'static str> {
        self.providers.iter().filter(|k| k.creates.is_some()).map(|k| k.id).collect()
    }

    /// The provider whose callback route this is (method, path template).
    pub fn callback(&self, method: &str, route: &str) -> Option<&ProviderKind> {
        self.providers
            .iter()
            .find(|k| k.routes.iter().any(|r| r.method.as_str() == method && r.path == route))
    }

    /// Every provider's callback routes, configured or not.
    pub fn callback_routes(&self) -> impl Iterator<Item = &'static CallbackRoute> + '_ {
        self.providers.iter().flat_map(|k| k.routes.iter())
    }

    /// The counterparts' names, which are also the settings sections they claim.
    pub fn names(&self) -> Vec<&'static str> {
        self.destinations
            .iter()
            .map(|s| s.name)
            .chain(self.providers.iter().map(|k| k.id))
            .collect()
    }

    /// The destination that carries the gateway's own events to the centre.
    pub fn event_sink(&self) -> Option<&'static str> {
        self.destinations.iter().find(|s| s.event_sink).map(|s| s.name)
    }

    /// The destinations that take a copy of every accepted message of ingest kind `kind`, in
    /// the order they were added.
    pub fn copying<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'static str> + 'a {
        self.destinations.iter().filter(move |s| s.copies.contains(&kind)).map(|s| s.name)
    }

    /// Every ingest route with the destination it feeds.
    pub fn ingest_routes(&self) -> impl Iterator<Item = (&'static str, &'static IngestRoute)> + '_ {
        self.destinations.iter().flat_map(|s| s.ingest.iter().map(move |r| (s.name, r)))
    }

    /// Builds every counterpart the settings switch on, or reports every problem of every
    /// section at once.
    pub fn build(&self, settings: &Settings) -> Result<Built, Vec<Problem>> {
        let mut built = Built::default();
        let mut problems = Vec::new();
        for spec in &self.destinations {
            match (spec.build)(&BuildContext::new(settings, spec.name)) {
                Ok(Some(a)) => built.adapters.push(a),
                Ok(None) => {}
                Err(p) => problems.extend(p),
            }
        }
        for kind in &self.providers {
            match (kind.build)(&BuildContext::new(settings, kind.id)) {
                Ok(Some(p)) => {
                    built.providers.insert(kind.id, p);
                }
                Ok(None) => {}
                Err(p) => problems.extend(p),
            }
        }
        for kind in &self.sources {
            match (kind.build)(&BuildContext::new(settings, kind.id)) {
                Ok(Some(s)) => {
                    built.sources.insert(kind.id, s);
                }
                Ok(None) => {}
                Err(p) => problems.extend(p),
            }
        }
        // A source shares its destination's section and is built from it too: a problem with
        // the section is reported once, however many of them read it.
        let mut seen = Vec::with_capacity(problems.len());
        problems.retain(|p| {
            let first = !seen.contains(p);
            if first {
                seen.push(p.clone());
            }
            first
        });
        if problems.is_empty() { Ok(built) } else { Err(problems) }
    }
}

/// The OpenAPI Operation of an ingest route: the route's own `summary`, `description`, path
/// `parameters` and request `body` schema, with what the core answers for every ingest route
/// (the `Idempotency-Key` header, 202 with the message's `Location`, and the problems).
pub fn ingest_operation(route_kind: &str, summary: &str, description: &str, path_parameters: Vec<Value>, body: Value) -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    };
    let mut parameters = path_parameters;
    parameters.push(json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"},
        "description": "1 to 255 visible ASCII characters"
    }));
    json!({
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "parameters": parameters,
        "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": {
                "description": "Queued; Location points at the message",
                "headers": {
                    "Location": {"schema": {"type": "string"}},
                    "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}
                },
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["id", "kind", "ordering_key", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"type": "string", "enum": [route_kind]},
                        "ordering_key": {"type": "string"},
                        "status": {"type": "string", "enum": ["queued"]},
                        "warnings": {
                            "type": "array",
                            "description": "What the gateway noticed but did not refuse (catalogue.check = warn: a MaTTHC the national catalogue does not have)",
                            "items": {"type": "object", "required": ["field", "message"], "properties": {
                                "field": {"type": "string"}, "message": {"type": "string"}
                            }}
                        }
                    }
                }}}
            },
            "400": problem("Malformed request"),
            "401": problem("Missing or invalid API key"),
            "403": problem("Wrong role"),
            "409": problem("Idempotency-Key reused with a different body"),
            "413": problem("Body over the limit"),
            "415": problem("Wrong content type"),
            "422": problem("Validation failed"),
            "503": problem("Queue backend unavailable, or the destination is not configured here")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &BuildContext<'_>) -> BuiltDestination {
        Ok(None)
    }

    fn spec(name: &'static str, event_sink: bool) -> DestinationSpec {
        DestinationSpec {
            name,
            build: nothing,
            ingest: &[],
            event_sink,
            copies: &[],
        }
    }

    #[test]
    fn a_spec_of_the_same_name_replaces_the_earlier_one() {
        let r = Registry::empty()
            .with(spec("a", false))
            .with(spec("b", false))
            .with(spec("a", true));
        assert_eq!(r.names(), vec!["b", "a"]);
        assert_eq!(r.event_sink(), Some("a"));
    }

    #[test]
    fn copying_names_the_destinations_that_take_a_kind() {
        let copier = |name: &'static str, copies: &'static [&'static str]| DestinationSpec {
            copies,
            ..spec(name, false)
        };
        let r = Registry::empty()
            .with(spec("a", false))
            .with(copier("b", &["x.sync", "x.progress"]))
            .with(copier("c", &["x.sync"]));
        assert_eq!(r.copying("x.sync").collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(r.copying("x.progress").collect::<Vec<_>>(), ["b"]);
        assert_eq!(r.copying("y").count(), 0);
    }

    /// A source reads its destination's section too: a problem with it is reported once.
    #[test]
    fn a_problem_of_a_shared_section_is_reported_once() {
        fn bad(ctx: &BuildContext<'_>) -> Vec<Problem> {
            vec![ctx.problem("base_url", "must be an http or https URL")]
        }
        let r = Registry::empty()
            .with(DestinationSpec {
                name: "x",
                build: |ctx| Err(bad(ctx)),
                ingest: &[],
                event_sink: false,
                copies: &[],
            })
            .with_source(SourceKind {
                id: "x",
                push_path: None,
                build: |ctx| Err([bad(ctx), vec![ctx.problem("other", "wrong")]].concat()),
            });
        let settings: Settings = serde_json::from_value(json!({})).expect("defaults");
        let keys: Vec<String> = match r.build(&settings) {
            Err(p) => p.into_iter().map(|p| p.key).collect(),
            Ok(_) => panic!("problems expected"),
        };
        assert_eq!(keys, ["x.base_url", "x.other"]);
    }

    #[test]
    fn a_request_gives_its_parameters_and_body_or_says_what_is_wrong() {
        let body = json!({"x": 1});
        let params = [("id", "7")];
        let ok = IngestRequest::new(&params, Ok(&body));
        assert_eq!(ok.param("id").ok(), Some("7"));
        assert!(matches!(ok.param("other"), Err(IngestError::Invalid(e)) if e[0].field == "other (path)"));
        assert_eq!(ok.body().ok(), Some(&body));
        let bad = IngestRequest::new(&params, Err("malformed JSON at line 1 column 2"));
        assert!(matches!(bad.body(), Err(IngestError::Malformed(m)) if m.contains("line 1")));
    }

    #[test]
    fn the_payload_ignores_member_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": [2, 3]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":[2,3],"b":1}"#).expect("json");
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            panic!("objects")
        };
        let (a, b) = (Ingest::json("k", a).expect("encodes"), Ingest::json("k", b).expect("encodes"));
        assert_eq!(a, b);
        assert_eq!(a.payload, br#"{"a":[2,3],"b":1}"#);
    }
}
