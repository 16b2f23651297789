//! XML for signatures: a strict parser (no DOCTYPE, no entities, bounded size and depth),
//! exclusive canonicalization, and enveloped XML-DSig signing and verification.

pub mod c14n;
pub mod dom;
pub mod dsig;
