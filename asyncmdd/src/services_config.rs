//! `services.config`: the per-device JSON that enables units and gives them `args` and `kwargs`,
//! shaped as asyncmd's: `{"hello": {"enabled": true, "args": [2, 5], "kwargs": {"sleep": 3}}}`.
//!
//! Entries are keyed by the unit name without `.service` (the full name is accepted too). A unit
//! without an entry is enabled with no args. `args` are appended to the unit's `exec` argv;
//! `kwargs` reach the process as environment variables (see [`ServiceConfig::env`]). String
//! values may say `${VAR}`, taken from the `.env` file beside `services.config`.
//!
//! [`edit`] changes one entry in place, keeping every other byte of the file, and replaces the
//! file atomically, so a crash at any moment leaves either the old file or the new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use asyncmd_proto::unit::short_name;

/// A unit's args and kwargs as `services.config` writes them.
pub type Written = (Vec<Value>, Map<String, Value>);

/// The configuration of one unit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceConfig {
    /// Whether the unit is started at boot.
    pub enabled: bool,
    /// Whether nothing may start it (`asyncmctl mask`).
    pub masked: bool,
    /// Appended to the argv.
    pub args: Vec<Value>,
    /// Passed as environment variables.
    pub kwargs: Map<String, Value>,
    /// The args and kwargs as the file wrote them, when `${VAR}` was substituted in them.
    pub written: Option<Box<Written>>,
}

impl ServiceConfig {
    /// This configuration as the file wrote it (`${VAR}` not substituted): what status shows,
    /// so a secret kept in `.env` is not told to every reader.
    pub fn as_written(&self) -> ServiceConfig {
        match &self.written {
            Some(w) => ServiceConfig {
                enabled: self.enabled,
                masked: self.masked,
                args: w.0.clone(),
                kwargs: w.1.clone(),
                written: None,
            },
            None => self.clone(),
        }
    }

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

impl ServiceConfig {
    /// Checks that `kwargs` is an object whose keys can be environment variable names.
    pub fn check_kwargs(kwargs: &Value) -> Result<(), String> {
        let Value::Object(m) = kwargs else {
            return Err(format!("kwargs must be a JSON object, not {kwargs}"));
        };
        match m.keys().find(|k| !valid_env_name(k)) {
            Some(bad) => Err(format!(
                "kwargs key \"{bad}\" cannot be an environment variable name \
                 (letters, digits and _, not starting with a digit)"
            )),
            None => Ok(()),
        }
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
    /// Set when the file could not be used and no good copy of it was either: then no unit's
    /// entry is known, and every unit is held back with this reason.
    unknown: Option<String>,
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
    /// Reads `path`, with `${VAR}` from the `.env` file beside it; a missing file is an empty
    /// configuration.
    pub fn load(path: &Path) -> Result<ServicesConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let vars = dotenv_beside(path)?;
                ServicesConfig::parse_with(path, &text, &vars)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServicesConfig {
                path: path.to_path_buf(),
                entries: BTreeMap::new(),
                unknown: None,
            }),
            Err(e) => Err(ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read: {e}"),
            }),
        }
    }

    /// Parses the text of a `services.config` that uses no `${VAR}`.
    pub fn parse(path: &Path, text: &str) -> Result<ServicesConfig, ConfigError> {
        ServicesConfig::parse_with(path, text, &Vars::new())
    }

    /// Parses the text of a `services.config`, substituting `${VAR}` from `vars`.
    pub fn parse_with(path: &Path, text: &str, vars: &Vars) -> Result<ServicesConfig, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        // serde_json keeps the last of two equal keys; a file that says a thing twice says
        // nothing for sure.
        if let Some(dup) = duplicate_key(text) {
            return Err(fail(dup));
        }
        let Value::Object(map) = root else {
            return Err(fail("expected a JSON object keyed by unit name".into()));
        };
        let entries = map
            .into_iter()
            .map(|(name, v)| {
                let raw = v.clone();
                let parsed = substitute(v, vars)
                    .and_then(|v| {
                        let mut c = parse_entry(&v)?;
                        if v != raw {
                            let w = parse_entry(&raw)?;
                            c.written = Some(Box::new((w.args, w.kwargs)));
                        }
                        Ok(c)
                    })
                    .map_err(|m| format!("{}: \"{name}\": {m}", path.display()));
                (name, parsed)
            })
            .collect();
        Ok(ServicesConfig {
            path: path.to_path_buf(),
            entries,
            unknown: None,
        })
    }

    /// The configuration to boot by when `path` could not be used (`error`): its last good
    /// copy, if there is one that loads, else one that holds back every unit. Says which.
    pub fn fallback(path: &Path, error: &ConfigError) -> (ServicesConfig, String) {
        let good = last_good_path(path);
        if let Ok(text) = std::fs::read_to_string(&good) {
            let vars = dotenv_beside(path).unwrap_or_default();
            if let Ok(mut c) = ServicesConfig::parse_with(path, &text, &vars) {
                c.path = path.to_path_buf();
                let why = format!(
                    "{error}; booting by its last good copy {} instead",
                    good.display()
                );
                return (c, why);
            }
        }
        let held = format!(
            "held back: {} cannot be used ({}) and there is no good copy of it; fix it, then \
             asyncmctl reload",
            path.display(),
            error.message
        );
        let c = ServicesConfig {
            path: path.to_path_buf(),
            entries: BTreeMap::new(),
            unknown: Some(held),
        };
        let why = format!("{error}; no good copy of it either: every unit is held back");
        (c, why)
    }

    /// Keeps a copy of the file as it is now that it loaded, for [`ServicesConfig::fallback`].
    /// A units directory that cannot be written to keeps none, which is said.
    pub fn keep_good_copy(&self) -> std::io::Result<()> {
        match std::fs::read(&self.path) {
            Ok(bytes) => write_atomically(&last_good_path(&self.path), &bytes),
            // No file: nothing to keep (every unit has its defaults, which a copy cannot lose).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The configuration of unit `unit` (`hello.service`), or why its entry is invalid.
    pub fn get(&self, unit: &str) -> Result<ServiceConfig, String> {
        if let Some(why) = &self.unknown {
            return Err(why.clone());
        }
        match lookup(unit, |k| self.entries.get(k)) {
            Some(entry) => entry.clone(),
            None => Ok(ServiceConfig::default_enabled()),
        }
    }

    /// Entry names that match none of `units` (likely typos), for a warning.
    pub fn unknown_entries<'a>(
        &'a self,
        units: &'a [String],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .keys()
            .map(String::as_str)
            .filter(move |k| !units.iter().any(|u| u == k || short_name(u) == *k))
    }
}

/// The entries of the `services.config` at `path` as the file writes them (no `${VAR}`
/// substituted), or why it cannot be read; none when there is no file.
pub fn written(path: &Path) -> Result<Map<String, Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{}: not a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The entry of `unit` (`hello.service`) among `entries`, under its short name or its full one.
pub fn entry_of<'a>(entries: &'a Map<String, Value>, unit: &str) -> Option<&'a Value> {
    lookup(unit, |k| entries.get(k))
}

/// The entry of `unit` that `get` finds: under its short name, else its full one. The one
/// place the naming rule of entries is applied, whatever holds them.
fn lookup<T>(unit: &str, get: impl Fn(&str) -> Option<T>) -> Option<T> {
    get(short_name(unit)).or_else(|| get(unit))
}

/// Where the last good copy of `config` is kept: `.NAME.last-good` beside it.
pub fn last_good_path(config: &Path) -> PathBuf {
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "services.config".into());
    config.with_file_name(format!(".{name}.last-good"))
}

/// The first key that an object of `text` (valid JSON) has twice, as a message naming it and
/// the lines of both.
fn duplicate_key(text: &str) -> Option<String> {
    use jsonc_parser::ast::Value as V;
    let ast = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default()).ok()?;
    let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    fn walk(v: &V<'_>, line: &dyn Fn(usize) -> usize) -> Option<String> {
        match v {
            V::Object(o) => {
                let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
                for p in &o.properties {
                    let k = p.name.as_str();
                    if let Some(first) = seen.insert(k, p.range.start) {
                        return Some(format!(
                            "key \"{k}\" appears twice (line {} and line {})",
                            line(first),
                            line(p.range.start)
                        ));
                    }
                }
                o.properties.iter().find_map(|p| walk(&p.value, line))
            }
            V::Array(a) => a.elements.iter().find_map(|e| walk(e, line)),
            _ => None,
        }
    }
    walk(ast.value.as_ref()?, &line)
}

/// Variables from a `.env` file.
pub type Vars = BTreeMap<String, String>;

/// Name of the variables file read beside `services.config`.
pub const DOTENV: &str = ".env";

/// The variables of the `.env` file in the directory of `config`; none when there is no file.
pub fn dotenv_beside(config: &Path) -> Result<Vars, ConfigError> {
    let path = config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(DOTENV);
    let fail = |message: String| ConfigError {
        path: path.display().to_string(),
        message,
    };
    let iter = match dotenvy::from_path_iter(&path) {
        Ok(it) => it,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vars::new())
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    iter.map(|item| item.map_err(|e| fail(e.to_string())))
        .collect()
}

/// `v` with every `${VAR}` in its strings replaced; an undefined variable is an error naming it.
fn substitute(v: Value, vars: &Vars) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) if s.contains("${") => Value::String(expand(&s, vars)?),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| substitute(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| Ok((k, substitute(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

fn expand(s: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let Some(len) = rest[at + 2..].find('}') else {
            return Err(format!("unterminated \"${{\" in \"{s}\""));
        };
        let name = &rest[at + 2..at + 2 + len];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(format!(
                    "undefined variable ${{{name}}} (define it in the {DOTENV} file beside services.config)"
                ))
            }
        }
        rest = &rest[at + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Sets the keys `changes` in the entry of `unit` (`hello.service` or `hello`) of the
/// `services.config` at `path`, creating the entry (or the file) if needed; a key set to `null`
/// is taken out. Everything else in the file keeps its bytes; the new file replaces the old one
/// atomically.
pub fn edit(path: &Path, unit: &str, changes: &[(&str, Value)]) -> Result<(), ConfigError> {
    use jsonc_parser::cst::CstRootNode;
    let fail = |message: String| ConfigError {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{\n}\n".to_string(),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    // A file that is not valid JSON now is not ours to rewrite.
    serde_json::from_str::<Value>(&text)
        .map_err(|e| fail(format!("{e}; fix it by hand first, nothing was changed")))?;
    // Nor is one that says a thing twice: an edit of the first would be read as the last.
    if let Some(dup) = duplicate_key(&text) {
        return Err(fail(format!(
            "{dup}; fix it by hand first, nothing was changed"
        )));
    }
    let root = CstRootNode::parse(&text, &Default::default())
        .map_err(|e| fail(format!("{e}; nothing was changed")))?;
    let Some(obj) = root.object_value() else {
        return Err(fail("expected a JSON object keyed by unit name".into()));
    };
    let stem = short_name(unit);
    // The CST places keys, commas and indentation; values go in as placeholders replaced by
    // one-line JSON, so `{"sleep": 3}` stays on its line as a person would write it.
    let token = format!("asyncmd-placeholder-{}-{}", std::process::id(), now_nanos());
    let mark = |i: usize| jsonc_parser::cst::CstInputValue::String(format!("{token}-{i}"));
    let mut values: Vec<String> = Vec::new();
    match lookup(unit, |k| obj.get(k)) {
        Some(prop) => {
            let Some(entry) = prop.object_value() else {
                return Err(fail(format!(
                    "the entry \"{stem}\" is not an object; fix it by hand first"
                )));
            };
            // Keys added or taken out of a one-line entry: it stays on one line, its keys in
            // their order, written anew from its own pieces (the CST would spread it over
            // lines). A value replaced keeps every other byte as it is.
            let reshaped = changes
                .iter()
                .any(|(k, v)| v.is_null() == entry.get(k).is_some());
            let one_line = reshaped && !entry.to_string().contains('\n');
            if one_line {
                let key = |k: &str| serde_json::to_string(k).unwrap_or_default();
                let mut parts = Vec::new();
                let mut seen = Vec::new();
                for p in entry.properties() {
                    let Some(k) = p.decoded_name() else { continue };
                    match changes.iter().find(|(c, _)| *c == k) {
                        Some((_, Value::Null)) => {}
                        Some((_, v)) => parts.push(format!("{}: {}", key(&k), inline_json(v))),
                        None => {
                            let v = p.value().map(|v| v.to_string()).unwrap_or_default();
                            parts.push(format!("{}: {v}", key(&k)));
                        }
                    }
                    seen.push(k);
                }
                for (k, v) in changes {
                    if !v.is_null() && !seen.iter().any(|s| s == k) {
                        parts.push(format!("{}: {}", key(k), inline_json(v)));
                    }
                }
                prop.set_value(mark(values.len()));
                values.push(format!("{{{}}}", parts.join(", ")));
            }
            for (key, value) in changes.iter().filter(|_| !one_line) {
                match (entry.get(key), value) {
                    (Some(prop), Value::Null) => prop.remove(),
                    (None, Value::Null) => {}
                    (Some(prop), _) => {
                        prop.set_value(mark(values.len()));
                        values.push(inline_json(value));
                    }
                    (None, _) => {
                        entry.append(key, mark(values.len()));
                        values.push(inline_json(value));
                    }
                }
            }
        }
        None => {
            let entry: Map<String, Value> = changes
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            if entry.is_empty() {
                return Ok(());
            }
            obj.append(stem, mark(0));
            values.push(inline_json(&Value::Object(entry)));
        }
    }
    let mut new_text = root.to_string();
    for (i, value) in values.iter().enumerate() {
        new_text = new_text.replacen(&format!("\"{token}-{i}\""), value, 1);
    }
    // `hello` and `hello.service` both naming one unit: the CST edits one, a reader may
    // take the other. Say so.
    let raw: Value = serde_json::from_str(&new_text).map_err(|e| fail(e.to_string()))?;
    let took = lookup(unit, |k| raw.get(k));
    if changes
        .iter()
        .any(|(k, v)| took.and_then(|e| e.get(k)) != Some(v).filter(|v| !v.is_null()))
    {
        return Err(fail(format!(
            "the entry \"{stem}\" is there under two names; fix it by hand first, nothing was changed"
        )));
    }
    let vars = dotenv_beside(path)?;
    let parsed = ServicesConfig::parse_with(path, &new_text, &vars).map_err(|e| {
        fail(format!(
            "the edit would break the file ({e}); nothing was changed"
        ))
    })?;
    if let Err(e) = parsed.get(unit) {
        return Err(fail(format!("{e}; nothing was changed")));
    }
    write_atomically(path, new_text.as_bytes()).map_err(|e| fail(format!("cannot write: {e}")))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// JSON on one line with a space after `,` and `:`: `{"sleep": 3, "pins": [1, 2]}`.
pub fn inline_json(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(inline_json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), inline_json(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// write a temporary file beside it, fsync it, rename it over, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    // Through a symlink, replace the file it points to, not the link.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    let result = (|| {
        // create_new: never follow or reuse something planted at the temporary name.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(&path) {
            f.set_permissions(meta.permissions())?;
            // Keep the owner; only root may give a file away, so a failure here is expected.
            let _ = nix::unistd::fchown(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                Some(meta.uid().into()),
                Some(meta.gid().into()),
            );
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The new content is in place either way; this makes the rename itself durable.
    let _ = std::fs::File::open(&dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Removes temporary files a crash left beside `path` (from [`write_atomically`]).
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
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
            ("masked", Value::Bool(b)) => cfg.masked = *b,
            ("masked", _) => return Err("\"masked\" must be true or false".into()),
            ("args", Value::Array(a)) => cfg.args = a.clone(),
            ("args", _) => return Err("\"args\" must be an array".into()),
            ("kwargs", Value::Object(m)) => {
                ServiceConfig::check_kwargs(value)?;
                cfg.kwargs = m.clone();
            }
            ("kwargs", _) => return Err("\"kwargs\" must be an object".into()),
            // Other keys belong to the user or to later tools; keep them, use none.
            _ => {}
        }
    }
    // Every status answer carries them: one unit's must not crowd out the others'.
    let bytes = serde_json::to_string(&cfg.args).map_or(0, |s| s.len())
        + serde_json::to_string(&cfg.kwargs).map_or(0, |s| s.len());
    if bytes > MAX_ARGS_BYTES {
        return Err(format!(
            "\"args\" and \"kwargs\" take {bytes} bytes, more than the limit of {MAX_ARGS_BYTES}"
        ));
    }
    Ok(cfg)
}

/// The most bytes (as JSON) a unit's args and kwargs may take together.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_and_kwargs_are_bounded_per_unit() {
        let big = "x".repeat(MAX_ARGS_BYTES);
        let c = cfg(&format!(
            r#"{{"a": {{"kwargs": {{"blob": "{big}"}}}}, "b": {{"args": [1]}}}}"#
        ));
        let e = c.get("a.service").err().unwrap_or_default();
        assert!(e.contains("more than the limit of 65536"), "{e}");
        assert!(e.contains("\"a\""), "the error names the unit: {e}");
        assert_eq!(c.get("b.service").unwrap().args, vec![json!(1)]);
    }

    fn cfg(text: &str) -> ServicesConfig {
        ServicesConfig::parse(Path::new("units/services.config"), text).unwrap()
    }

    /// Found by the services_config fuzzer: `h.service` is the short name of
    /// `h.service.service` by the letter, but it is another unit's full name.
    #[test]
    fn a_key_ending_in_the_suffix_is_a_full_name_only() {
        let text = r#"{"h.service": {"args": [1]}, "h.service.service": {"enabled": false}}"#;
        let c = cfg(text);
        assert_eq!(c.get("h.service").unwrap().args, vec![json!(1)]);
        let hh = c.get("h.service.service").unwrap();
        assert!(!hh.enabled && hh.args.is_empty(), "{hh:?}");
        let units = ["h.service".to_string(), "h.service.service".to_string()];
        assert_eq!(c.unknown_entries(&units).count(), 0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.config");
        std::fs::write(&path, text).unwrap();
        edit(&path, "h.service", &[("enabled", json!(false))]).unwrap();
        edit(&path, "h.service.service", &[("args", json!([2]))]).unwrap();
        let c = ServicesConfig::load(&path).unwrap();
        let h = c.get("h.service").unwrap();
        assert!(!h.enabled && h.args == vec![json!(1)], "{h:?}");
        let hh = c.get("h.service.service").unwrap();
        assert!(!hh.enabled && hh.args == vec![json!(2)], "{hh:?}");
        // A new entry of such a unit goes under its full name.
        edit(&path, "x.service.service", &[("enabled", json!(false))]).unwrap();
        let written = written(&path).unwrap();
        assert!(written.contains_key("x.service.service"), "{written:?}");
        assert!(!written.contains_key("x.service"), "{written:?}");
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
    fn variables_come_from_dotenv_and_undefined_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.config");
        std::fs::write(
            &path,
            r#"{"a": {"args": ["${HOST}:${PORT}"], "kwargs": {"x": ["${PORT}"]}},
                "b": {"args": ["${NOPE}"]}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# ports\nHOST=gw\nexport PORT=\"8080\"\n",
        )
        .unwrap();
        let c = ServicesConfig::load(&path).unwrap();
        let a = c.get("a.service").unwrap();
        assert_eq!(a.argv_tail(), vec!["gw:8080"]);
        assert_eq!(a.kwargs["x"], json!(["8080"]));
        let e = c.get("b.service").unwrap_err();
        assert!(e.contains("${NOPE}") && e.contains("\"b\""), "{e}");
    }

    #[test]
    fn edit_keeps_every_other_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.config");
        let before = "{\n  \"hello\": {\"enabled\": true,   \"args\": [2, 5], \"note\": \"mine\"},\n\n  \"world\": { \"enabled\": false }\n}\n";
        std::fs::write(&path, before).unwrap();
        edit(&path, "hello.service", &[("enabled", json!(false))]).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            before.replacen("\"enabled\": true", "\"enabled\": false", 1)
        );
        edit(&path, "new", &[("kwargs", json!({"sleep": 3}))]).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.starts_with(&before.replacen("true", "false", 1)[..before.len() - 3]));
        let c = ServicesConfig::parse(&path, &after).unwrap();
        assert_eq!(c.get("new.service").unwrap().kwargs["sleep"], json!(3));
        assert_eq!(
            c.get("hello.service").unwrap().args,
            vec![json!(2), json!(5)]
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_key_added_then_taken_out_leaves_a_one_line_entry_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.config");
        let before = "{\n  \"world\": {\"enabled\": true, \"args\": [], \"kwargs\": {}},\n  \"x\": {\n    \"enabled\": true\n  }\n}\n";
        std::fs::write(&path, before).unwrap();
        edit(&path, "world", &[("masked", json!(true))]).unwrap();
        let masked = std::fs::read_to_string(&path).unwrap();
        assert!(
            masked.contains(
                "\"world\": {\"enabled\": true, \"args\": [], \"kwargs\": {}, \"masked\": true},"
            ),
            "{masked}"
        );
        assert!(
            ServicesConfig::parse(&path, &masked)
                .unwrap()
                .get("world")
                .unwrap()
                .masked
        );
        edit(&path, "world", &[("masked", Value::Null)]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        // Taking out a key an entry does not have changes nothing.
        edit(&path, "x", &[("masked", Value::Null)]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn edit_refuses_duplicate_entries_and_goes_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.config");
        let path = dir.path().join("services.config");
        std::fs::write(&real, "{\"a\": {}, \"a\": {}}").unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let e = edit(&path, "a", &[("enabled", json!(false))]).unwrap_err();
        assert!(
            e.to_string()
                .contains("key \"a\" appears twice (line 1 and line 1)"),
            "{e}"
        );
        // A key repeated inside one entry is named as that key, not as the entry twice.
        std::fs::write(&real, "{\"a\": {\"enabled\": true,\n \"enabled\": false}}").unwrap();
        let e = edit(&path, "a", &[("args", json!([1]))]).unwrap_err();
        assert!(
            e.to_string()
                .contains("key \"enabled\" appears twice (line 1 and line 2)"),
            "{e}"
        );
        std::fs::write(&real, "{\"a\": {}}").unwrap();
        edit(&path, "a", &[("enabled", json!(false))]).unwrap();
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
        assert_eq!(written, json!({"a": {"enabled": false}}));
    }

    #[test]
    fn edit_refuses_a_broken_file_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.config");
        std::fs::write(&path, "{\"a\": {,}}").unwrap();
        let e = edit(&path, "a", &[("enabled", json!(true))]).unwrap_err();
        assert!(e.to_string().contains("nothing was changed"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\": {,}}");
    }

    #[test]
    fn unknown_entries_are_reported() {
        let c = cfg(r#"{"hello": {}, "helo": {}}"#);
        let units = vec!["hello.service".to_string()];
        assert_eq!(c.unknown_entries(&units).collect::<Vec<_>>(), vec!["helo"]);
    }
}
