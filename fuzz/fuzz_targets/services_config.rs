//! `services.config` on any text: parsing never panics, and an edit (what `enable`,
//! `disable` and `config set` do) either changes exactly the keys it was asked to and leaves a
//! file that parses, or fails and leaves the file's bytes as they were.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use asyncmd_proto::unit::short_name;
use asyncmdd::services_config::{edit, ServicesConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// A directory of this process's own, in memory when the machine has /dev/shm: an edit
/// fsyncs, which on a disk would make each input cost milliseconds.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("asyncmd-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("a directory for the fuzzer's file");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = dir().join("services.config");
    let before = ServicesConfig::parse(&path, text);
    let keys: Vec<String> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if let Ok(config) = &before {
        for k in &keys {
            let _ = config.get(k);
        }
    }

    // op: bit 0 edits an entry that is there (the (op >> 3)th), else a new one; bit 1 is the
    // value of `enabled`; bit 2 also sets `args`.
    let unit = match keys.len() {
        n if op & 1 == 1 && n > 0 => keys[usize::from(op >> 3) % n].clone(),
        _ => "fuzz_new".to_string(),
    };
    let enabled = op & 2 != 0;
    let mut changes = vec![("enabled", Value::Bool(enabled))];
    if op & 4 != 0 {
        changes.push(("args", json!(["a", 1, {"k": [true, null]}])));
    }
    std::fs::write(&path, bytes).expect("the fuzzer's file is written");
    match edit(&path, &unit, &changes) {
        Ok(()) => {
            let after_text = std::fs::read_to_string(&path).expect("the edited file reads");
            let after = ServicesConfig::parse(&path, &after_text)
                .unwrap_or_else(|e| panic!("an edit left a file that does not parse: {e}"));
            let got = after
                .get(&unit)
                .unwrap_or_else(|e| panic!("an edit left the entry invalid: {e}"));
            assert_eq!(got.enabled, enabled, "the edit did not take");
            if op & 4 != 0 {
                assert_eq!(
                    got.args,
                    vec![json!("a"), json!(1), json!({"k": [true, null]})]
                );
            }
            // Every other entry reads as it did.
            if let Ok(before) = &before {
                for k in keys.iter().filter(|k| short_name(k) != short_name(&unit)) {
                    assert_eq!(before.get(k), after.get(k), "entry {k:?} changed");
                }
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            let now = std::fs::read(&path).expect("the file reads");
            assert_eq!(now, bytes, "a failed edit changed the file");
        }
    }
});
