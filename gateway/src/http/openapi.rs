//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! response types' `ToSchema` derives, and computed once at start. It is the one list of what
//! each path serves: the 405 fallback's `Allow` is read from it ([`ApiDocument::allowed_methods`]).
//!
//! The annotations name error statuses by code only; [`openapi_document`] gives each the shared
//! `Problem` body as `application/problem+json` and a standard description, because every error
//! is an [`super::problem::ApiError`] and has that one shape. Bodies that are read field by field
//! (there is no Rust type to derive from; see `body.rs`) are JSON Schemas stated beside their
//! parsers. Operations defined elsewhere (an adapter's ingest routes) join through
//! [`ExtraOperation`].

use std::sync::LazyLock;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::web::Bytes;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::problem::{FieldErrorSchema, ProblemBody};

/// The security scheme every keyed operation names.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hcc-gateway",
        version = "1",
        description = "Connects public administrative service centres to the National Public Service Portal \
            (DVCQG), payment providers and banks. Every accepted message is queued durably and retried until it \
            lands. Keyed operations take an API key as a bearer token; each says which roles (centre, operator, \
            admin) may call it: no key is 401, a key of another role 403. Every error is an RFC 9457 \
            application/problem+json document; a path asked with a method it does not serve answers 405 with an \
            Allow header, and a path no route serves answers 404."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::openapi,
        super::metrics,
        super::audit,
        super::get_message,
        super::dossiers::get_dossier,
        super::ops::list_queues,
        super::ops::history,
        super::ops::dashboard_page,
        super::ops::dashboard_script,
        super::ops::dashboard_catalogue_script,
        super::ops::dashboard_style,
        super::ops::list_dead,
        super::ops::replay_all,
        super::ops::replay_progress,
        super::ops::replay_cancel,
        super::ops::replay_one,
        super::ops::discard_one,
        super::ops::pause,
        super::ops::resume,
        super::signatures::sign,
        super::signatures::verify,
        super::payments::create,
        super::payments::get,
        super::payments::qr_png,
        super::payments::qr_svg,
        super::payments::list,
        super::unmatched::list,
        super::unmatched::assign,
        super::unmatched::give_back,
        super::inbound::get_file,
        super::inbound::post_status,
        super::inbound::list,
        super::inbound::get_one,
        super::catalogue::list,
        super::catalogue::get_one,
        super::catalogue::sync_state,
        super::catalogue::request_sync,
        super::evidence::list,
        super::evidence::get_one,
    ),
    components(schemas(ProblemBody, FieldErrorSchema)),
    modifiers(&BearerKey)
)]
struct CoreApi;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`Authorization: Bearer <key>`); its role is centre, operator or admin.",
                    ))
                    .build(),
            ),
        );
    }
}

pub use super::operation::ExtraOperation;

/// The whole document: the handlers annotated here, the JSON Schemas of bodies read field by
/// field (`creating`: the providers a payment may name), then `extra`, with every error
/// response given the shared problem body.
pub fn openapi_document(extra: &[ExtraOperation], creating: &[&str]) -> Value {
    let mut doc = serde_json::to_value(CoreApi::openapi()).unwrap_or_else(|_| json!({}));
    let mut schemas: Vec<(String, Value)> = Vec::new();
    schemas.extend(super::payments::body_schemas(creating));
    schemas.extend(super::unmatched::body_schemas());
    schemas.extend(super::ops::body_schemas());
    schemas.extend(super::signatures::body_schemas());
    let extra: Vec<&ExtraOperation> = extra.iter().collect();
    for e in &extra {
        schemas.extend(e.schemas.iter().cloned());
    }
    let components = object_at(&mut doc, "components").map(|c| c.entry("schemas").or_insert_with(|| json!({})));
    if let Some(components) = components.and_then(Value::as_object_mut) {
        for (name, schema) in schemas {
            components.insert(name, schema);
        }
    }
    if let Some(paths) = object_at(&mut doc, "paths") {
        for e in &extra {
            let item = paths.entry(e.path.clone()).or_insert_with(|| json!({}));
            if let Some(item) = item.as_object_mut() {
                item.insert(e.method.as_str().to_ascii_lowercase(), e.operation.clone());
            }
        }
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in item.values_mut() {
                body_read_answers(operation);
                problem_bodies(operation);
            }
        }
    }
    doc
}

/// The member `key` of `v` as an object, made one when missing.
fn object_at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.as_object_mut()?.entry(key).or_insert_with(|| json!({})).as_object_mut()
}

/// What reading a body can answer, on every operation that takes one (`body.rs`): 408 when it
/// does not arrive within `server.body_read_timeout_ms`, 503 with `Retry-After` when the budget
/// of bodies in flight is taken (added to the operation's own 503, if any).
fn body_read_answers(operation: &mut Value) {
    if operation.get("requestBody").is_none() {
        return;
    }
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses
        .entry("408")
        .or_insert_with(|| json!({"description": standard_description(408)}));
    let busy = "the gateway is receiving as many request bodies as it takes at once (`busy`, with Retry-After)";
    let r = responses.entry("503").or_insert_with(|| json!({}));
    if let Some(r) = r.as_object_mut() {
        let described = r.get("description").and_then(Value::as_str).filter(|d| !d.is_empty());
        let description = match described {
            Some(d) => format!("{d}; or {busy}"),
            None => format!("{}; or {busy}", standard_description(503)),
        };
        r.insert("description".into(), json!(description));
        let headers = r.entry("headers").or_insert_with(|| json!({}));
        if let Some(h) = headers.as_object_mut() {
            h.entry("Retry-After").or_insert_with(
                || json!({"description": "seconds to wait before trying again, when the gateway says when", "schema": {"type": "string"}}),
            );
        }
    }
}

/// Each 4xx/5xx response without content gets the problem body, a description when it has
/// none, and the headers [`super::problem::ApiError`] sends with it.
fn problem_bodies(operation: &mut Value) {
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(code) = status.parse::<u16>().ok().filter(|c| *c >= 400) else {
            continue;
        };
        let Some(r) = response.as_object_mut() else {
            continue;
        };
        if r.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            r.insert("description".into(), json!(standard_description(code)));
        }
        r.entry("content")
            .or_insert_with(|| json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}));
        let header = match code {
            401 => Some(("WWW-Authenticate", "`Bearer`, when no valid key was given")),
            405 => Some(("Allow", "the methods the path serves")),
            _ => None,
        };
        if let Some((name, description)) = header {
            let headers = r.entry("headers").or_insert_with(|| json!({}));
            if let Some(h) = headers.as_object_mut() {
                h.entry(name)
                    .or_insert_with(|| json!({"description": description, "schema": {"type": "string"}}));
            }
        }
    }
}

fn standard_description(code: u16) -> &'static str {
    match code {
        400 => "The request could not be read: malformed body, query string or header",
        401 => "No valid API key",
        403 => "The key's role may not do this",
        404 => "No such resource",
        405 => "The path does not serve this method",
        408 => "The body did not arrive within server.body_read_timeout_ms",
        409 => "Conflict with the current state",
        413 => "The body is larger than the configured limit",
        415 => "The body's content type is not one this operation takes",
        422 => "The body has invalid fields, each named by JSON Pointer",
        502 => "The provider refused or did not answer",
        503 => {
            "Not configured on this gateway, or the queue backend is unavailable (nothing was done); or, with \
             queue.min_replicas, replicas did not confirm the write in time (`not-replicated`, with Retry-After: \
             retry with the same Idempotency-Key)"
        }
        _ => "Error",
    }
}

/// The served document and the routing facts read from it, built once at start.
pub struct ApiDocument {
    json: Bytes,
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

/// The document with no extra operations; what a server built without one serves.
pub static CORE: LazyLock<ApiDocument> = LazyLock::new(|| ApiDocument::new(&[], &[]));

impl ApiDocument {
    /// The document of a gateway with this registry's counterparts: its destinations' ingest
    /// routes and its providers' callback routes, which are served whether or not they are
    /// configured (an unconfigured one answers so), and the providers a payment may name.
    pub fn for_registry(registry: &hcc_adapters::registry::Registry) -> Self {
        let ingest: Vec<super::ingest::Route> = registry.ingest_routes().collect();
        let mut extra = super::ingest::operations(&ingest);
        extra.extend(super::payments::callback_operations(registry));
        extra.extend(super::inbound::push_operations(registry));
        ApiDocument::new(&extra, &registry.creating_ids())
    }

    pub fn new(extra: &[ExtraOperation], creating: &[&str]) -> Self {
        let doc = openapi_document(extra, creating);
        let routes = doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, ops)| {
                        let methods = ops
                            .as_object()
                            .map(|o| {
                                o.keys()
                                    .filter_map(|k| Method::from_bytes(k.to_ascii_uppercase().as_bytes()).ok())
                                    .filter(|m| METHOD_ORDER.contains(m))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (ResourceDef::new(path.as_str()), methods)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiDocument {
            json: Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
            routes,
        }
    }

    /// The document as served.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// The methods a path answers, in a fixed order, or none for an unknown path. When several
    /// templates match, the most concrete wins, as OpenAPI matches them:
    /// `/v1/queues/q/dead/replay` is `/v1/queues/{name}/dead/replay` (POST), not
    /// `/v1/queues/{name}/dead/{id}` (DELETE).
    pub fn allowed_methods(&self, path: &str) -> Vec<Method> {
        let params = |def: &ResourceDef| def.pattern().map_or(0, |p| p.matches('{').count());
        let Some(fewest) = self
            .routes
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .map(|(def, _)| params(def))
            .min()
        else {
            return Vec::new();
        };
        let mut found: Vec<Method> = Vec::new();
        for (_, methods) in self.routes.iter().filter(|(def, _)| params(def) == fewest && def.is_match(path)) {
            for m in methods {
                if !found.contains(m) {
                    found.push(m.clone());
                }
            }
        }
        found.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
        found
    }
}

const METHOD_ORDER: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_response_is_a_problem_and_every_keyed_operation_names_its_roles() {
        // The core's operations and the providers' callbacks (the ingest routes word their
        // roles their own way, and are checked by the registry's tests).
        let callbacks = super::super::payments::callback_operations(&hcc_adapters::standard());
        let doc = openapi_document(&callbacks, &[]);
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() > 20);
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success");
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            r["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
                let keyed = op["security"].as_array().is_some_and(|s| !s.is_empty());
                if keyed {
                    assert!(responses.contains_key("401") && responses.contains_key("403"), "{method} {path}");
                    let text = op["description"].as_str().unwrap_or_default();
                    assert!(text.contains("Roles:"), "{method} {path} does not name its roles: {text}");
                }
            }
        }
        assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }

    /// The document of a gateway with the standard destinations.
    fn standard() -> ApiDocument {
        ApiDocument::for_registry(&hcc_adapters::standard())
    }

    #[test]
    fn the_destinations_ingest_routes_join_with_their_patterns() {
        let doc: Value = serde_json::from_slice(&standard().json()).expect("the document is JSON");
        let progress = &doc["paths"]["/v1/dossiers/{MaHoSo}/progress"]["post"];
        let pattern = progress["parameters"][0]["schema"]["pattern"].as_str().unwrap_or_default();
        assert!(pattern.contains("[A-Za-z0-9._-]{1,100}$"), "{pattern}");
        assert!(progress["responses"]["422"]["content"]["application/problem+json"].is_object());
        let text = doc.to_string();
        // Dates carry their pattern: yyyyMMddHHmmss, a real calendar time.
        assert!(
            text.contains("([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$"),
            "dates carry their pattern"
        );
        assert_eq!(standard().allowed_methods("/v1/dossiers"), vec![Method::POST]);
        assert!(CORE.allowed_methods("/v1/dossiers").is_empty(), "the core names no destination");
    }

    #[test]
    fn extra_operations_join_the_document_and_its_allowed_methods() {
        let extra = ExtraOperation {
            method: Method::PUT,
            path: "/v1/elsewhere/{id}".into(),
            operation: json!({"responses": {"204": {"description": "done"}, "404": {}}}),
            schemas: vec![("Elsewhere".into(), json!({"type": "object"}))],
        };
        let doc = openapi_document(std::slice::from_ref(&extra), &[]);
        let op = &doc["paths"]["/v1/elsewhere/{id}"]["put"];
        assert_eq!(op["responses"]["404"]["description"], "No such resource");
        assert!(op["responses"]["404"]["content"]["application/problem+json"].is_object());
        assert_eq!(doc["components"]["schemas"]["Elsewhere"]["type"], "object");
        let api = ApiDocument::new(&[extra], &[]);
        assert_eq!(api.allowed_methods("/v1/elsewhere/7"), vec![Method::PUT]);
        assert!(CORE.allowed_methods("/v1/elsewhere/7").is_empty());
    }

    #[test]
    fn every_operation_that_reads_a_body_documents_408_and_a_503_with_retry_after() {
        let doc: Value = serde_json::from_slice(&standard().json()).expect("the document is JSON");
        let mut with_body = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op.get("requestBody").is_none() {
                    continue;
                }
                with_body += 1;
                let r = &op["responses"];
                // A source's push is answered in the source's own terms, every other body in problems.
                let shape = if path.starts_with("/v1/inbound/") && path.ends_with("/dossiers") {
                    "application/json"
                } else {
                    "application/problem+json"
                };
                assert!(r["408"]["content"][shape].is_object(), "{method} {path}");
                assert!(r["503"]["headers"]["Retry-After"].is_object(), "{method} {path}");
                assert!(r["503"]["description"].as_str().unwrap().contains("busy"), "{method} {path}");
            }
        }
        // Dossiers, progress, payments, callbacks, signatures, replay at least.
        assert!(with_body >= 7, "{with_body}");
        let cancel = &doc["paths"]["/v1/queues/{name}/dead/replay"]["delete"];
        assert!(cancel["description"].as_str().unwrap().contains("Roles: admin"), "{cancel}");
        assert!(cancel["responses"]["404"].is_object() && cancel["responses"]["200"].is_object());
    }

    #[test]
    fn the_allowed_methods_come_from_the_document() {
        assert_eq!(CORE.allowed_methods("/healthz"), vec![Method::GET]);
        // `/dead/replay` is more concrete than `/dead/{id}`.
        assert_eq!(
            CORE.allowed_methods("/v1/queues/dvcqg/dead/replay"),
            vec![Method::GET, Method::POST, Method::DELETE]
        );
        assert_eq!(CORE.allowed_methods("/v1/dossiers/H46-1"), vec![Method::GET]);
        assert_eq!(CORE.allowed_methods("/v1/queues/dvcqg/dead/0190f3a2"), vec![Method::DELETE]);
        assert!(CORE.allowed_methods("/nothing/here").is_empty());
        assert!(CORE.allowed_methods("/healthz/").is_empty());
    }
}
