//! `POST /v1/signatures?format=cms|xmldsig|pades` and `POST /v1/signatures/verify` (role
//! centre): the gateway signs with its configured identity and verifies against its configured
//! trust store. The bodies are bounded like every other; XML with a DOCTYPE is refused; an
//! encrypted or unreadable PDF is a 422. PDF work is CPU work and runs on the blocking pool.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hcc_adapters::evidence::{Label, Subject};
use hcc_adapters::fields::{Fields, text};
use hcc_config::Role;
use hcc_signing::cms::CmsError;
use hcc_signing::pades::{self, PadesError, PdfSignature};
use hcc_signing::pki::{Identity, SignerInfo, TrustStore};
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{self, DsigError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{is_json, is_xml, json_value, media_type, object_of, read_limited};
use super::problem::{ApiError, FieldError};
use crate::evidence::Evidence;

/// The gateway's signing identity and trust store, when configured.
#[derive(Default)]
pub struct SigningState {
    pub identity: Option<Identity>,
    pub trust: Option<TrustStore>,
    /// `signing.tsa_url`: the authority for PAdES-B-T signature timestamps.
    pub tsa: Option<crate::tsa::TsaClient>,
    /// The authority as a dependency: its outage is logged once, the signatures it refused
    /// counted (`crate::outage`). Without it each failure is logged.
    pub tsa_outage: Option<std::sync::Arc<crate::outage::Dependency>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/signatures", web::post().to(sign))
        .route("/v1/signatures/verify", web::post().to(verify));
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
    /// `format=pades` only: draw a visible stamp on page 1.
    visible: Option<bool>,
}

fn is_pdf(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/pdf")
}

/// The one place a failure to make a CMS signature becomes an answer: the key's own failures
/// (a token lost at run time is a 503) go through [`key_problem`].
fn signing_failed(e: &CmsError) -> ApiError {
    if let CmsError::Key(k) = e {
        return key_problem(k);
    }
    tracing::error!(error = %e, "signing failed");
    ApiError::Internal
}

/// A PDF that cannot be signed or verified as sent is a 422 naming why; a failure to sign is
/// [`signing_failed`]'s.
fn pades_problem(e: PadesError) -> ApiError {
    match e {
        PadesError::Encrypted | PadesError::Malformed(_) => ApiError::Validation(vec![FieldError {
            field: String::new(),
            message: e.to_string(),
        }]),
        PadesError::Sign(e) => signing_failed(&e),
        PadesError::SignatureTooLarge { .. } | PadesError::Stamp(_) => {
            tracing::error!(error = %e, "PAdES signing failed");
            ApiError::Internal
        }
    }
}

fn tsa_problem(e: &crate::tsa::TsaError, outage: Option<&crate::outage::Dependency>) -> ApiError {
    match outage {
        Some(o) => o.refused(e),
        None => tracing::warn!(error = %e, "the timestamp authority failed"),
    }
    ApiError::Upstream("the timestamp authority did not give a timestamp; nothing was signed".into())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `format=pades`: the update and the CAdES signature on the blocking pool, the timestamp
/// (B-T, when `signing.tsa_url` is set) asked without holding a thread, then the embedding.
async fn sign_pdf(state: web::Data<SigningState>, body: web::Bytes, visible: bool) -> Result<HttpResponse, ApiError> {
    let with_timestamp = state.tsa.is_some();
    let time = unix_now();
    let worker = state.clone();
    let (prepared, signature) = web::block(move || {
        let Some(id) = worker.identity.as_ref() else {
            return Ok(None);
        };
        let options = pades::SignOptions {
            visible,
            time,
            reserve: pades::contents_reserve(id, with_timestamp),
        };
        let prepared = pades::prepare(&body, &id.cert, &options)?;
        let signature = hcc_signing::cades::sign(id, &prepared.signed_content())?;
        Ok::<_, PadesError>(Some((prepared, signature)))
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(pades_problem)?
    .ok_or_else(|| ApiError::NotConfigured("no signing identity: set signing.pkcs12".into()))?;
    let signature = match &state.tsa {
        Some(tsa) => {
            let outage = state.tsa_outage.as_deref();
            let token = tsa
                .timestamp(signature.signature_value())
                .await
                .map_err(|e| tsa_problem(&e, outage))?;
            if let Some(o) = outage {
                o.ok();
            }
            signature.with_timestamp(&token).map_err(|e| signing_failed(&e))?
        }
        None => signature,
    };
    let pdf = prepared.embed(signature.to_der()).map_err(pades_problem)?;
    Ok(HttpResponse::Ok().content_type("application/pdf").body(pdf))
}

fn xml_problem(e: &XmlError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Signs the body with the gateway's identity: a detached CMS signature (`format=cms`, any
/// body), an enveloped XML-DSig signature (`format=xmldsig`, an XML body), or a PAdES
/// signature added to a PDF as an incremental update (`format=pades`, a PDF body; with
/// `visible=true` a stamp on page 1 names the signer, the organisation and the time; with
/// `signing.tsa_url` the signature is timestamped, PAdES-B-T).
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/signatures", tag = "signatures", security(("bearer" = [])),
    params(
        ("format" = String, Query, pattern = "^(cms|xmldsig|pades)$", description = "`cms`, `xmldsig` or `pades`"),
        ("visible" = Option<bool>, Query, description = "`format=pades` only: add a visible stamp on page 1"),
    ),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (String = "application/xml"),
        (Vec<u8> = "application/pdf"),
    ), description = "The content to sign"),
    responses(
        (status = 200, description = "The signature (CMS, DER) or the signed document (XML or PDF)", content(
            (Vec<u8> = "application/pkcs7-signature"),
            (String = "application/xml"),
            (Vec<u8> = "application/pdf"),
        )),
        (status = 400), (status = 401), (status = 403),
        (status = 409, description = "The XML document already carries a signature"),
        (status = 413), (status = 415),
        (status = 422, description = "The PDF is encrypted, cannot be read, or declares more objects than a PDF may hold (`/Size`)"),
        (status = 502, description = "The timestamp authority did not answer (PAdES-B-T)"),
        (status = 503, description = "No signing identity is configured, or its token or the timestamp authority is unavailable now (with `Retry-After`)"),
    ))]
async fn sign(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<SigningState>,
    q: web::Query<FormatQuery>,
    evidence: web::Data<Option<Arc<Evidence>>>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let format = q.format.as_deref().unwrap_or("");
    if format != "cms" && format != "xmldsig" && format != "pades" {
        return Err(ApiError::BadRequest("format must be cms, xmldsig or pades".into()));
    }
    if q.visible.is_some() && format != "pades" {
        return Err(ApiError::InvalidParameters(vec![FieldError {
            field: "visible (query)".into(),
            message: "applies to format=pades only".into(),
        }]));
    }
    if format == "xmldsig" && !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType("application/xml"));
    }
    if format == "pades" && !is_pdf(&req) {
        return Err(ApiError::UnsupportedMediaType("application/pdf"));
    }
    let identity = state
        .identity
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured("no signing identity: set signing.pkcs12".into()))?;
    let body = read_limited(&req, &mut payload).await?;
    let made = make(&state, identity, format, body.clone(), q.visible.unwrap_or(false)).await?;
    let Some(evidence) = evidence.get_ref() else { return Ok(made) };
    // Each signature the gateway makes is evidence: the digest of what was signed and of
    // what the signing gave back (the CMS signature, the signed XML or PDF).
    let (made, output) = super::evidence::with_body(made).await;
    let label = Label::new("centre", format!("sign {format}"));
    evidence.issued(&Subject::default(), &label, &body, &output, "signed");
    Ok(made)
}

/// The signature in `format` over `body`.
async fn make(
    state: &web::Data<SigningState>,
    identity: &Identity,
    format: &str,
    body: web::Bytes,
    visible: bool,
) -> Result<HttpResponse, ApiError> {
    if format == "pades" {
        return sign_pdf(state.clone(), body, visible).await;
    }
    if format == "cms" {
        let der = hcc_signing::cades::sign_detached(identity, &body).map_err(|e| signing_failed(&e))?;
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
            ApiError::DependencyUnavailable(e.to_string())
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

/// The answer of `verify`: a verdict (CMS, XML-DSig) or the list of a PDF's signatures.
#[derive(utoipa::ToSchema)]
#[schema(as = VerifyResult)]
#[allow(dead_code, reason = "a schema only: the values are the two answers")]
#[serde(untagged)]
enum VerifyResultSchema {
    One(VerifyAnswer),
    Pdf(PdfVerifyAnswer),
}

/// The answer for a PDF: every signature, in the order they were made.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PdfVerification)]
struct PdfVerifyAnswer {
    #[schema(value_type = Vec<PdfSignatureSchema>, max_items = 64)]
    signatures: Vec<PdfSignature>,
}

/// The schema of [`PdfSignature`].
#[derive(utoipa::ToSchema)]
#[schema(as = PdfSignature)]
#[allow(dead_code, reason = "a schema only: the values are PdfSignatures")]
struct PdfSignatureSchema {
    /// The CMS verifies over the signature's byte range, and the range leaves out exactly its
    /// `/Contents`.
    valid: bool,
    trusted: bool,
    signer: Option<SignerSchema>,
    reason: Option<String>,
    /// RFC 3339.
    signed_at: Option<String>,
    timestamp: Option<TimestampSchema>,
    /// False when bytes were added to the file after this signature.
    covers_whole_document: bool,
    /// True when what was added after this signature changed the signed document beyond
    /// further signatures and document-security data (DSS, document timestamps, metadata);
    /// `reason` then names what changed. `valid` still says only that the signature verifies
    /// over its byte range.
    modified_after_signing: bool,
}

/// A signature timestamp (RFC 3161) as checked.
#[derive(utoipa::ToSchema)]
#[schema(as = SignatureTimestamp)]
#[allow(dead_code, reason = "a schema only: the values are TimestampChecks")]
struct TimestampSchema {
    /// `genTime`, RFC 3339.
    time: String,
    valid: bool,
    trusted: bool,
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

/// Verifies a detached CMS signature (JSON body), an enveloped XML-DSig signature (XML body),
/// or every signature of a PDF (PDF body) against the configured trust store.
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/signatures/verify", tag = "signatures", security(("bearer" = [])),
    request_body(content(
        (ref("#/components/schemas/CmsVerifyRequest") = "application/json"),
        (String = "application/xml"),
        (Vec<u8> = "application/pdf"),
    )),
    responses(
        (status = 200, description = "The verdict: one for CMS and XML-DSig, a list for a PDF", body = VerifyResultSchema),
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
    let pdf = is_pdf(&req);
    if !json && !pdf && !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType(
            "application/json (CMS), application/xml (XML-DSig) or application/pdf (PAdES)",
        ));
    }
    let trust = state
        .trust
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured("no trust store: set trust.ca_dir".into()))?;
    let body = read_limited(&req, &mut payload).await?;
    if pdf {
        let worker = state.clone();
        let signatures = web::block(move || match worker.trust.as_ref() {
            Some(trust) => pades::verify(&body, trust),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(pades_problem)?;
        return Ok(HttpResponse::Ok().json(PdfVerifyAnswer { signatures }));
    }
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
