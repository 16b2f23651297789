//! An OpenAPI operation described outside the core's handlers (a destination's ingest route, a
//! payment provider's callback), as the document takes it. Kept apart from the document, so
//! that what describes a route does not depend on the module that assembles them all.

use actix_web::http::Method;
use serde_json::Value;

/// An operation described outside this module (an adapter's route), added to the document
/// under `paths.<path>.<method>`, with the component schemas it refers to.
#[derive(Debug, Clone)]
pub struct ExtraOperation {
    pub method: Method,
    /// An OpenAPI path template, `{name}` for a parameter.
    pub path: String,
    /// An OpenAPI operation object. Error responses without content get the `Problem` body.
    pub operation: Value,
    /// `(name, schema)` for `#/components/schemas/<name>`.
    pub schemas: Vec<(String, Value)>,
}
