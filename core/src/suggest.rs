//! "Did you mean": the known name nearest to a name that matched nothing.

use alloc::vec::Vec;

use asyncmd_proto::unit::SUFFIX;

/// The edit distance (Levenshtein) between `a` and `b`, counted in characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The name of `names` nearest to `wanted`, compared without the `.service` suffix, when it is
/// close enough to be a typo of it: at most two edits, and fewer than half of its length.
pub fn nearest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let bare = |n: &'a str| n.strip_suffix(SUFFIX).unwrap_or(n);
    let wanted = wanted.strip_suffix(SUFFIX).unwrap_or(wanted);
    let limit = 2.min(wanted.chars().count().saturating_sub(1) / 2);
    names
        .into_iter()
        .map(|n| (distance(wanted, bare(n)), n))
        .filter(|&(d, _)| d > 0 && d <= limit)
        .min_by_key(|&(d, n)| (d, n))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("helo", "hello"), 1);
        assert_eq!(distance("hello", "hello"), 0);
        assert_eq!(distance("wrold", "world"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ünï", "uni"), 2);
    }

    #[test]
    fn nearest_is_a_likely_typo_only() {
        let names = [
            "hello.service",
            "hello_core.service",
            "world.service",
            "blink",
        ];
        assert_eq!(nearest("helo", names), Some("hello.service"));
        assert_eq!(nearest("helo.service", names), Some("hello.service"));
        assert_eq!(nearest("wrld", names), Some("world.service"));
        assert_eq!(nearest("blnk", names), Some("blink"));
        // Too far, too short to guess, or the name itself.
        assert_eq!(nearest("network", names), None);
        assert_eq!(nearest("ab", ["ac.service"]), None);
        assert_eq!(nearest("hello", names), None);
    }
}
