//! `services.config`: the per-device JSON that enables units and gives them `args` and `kwargs`,
//! shaped as asyncmd's: `{"hello": {"enabled": true, "args": [2, 5], "kwargs": {"sleep": 3}}}`.
//!
//! Entries are keyed by the unit name without `.service` (the full name is accepted too). A unit
//! without an entry is enabled with no args. `args` are appended to the unit's `exec` argv;
//! `kwargs` reach the process as environment variables (see [`ServiceConfig::env`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::unit::SUFFIX;

/// The configuration of one unit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceConfig {
    /// Whether the unit is started at boot.
    pub enabled: bool,
    /// Appended to the argv.
    pub args: Vec<Value>,
    /// Passed as environment variables.
    pub kwargs: Map<String, Value>,
}

impl ServiceConfig {
    /// The configuration of a unit that has no entry.
    pub fn default_enabled() -> Self {
        ServiceConfig {
            enabled: true,
            ..Default::default()
        }
    }

    /// `args` as argv strings: strings as they are, anything else as compact JSON.
    pub fn argv_tail(&self) -> Vec<String> {
        self.args.iter().map(value_text).collect()
    }

    /// `kwargs` as environment variables: each key upper-cased (`sleep` -> `SLEEP`) with the
    /// value as [`ServiceConfig::argv_tail`] renders it, plus `ASYNCMD_KWARGS` holding the whole
    /// object as JSON.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .kwargs
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), value_text(v)))
            .collect();
        env.push((
            "ASYNCMD_KWARGS".into(),
            Value::Object(self.kwargs.clone()).to_string(),
        ));
        env
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The whole `services.config`, with per-unit errors kept apart so one bad entry spoils only
/// its own unit.
#[derive(Debug, Clone, Default)]
pub struct ServicesConfig {
    /// Where it was read from.
    pub path: PathBuf,
    entries: BTreeMap<String, Result<ServiceConfig, String>>,
}

/// The reason a whole `services.config` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong, with line and column when JSON parsing failed.
    pub message: String,
}

impl ServicesConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<ServicesConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ServicesConfig::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServicesConfig {
                path: path.to_path_buf(),
                entries: BTreeMap::new(),
            }),
            Err(e) => Err(ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read: {e}"),
            }),
        }
    }

    /// Parses the text of a `services.config`.
    pub fn parse(path: &Path, text: &str) -> Result<ServicesConfig, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        let Value::Object(map) = root else {
            return Err(fail("expected a JSON object keyed by unit name".into()));
        };
        let entries = map
            .into_iter()
            .map(|(name, v)| {
                let parsed =
                    parse_entry(&v).map_err(|m| format!("{}: \"{name}\": {m}", path.display()));
                (name, parsed)
            })
            .collect();
        Ok(ServicesConfig {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The configuration of unit `unit` (`hello.service`), or why its entry is invalid.
    pub fn get(&self, unit: &str) -> Result<ServiceConfig, String> {
        let stem = unit.strip_suffix(SUFFIX).unwrap_or(unit);
        match self.entries.get(stem).or_else(|| self.entries.get(unit)) {
            Some(entry) => entry.clone(),
            None => Ok(ServiceConfig::default_enabled()),
        }
    }

    /// Entry names that match none of `units` (likely typos), for a warning.
    pub fn unknown_entries<'a>(
        &'a self,
        units: &'a [String],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.keys().map(String::as_str).filter(move |k| {
            !units
                .iter()
                .any(|u| u == k || u.strip_suffix(SUFFIX) == Some(k))
        })
    }
}

fn parse_entry(v: &Value) -> Result<ServiceConfig, String> {
    let Value::Object(obj) = v else {
        return Err(
            "expected an object such as {\"enabled\": true, \"args\": [], \"kwargs\": {}}".into(),
        );
    };
    let mut cfg = ServiceConfig::default_enabled();
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("enabled", Value::Bool(b)) => cfg.enabled = *b,
            ("enabled", _) => return Err("\"enabled\" must be true or false".into()),
            ("args", Value::Array(a)) => cfg.args = a.clone(),
            ("args", _) => return Err("\"args\" must be an array".into()),
            ("kwargs", Value::Object(m)) => {
                if let Some(bad) = m.keys().find(|k| !valid_env_name(k)) {
                    return Err(format!(
                        "kwargs key \"{bad}\" cannot be an environment variable name \
                         (letters, digits and _, not starting with a digit)"
                    ));
                }
                cfg.kwargs = m.clone();
            }
            ("kwargs", _) => return Err("\"kwargs\" must be an object".into()),
            // Other keys belong to the user or to later tools; keep them, use none.
            _ => {}
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(text: &str) -> ServicesConfig {
        ServicesConfig::parse(Path::new("units/services.config"), text).unwrap()
    }

    #[test]
    fn reads_asyncmd_shape() {
        let c = cfg(
            r#"{"hello": {"enabled": true, "args": [2, "x"], "kwargs": {"sleep": 3, "name": "led"}},
                        "world": {"enabled": false}}"#,
        );
        let h = c.get("hello.service").unwrap();
        assert!(h.enabled);
        assert_eq!(h.argv_tail(), vec!["2", "x"]);
        let env = h.env();
        assert!(env.contains(&("SLEEP".into(), "3".into())));
        assert!(env.contains(&("NAME".into(), "led".into())));
        let all = env.iter().find(|(k, _)| k == "ASYNCMD_KWARGS").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&all.1).unwrap(),
            json!({"sleep": 3, "name": "led"})
        );
        assert!(!c.get("world.service").unwrap().enabled);
        assert!(
            c.get("other.service").unwrap().enabled,
            "absent means enabled"
        );
    }

    #[test]
    fn a_bad_entry_spoils_only_its_unit() {
        let c = cfg(r#"{"a": {"enabled": "yes"}, "b": {"kwargs": {"1x": 2}}, "c": {"args": [1]}}"#);
        let e = c.get("a.service").unwrap_err();
        assert!(e.contains("\"a\"") && e.contains("enabled"), "{e}");
        assert!(c.get("b.service").unwrap_err().contains("1x"));
        assert_eq!(c.get("c.service").unwrap().args, vec![json!(1)]);
    }

    #[test]
    fn broken_json_names_file_line_and_column() {
        let e = ServicesConfig::parse(Path::new("units/services.config"), "{\n \"a\": {,}\n}")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("units/services.config: "), "{s}");
        assert!(s.contains("line 2"), "{s}");
    }

    #[test]
    fn unknown_entries_are_reported() {
        let c = cfg(r#"{"hello": {}, "helo": {}}"#);
        let units = vec!["hello.service".to_string()];
        assert_eq!(c.unknown_entries(&units).collect::<Vec<_>>(), vec!["helo"]);
    }
}
