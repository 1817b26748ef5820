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

/// A number from 0.001 to 1e9 (a reading's offset, a scale), `default` when not given.
pub fn real(kwargs: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && (0.001..=1e9).contains(x))
            .ok_or_else(|| format!("kwargs {key} must be a number from 0.001 to 1e9, not {v}")),
    }
}

/// A span of time, `default` when not given: a number of seconds (`0.5`) or a duration as unit
/// files write them (`"500ms"`, `"1m 30s"`), from a millisecond to 10 years.
pub fn duration(
    kwargs: &Map<String, Value>,
    key: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let bad = |v: &Value| {
        format!(
            "kwargs {key} must be a number of seconds or a duration such as \"500ms\" or \"1m\" \
             (from 1ms to 10 years), not {v}"
        )
    };
    let d = match kwargs.get(key) {
        None => return Ok(default),
        Some(v @ Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| bad(v))?,
        Some(v @ Value::String(s)) => humantime::parse_duration(s.trim()).map_err(|_| bad(v))?,
        Some(v) => return Err(bad(v)),
    };
    if d < Duration::from_millis(1) || d > crate::unit_file::MAX_DURATION {
        return Err(bad(&kwargs[key]));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn durations_are_seconds_or_words() {
        let k = |v: Value| match json!({ "d": v }) {
            Value::Object(m) => duration(&m, "d", Duration::from_secs(7)),
            _ => unreachable!(),
        };
        assert_eq!(k(json!(0.5)), Ok(Duration::from_millis(500)));
        assert_eq!(k(json!(2)), Ok(Duration::from_secs(2)));
        assert_eq!(k(json!("500ms")), Ok(Duration::from_millis(500)));
        assert_eq!(k(json!("1m 30s")), Ok(Duration::from_secs(90)));
        for bad in [
            json!(0),
            json!(-1),
            json!("soon"),
            json!(true),
            json!("20years"),
        ] {
            let e = k(bad.clone()).unwrap_err();
            assert!(
                e.starts_with("kwargs d must be a number of seconds"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            duration(&Map::new(), "d", Duration::from_secs(7)),
            Ok(Duration::from_secs(7))
        );
    }
}
