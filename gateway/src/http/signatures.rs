//! `POST /v1/signatures?format=cms|xmldsig` and `POST /v1/signatures/verify` (role centre):
//! the gateway signs with its configured identity and verifies against its configured trust
//! store. The bodies are bounded like every other; XML with a DOCTYPE is refused.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hcc_adapters::fields::{Fields, text};
use hcc_config::Role;
use hcc_signing::pki::{Identity, SignerInfo, TrustStore};
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{self, DsigError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{is_json, is_xml, json_value, object_of, read_limited};
use super::problem::{ApiError, FieldError};

/// The gateway's signing identity and trust store, when configured.
#[derive(Default)]
pub struct SigningState {
    pub identity: Option<Identity>,
    pub trust: Option<TrustStore>,
    /// `signing.tsa_url`: the authority for PAdES-B-T signature timestamps.
    pub tsa: Option<crate::tsa::TsaClient>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/signatures", web::post().to(sign))
        .route("/v1/signatures/verify", web::post().to(verify));
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

fn xml_problem(e: &XmlError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Signs the body with the gateway's identity: a detached CMS signature (`format=cms`, any
/// body) or an enveloped XML-DSig signature (`format=xmldsig`, an XML body).
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/signatures", tag = "signatures", security(("bearer" = [])),
    params(("format" = String, Query, pattern = "^(cms|xmldsig)$", description = "`cms` or `xmldsig`")),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (String = "application/xml"),
    ), description = "The content to sign"),
    responses(
        (status = 200, description = "The signature (CMS, DER) or the signed document", content(
            (Vec<u8> = "application/pkcs7-signature"),
            (String = "application/xml"),
        )),
        (status = 400), (status = 401), (status = 403),
        (status = 409, description = "The XML document already carries a signature"),
        (status = 413), (status = 415), (status = 503, description = "No signing identity is configured"),
    ))]
async fn sign(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<SigningState>,
    q: web::Query<FormatQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let format = q.format.as_deref().unwrap_or("");
    if format != "cms" && format != "xmldsig" {
        return Err(ApiError::BadRequest("format must be cms or xmldsig".into()));
    }
    if format == "xmldsig" && !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType("application/xml"));
    }
    let identity = state
        .identity
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured("no signing identity: set signing.pkcs12".into()))?;
    let body = read_limited(&req, &mut payload).await?;
    if format == "cms" {
        let der = hcc_signing::cms::sign_detached(identity, &body).map_err(|e| {
            tracing::error!(error = %e, "CMS signing failed");
            ApiError::Internal
        })?;
        return Ok(HttpResponse::Ok().content_type("application/pkcs7-signature").body(der));
    }
    match dsig::sign_enveloped(&body, identity) {
        Ok(signed) => Ok(HttpResponse::Ok().content_type("application/xml; charset=utf-8").body(signed)),
        Err(DsigError::Xml(e)) => Err(xml_problem(&e)),
        Err(DsigError::Key(e)) => Err(key_problem(&e)),
        Err(DsigError::Sign(m)) if m.contains("already signed") => {
            Err(ApiError::Conflict("the document already carries a signature".into()))
        }
        Err(e) => {
            tracing::error!(error = %e, "XML signing failed");
            Err(ApiError::Internal)
        }
    }
}

/// What the signing key's failure means to the caller: a key that cannot be reached now (its
/// token unplugged, its HSM away) is a 503 with `Retry-After` naming the key; any other is an
/// internal error. Every signing format maps its key errors through here.
fn key_problem(e: &hcc_signing::key::SignError) -> ApiError {
    match e {
        hcc_signing::key::SignError::Unavailable { .. } => {
            tracing::warn!(error = %e, "the signing key is unavailable");
            ApiError::SigningKeyUnavailable(e.to_string())
        }
        hcc_signing::key::SignError::Failed(_) => {
            tracing::error!(error = %e, "the signing key failed");
            ApiError::Internal
        }
    }
}

/// `{"content_base64", "signature_base64"}`, both required strings and nothing else.
struct CmsVerifyRequest {
    content_base64: String,
    signature_base64: String,
}

impl CmsVerifyRequest {
    /// Read field by field, so a wrong type is named by its pointer and not quoted.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v = json_value(body)?;
        let obj = object_of(&v, &["content_base64", "signature_base64"])?;
        let mut errors = Vec::new();
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let content_base64 = f.required("content_base64", text);
        let signature_base64 = f.required("signature_base64", text);
        match (content_base64, signature_base64) {
            (Some(content_base64), Some(signature_base64)) => Ok(CmsVerifyRequest {
                content_base64,
                signature_base64,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Verification)]
struct VerifyAnswer {
    /// The signature matches the content for the key it names.
    valid: bool,
    /// The signer chains to the configured trust store (validity period, key usage, CRLs).
    trusted: bool,
    #[schema(value_type = Option<SignerSchema>)]
    signer: Option<SignerInfo>,
    reason: Option<String>,
}

/// The schema of [`SignerInfo`] (defined in the signing crate, which knows no OpenAPI).
#[derive(utoipa::ToSchema)]
#[schema(as = Signer)]
#[allow(dead_code, reason = "a schema only: the values are SignerInfos")]
struct SignerSchema {
    subject: String,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
}

/// The JSON body [`CmsVerifyRequest::parse`] reads.
pub(crate) fn body_schemas() -> Vec<(String, Value)> {
    vec![(
        "CmsVerifyRequest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["content_base64", "signature_base64"],
            "properties": {
                "content_base64": {"type": "string", "contentEncoding": "base64"},
                "signature_base64": {"type": "string", "contentEncoding": "base64", "description": "a detached CMS signature, DER"}
            }
        }),
    )]
}

fn decode(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(value.trim()).map_err(|_| {
        ApiError::Validation(vec![FieldError {
            field: format!("/{field}"),
            message: "is not valid base64".into(),
        }])
    })
}

/// Verifies a detached CMS signature (JSON body) or an enveloped XML-DSig signature (XML body)
/// against the configured trust store.
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/signatures/verify", tag = "signatures", security(("bearer" = [])),
    request_body(content(
        (ref("#/components/schemas/CmsVerifyRequest") = "application/json"),
        (String = "application/xml"),
    )),
    responses(
        (status = 200, description = "The verdict", body = VerifyAnswer),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415), (status = 422),
        (status = 503, description = "No trust store is configured"),
    ))]
async fn verify(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<SigningState>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let json = is_json(&req);
    if !json && !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType(
            "application/json (CMS) or application/xml (XML-DSig)",
        ));
    }
    let trust = state
        .trust
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured("no trust store: set trust.ca_dir".into()))?;
    let body = read_limited(&req, &mut payload).await?;
    let answer = if json {
        let r = CmsVerifyRequest::parse(&body)?;
        let content = decode("content_base64", &r.content_base64)?;
        let signature = decode("signature_base64", &r.signature_base64)?;
        match hcc_signing::cms::verify_detached(&signature, &content, trust) {
            Ok(v) => VerifyAnswer {
                valid: v.valid,
                trusted: v.trusted,
                signer: v.signer,
                reason: v.reason,
            },
            Err(e) => VerifyAnswer {
                valid: false,
                trusted: false,
                signer: None,
                reason: Some(e.to_string()),
            },
        }
    } else {
        if let Err(e) = hcc_signing::xml::dom::parse(&body) {
            return Err(xml_problem(&e));
        }
        let r = dsig::report(&body, trust);
        VerifyAnswer {
            valid: r.valid,
            trusted: r.trusted,
            signer: r.signer,
            reason: r.reason,
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}
