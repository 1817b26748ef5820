//! Durations as people read them (`1m 30s`, `250ms`), in the same words as `humantime`, which
//! the host uses to parse unit files but which needs std.

use core::fmt;
use core::time::Duration;

/// Displays a duration as `1h 5m 3s`, `250ms`, `2days 1h` or `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if secs == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        // A year of 365.25 days and a month of 30.44, as humantime counts them.
        let (years, rest) = (secs / 31_557_600, secs % 31_557_600);
        let (months, rest) = (rest / 2_630_016, rest % 2_630_016);
        let (days, rest) = (rest / 86_400, rest % 86_400);
        let items: [(u64, &str, bool); 9] = [
            (years, "year", true),
            (months, "month", true),
            (days, "day", true),
            (rest / 3600, "h", false),
            (rest % 3600 / 60, "m", false),
            (rest % 60, "s", false),
            (u64::from(nanos / 1_000_000), "ms", false),
            (u64::from(nanos / 1000 % 1000), "us", false),
            (u64::from(nanos % 1000), "ns", false),
        ];
        let mut started = false;
        for (value, name, plural) in items {
            if value == 0 {
                continue;
            }
            if started {
                f.write_str(" ")?;
            }
            write!(f, "{value}{name}")?;
            if plural && value > 1 {
                f.write_str("s")?;
            }
            started = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn reads_like_humantime() {
        assert_eq!(Human(Duration::ZERO).to_string(), "0s");
        assert_eq!(Human(Duration::from_secs(90)).to_string(), "1m 30s");
        assert_eq!(Human(Duration::from_millis(250)).to_string(), "250ms");
    }

    proptest! {
        #[test]
        fn the_same_words_as_humantime(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(Human(d).to_string(), humantime::format_duration(d).to_string());
        }
    }
}
