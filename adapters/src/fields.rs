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

/// The longest digit string [`whole_in`] reads; beyond it no code of ours fits anyway, and the
/// parse cannot overflow.
const MAX_DIGITS: usize = 18;

/// A whole number in `lo..=hi`, written as a JSON number (`4`) or as a string of ASCII digits
/// (`"4"`): centres' software sends both, since the portal's own clients send strings. No sign,
/// no spaces, no decimal point (`4.5`, `4.0`, `"4.0"`, `" 4"` and `true` are all refused);
/// leading zeros are read as decimal (`"04"` is 4).
pub fn whole_in(lo: i64, hi: i64) -> impl Fn(&Value) -> Result<i64, String> {
    move |v| {
        let refuse = || format!("must be a whole number from {lo} to {hi}, as a number or a string of digits");
        let n = match v {
            Value::Number(n) => n.as_i64().ok_or_else(refuse)?,
            Value::String(s) if !s.is_empty() && s.len() <= MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<i64>().map_err(|_| refuse())?
            }
            _ => return Err(refuse()),
        };
        if (lo..=hi).contains(&n) { Ok(n) } else { Err(refuse()) }
    }
}

/// A yes/no flag as a JSON boolean or as the words `"True"`/`"False"`, the form the portal's
/// clients send. The words are read without regard to ASCII case (`"true"`, `"FALSE"`): both
/// .NET's `bool.Parse` and Java's `Boolean.parseBoolean`, which centres' software is written
/// in, ignore case, so the same meaning must not be refused for its spelling. Nothing else
/// (`1`, `"yes"`, `" True"`) is a flag.
pub fn flag(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err("must be true or false, as a boolean or the string \"True\" or \"False\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_numbers_come_as_numbers_or_digit_strings() {
        let f = whole_in(1, 10);
        assert_eq!(f(&json!(4)), Ok(4));
        assert_eq!(f(&json!("4")), Ok(4));
        assert_eq!(f(&json!("10")), Ok(10));
        assert_eq!(f(&json!("04")), Ok(4));
        for bad in [
            json!(0),
            json!(11),
            json!("11"),
            json!("0"),
            json!(4.5),
            json!(4.0),
            json!("4.0"),
            json!("abc"),
            json!(""),
            json!(" 4"),
            json!("4 "),
            json!("+4"),
            json!("-4"),
            json!(-4),
            json!(true),
            json!(null),
            json!([4]),
            json!({"v": 4}),
            json!("99999999999999999999"),
            json!(u64::MAX),
        ] {
            assert!(f(&bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(whole_in(0, 1)(&json!("0")), Ok(0));
    }

    #[test]
    fn flags_come_as_booleans_or_words() {
        assert_eq!(flag(&json!(true)), Ok(true));
        assert_eq!(flag(&json!(false)), Ok(false));
        assert_eq!(flag(&json!("True")), Ok(true));
        assert_eq!(flag(&json!("False")), Ok(false));
        assert_eq!(flag(&json!("true")), Ok(true));
        assert_eq!(flag(&json!("FALSE")), Ok(false));
        for bad in [json!(1), json!(0), json!("1"), json!("yes"), json!(" True"), json!(""), json!(null)] {
            assert!(flag(&bad).is_err(), "{bad} must be refused");
        }
    }
}
