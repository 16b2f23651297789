//! API-key authentication. Keys are configured as SHA-256 hashes; a presented key is hashed and
//! compared against every configured hash in constant time, without stopping at a match, so
//! neither timing nor order tells anything about the keys.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use hcc_config::{ApiKeyEntry, Role};

use super::problem::ApiError;

#[derive(Clone)]
pub struct Keyring {
    entries: Vec<(String, Role, [u8; 32])>,
}

impl Keyring {
    pub fn from_config(keys: &[ApiKeyEntry]) -> Self {
        let entries = keys
            .iter()
            .filter_map(|k| {
                let bytes = hex::decode(&k.sha256).ok()?;
                let arr: [u8; 32] = bytes.try_into().ok()?;
                Some((k.name.clone(), k.role, arr))
            })
            .collect();
        Keyring { entries }
    }

    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let digest = hcc_signing::sha256(presented.as_bytes());
        let mut found = None;
        for (name, role, hash) in &self.entries {
            if hcc_signing::ct_eq(&digest, hash) && found.is_none() {
                found = Some(Caller {
                    name: name.clone(),
                    role: *role,
                });
            }
        }
        found
    }
}

/// Who is calling, once the key checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let keyring = req.app_data::<web::Data<Keyring>>();
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        ready(match (keyring, presented) {
            (Some(k), Some(p)) if !p.is_empty() => k.authenticate(p).ok_or(ApiError::Unauthorized),
            _ => Err(ApiError::Unauthorized),
        })
    }
}
