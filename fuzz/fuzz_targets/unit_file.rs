//! The unit-file parser on any text: a unit loads or gets an error, never a panic. An error's
//! place lies inside the file, and what loads keeps the bounds the parser promises.

#![no_main]

use std::path::Path;

use asyncmdd::unit_file::{self, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads unit files as UTF-8 and reports other bytes as such before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse("fuzz.service", Path::new("fuzz.service"), text) {
        Ok(unit) => {
            for d in [
                Some(unit.stop_timeout),
                Some(unit.start_timeout),
                unit.watchdog,
            ]
            .into_iter()
            .flatten()
            {
                assert!(d <= unit_file::MAX_DURATION, "{d:?} is past the bound");
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "an error says what is wrong");
            if let Some((line, col)) = e.at {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}");
                assert!(col >= 1, "column {col}");
            }
        }
    }
});
