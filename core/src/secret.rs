//! A configured value that must never be printed (passwords, PINs, signing keys, Redis URLs
//! with credentials): `Debug` shows `<redacted>`, and the value is read only through
//! [`Secret::expose`], which makes every use easy to find.

use std::fmt;

use serde::Deserialize;

/// A value that must never be printed: `Debug` shows `<redacted>`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Secret::default()), "Secret(<empty>)");
        assert_eq!(Secret::new("hunter2").expose(), "hunter2");
    }
}
