//! XML for signatures: a strict parser (no DOCTYPE, no entities, bounded size and depth),
//! exclusive and inclusive canonicalization, and enveloped XML-DSig signing (exclusive C14N,
//! RSA-SHA256) and verification (also inclusive C14N, RSA-SHA512 and SHA-512 digests, as banks'
//! signers produce them; docs/bank-xml.md).

pub mod c14n;
pub mod dom;
pub mod dsig;
