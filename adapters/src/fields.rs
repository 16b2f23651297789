//! Reading untrusted JSON objects field by field, collecting every problem with its JSON
//! Pointer path (`/DanhSachLePhi/0/Gia`) instead of stopping at the first. Unknown fields are
//! left alone: the caller keeps the original object and passes them through.

use serde::Serialize;
use serde_json::{Map, Value};

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
    pub errors: &'a mut Vec<FieldError>,
}

/// Escapes a key for a JSON Pointer (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>, path: String, errors: &'a mut Vec<FieldError>) -> Self {
        Fields { obj, path, errors }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.obj.get(name)
    }

    pub fn path_of(&self, name: &str) -> String {
        format!("{}/{}", self.path, pointer_escape(name))
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let field = self.path_of(name);
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// A field that must be present (and not null), parsed by `parse`.
    pub fn required<T>(&mut self, name: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        match self.obj.get(name) {
            None | Some(Value::Null) => {
                self.error(name, "is required");
                None
            }
            Some(v) => self.run(name, v, parse),
        }
    }

    /// A field that may be absent or null; parsed when present.
    pub fn optional<T>(&mut self, name: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        match self.obj.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => self.run(name, v, parse),
        }
    }

    fn run<T>(&mut self, name: &str, v: &Value, parse: impl FnOnce(&Value) -> Result<T, String>) -> Option<T> {
        match parse(v) {
            Ok(t) => Some(t),
            Err(m) => {
                self.error(name, m);
                None
            }
        }
    }

    /// An optional list of objects, each read by `item`.
    pub fn list<T>(&mut self, name: &str, mut item: impl FnMut(&mut Fields<'_>) -> Option<T>) -> Vec<T> {
        let Some(v) = self.obj.get(name) else {
            return Vec::new();
        };
        let arr = match v {
            Value::Null => return Vec::new(),
            Value::Array(a) => a,
            _ => {
                self.error(name, "must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(arr.len());
        for (i, el) in arr.iter().enumerate() {
            let path = format!("{}/{i}", self.path_of(name));
            match el {
                Value::Object(o) => {
                    let mut f = Fields::new(o, path, self.errors);
                    if let Some(t) = item(&mut f) {
                        out.push(t);
                    }
                }
                _ => self.errors.push(FieldError {
                    field: path,
                    message: "must be an object".into(),
                }),
            }
        }
        out
    }

    /// Plain text fields: each must be a string when present.
    pub fn texts(&mut self, names: &[&str]) {
        for n in names {
            self.optional(n, text);
        }
    }
}

pub fn text(v: &Value) -> Result<String, String> {
    v.as_str().map(str::to_string).ok_or_else(|| "must be a string".to_string())
}

pub fn non_empty_text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let s = v.as_str().ok_or("must be a string")?;
        let t = s.trim();
        if t.is_empty() {
            return Err("must not be empty".into());
        }
        if t.chars().count() > max {
            return Err(format!("must be at most {max} characters"));
        }
        Ok(t.to_string())
    }
}

/// A whole number in `range`; JSON numbers only (`2`, not `"2"` nor `2.5`).
pub fn int_in(lo: i64, hi: i64) -> impl Fn(&Value) -> Result<i64, String> {
    move |v| {
        let n = v.as_i64().ok_or_else(|| format!("must be a whole number from {lo} to {hi}"))?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be a whole number from {lo} to {hi}"))
        }
    }
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| "must be true or false".to_string())
}
