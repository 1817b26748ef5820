//! Reading a builtin's settings from its `kwargs`, each with an error that names the key and
//! what it must be.

use serde_json::{Map, Value};

/// A true or false, `default` when not given.
pub fn flag(kwargs: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("kwargs {key} must be true or false, not {v}")),
    }
}

/// A non-empty string, if given.
pub fn text(kwargs: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match kwargs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(v) => Err(format!("kwargs {key} must be a non-empty string, not {v}")),
    }
}

/// A whole number from 1 to `max`, `default` when not given.
pub fn number(
    kwargs: &Map<String, Value>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, String> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("kwargs {key} must be a whole number from 1 to {max}, not {v}")),
    }
}
