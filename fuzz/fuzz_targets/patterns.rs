//! Unit name patterns against a reference: the first line of the input holds patterns
//! (separated by spaces), the other lines are unit names. The core's hand-written matcher
//! (brace expansion, then a backtracking glob match) must agree with the same patterns
//! matched by the reference below, written another way, and `split` with `matches`.

#![no_main]

use asyncmd_core::pattern::Patterns;
use asyncmd_proto::unit::{is_glob, SUFFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let pats: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let names: Vec<&str> = lines.take(32).collect();
    let Ok(compiled) = Patterns::new(&pats) else {
        return;
    };
    let reference: Vec<Reference> = pats
        .iter()
        .map(|p| {
            Reference::new(p)
                .unwrap_or_else(|| panic!("{p:?} compiled, the reference says it is invalid"))
        })
        .collect();
    for n in &names {
        let want = reference.is_empty() || reference.iter().any(|r| r.matches(n));
        assert_eq!(compiled.matches(n), want, "patterns {pats:?} on name {n:?}");
    }
    let (hits, missing) = compiled.split(&names);
    let want_hits: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| compiled.matches(n))
        .collect();
    assert_eq!(hits, want_hits);
    for (p, r) in pats.iter().zip(&reference) {
        let unmatched = !names.iter().any(|n| r.matches(n));
        assert_eq!(
            missing.contains(p),
            unmatched,
            "missing {missing:?}, pattern {p:?}"
        );
    }
});

/// A pattern as the reference matches it: the bare-name rule for plain names, else globs.
enum Reference {
    Name(String),
    Globs(Vec<Vec<Token>>),
}

impl Reference {
    fn new(p: &str) -> Option<Reference> {
        if !is_glob(p) {
            return Some(Reference::Name(p.to_string()));
        }
        let globs = expand(p.as_bytes())?;
        let globs = globs
            .iter()
            .map(|g| tokens(g))
            .collect::<Option<Vec<_>>>()?;
        Some(Reference::Globs(globs))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Reference::Name(p) => {
                name == p || (!p.ends_with(SUFFIX) && name.strip_suffix(SUFFIX) == Some(p.as_str()))
            }
            Reference::Globs(globs) => globs.iter().any(|g| dp_match(g, name.as_bytes())),
        }
    }
}

/// Brace expansion, worked from a queue: the first unescaped `{` with its matching `}`
/// splits at its own top-level commas. `None` for an unbalanced pattern.
fn expand(p: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut todo = vec![p.to_vec()];
    let mut done = Vec::new();
    while let Some(g) = todo.pop() {
        let mut depth = 0usize;
        let (mut open, mut close, mut commas) = (None, None, Vec::new());
        let mut i = 0;
        while i < g.len() {
            match g[i] {
                b'\\' => i += 1,
                b'{' => {
                    if open.is_none() {
                        open = Some(i);
                    }
                    depth += 1;
                }
                b'}' if open.is_none() => return None,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                b',' if depth == 1 => commas.push(i),
                _ => {}
            }
            i += 1;
        }
        let Some(open) = open else {
            done.push(g);
            continue;
        };
        let close = close?;
        let mut cuts = vec![open];
        cuts.extend(commas);
        cuts.push(close);
        for w in cuts.windows(2).rev() {
            let mut alt = g[..open].to_vec();
            alt.extend_from_slice(&g[w[0] + 1..w[1]]);
            alt.extend_from_slice(&g[close + 1..]);
            todo.push(alt);
        }
    }
    Some(done)
}

/// One step of a glob.
enum Token {
    /// Exactly this byte.
    Byte(u8),
    /// Any one byte (`?`) or one of a class (`[...]`).
    Set(Box<[bool; 256]>),
    /// Any run of bytes.
    Star,
}

/// A brace-free glob as tokens: `*` any bytes, `?` one byte, `[...]` a class (`!` or `^`
/// negates, a leading `]` is a member, `a-z` a range, `\x` the byte x), `\x` outside a class
/// the byte x. `None` for an unclosed class or a trailing `\`.
fn tokens(g: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < g.len() {
        match g[i] {
            b'\\' => {
                out.push(Token::Byte(*g.get(i + 1)?));
                i += 2;
            }
            b'*' => {
                out.push(Token::Star);
                i += 1;
            }
            b'?' => {
                out.push(Token::Set(Box::new([true; 256])));
                i += 1;
            }
            b'[' => {
                let mut j = i + 1;
                let negated = matches!(g.get(j), Some(b'!' | b'^'));
                if negated {
                    j += 1;
                }
                let mut set = [false; 256];
                let mut first = true;
                loop {
                    let c = *g.get(j)?;
                    if c == b']' && !first {
                        break;
                    }
                    first = false;
                    let mut lo = c;
                    if lo == b'\\' {
                        j += 1;
                        lo = *g.get(j)?;
                    }
                    let mut hi = lo;
                    if g.get(j + 1) == Some(&b'-') && g.get(j + 2).is_some_and(|&c| c != b']') {
                        hi = g[j + 2];
                        if hi == b'\\' {
                            j += 1;
                            hi = *g.get(j + 2)?;
                        }
                        j += 2;
                    }
                    for c in lo..=hi {
                        set[usize::from(c)] = true;
                    }
                    j += 1;
                }
                if negated {
                    set.iter_mut().for_each(|m| *m = !*m);
                }
                out.push(Token::Set(Box::new(set)));
                i = j + 1;
            }
            c => {
                out.push(Token::Byte(c));
                i += 1;
            }
        }
    }
    Some(out)
}

/// Whether `name` matches `glob` as a whole, by dynamic programming over (token, byte)
/// positions: another way than the core's, which backtracks to the last star.
fn dp_match(glob: &[Token], name: &[u8]) -> bool {
    // can[j]: the tokens so far can match exactly name[..j].
    let mut can = vec![false; name.len() + 1];
    can[0] = true;
    for t in glob {
        let mut next = vec![false; name.len() + 1];
        match t {
            Token::Star => {
                let mut any = false;
                for j in 0..=name.len() {
                    any |= can[j];
                    next[j] = any;
                }
            }
            Token::Byte(b) => {
                for j in 0..name.len() {
                    next[j + 1] = can[j] && name[j] == *b;
                }
            }
            Token::Set(set) => {
                for j in 0..name.len() {
                    next[j + 1] = can[j] && set[usize::from(name[j])];
                }
            }
        }
        can = next;
    }
    can[name.len()]
}
