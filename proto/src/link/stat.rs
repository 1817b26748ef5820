//! A value as the link carries it, and how deep a board may nest one.
//!
//! A derived `Deserialize` would follow a list inside a list as far as the bytes go: a 2 KiB
//! frame holds a thousand levels, each a stack frame of the decoder on the host, and again of
//! the conversion to JSON and of the drop. So this one counts the levels and refuses the frame
//! at the first past [`MAX_NESTING`], with an error that says so; the link goes on.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// How deep lists and objects may nest in a [`Stat`] read from the link. JSON's own reader
/// stops at 128; a board's stats and results are records of a few levels.
pub const MAX_NESTING: usize = 32;

/// A value as the link carries it (`serde_json::Value` is not postcard).
/// Its `Deserialize` is written out, not derived: it refuses lists and objects nested past
/// [`MAX_NESTING`] before it goes down into them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Stat {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Text(String),
    /// An array.
    List(Vec<Stat>),
    /// An object, its keys in order.
    Object(Vec<(String, Stat)>),
    /// A fixed-point number, `.0 / 10^.1`: a reading in tenths is `Decimal(213, 1)`, 21.3. A
    /// board without double-precision hardware hands its readings over so, and the host
    /// divides (a float division in software costs a board 1 KiB of flash).
    Decimal(i64, u8),
}

impl From<&Value> for Stat {
    /// Lists and objects nested past [`MAX_NESTING`] are cut there, so that a host never
    /// refuses a board's honest value.
    fn from(v: &Value) -> Stat {
        cut(v, MAX_NESTING)
    }
}

/// `v` as a `Stat`, with `depth` more levels of lists and objects kept.
fn cut(v: &Value, depth: usize) -> Stat {
    match v {
        Value::Null => Stat::Null,
        Value::Bool(b) => Stat::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Stat::Int(i),
            None => Stat::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Stat::Text(s.clone()),
        Value::Array(_) | Value::Object(_) if depth == 0 => Stat::Text(CUT.into()),
        // Carried as structure, so a board never formats JSON text.
        Value::Array(a) => Stat::List(a.iter().map(|v| cut(v, depth - 1)).collect()),
        Value::Object(m) => Stat::Object(entries(m, depth - 1)),
    }
}

/// The entries of `m`, with `depth` more levels kept in their values.
fn entries(m: &Map<String, Value>, depth: usize) -> Vec<(String, Stat)> {
    m.iter().map(|(k, v)| (k.clone(), cut(v, depth))).collect()
}

/// What stands for a list or object nested past [`MAX_NESTING`] in a board's value.
pub const CUT: &str = "(nested too deep)";

impl From<Value> for Stat {
    fn from(v: Value) -> Stat {
        // By reference, so a board has the conversion once.
        Stat::from(&v)
    }
}

impl From<Stat> for Value {
    fn from(s: Stat) -> Value {
        match s {
            Stat::Null => Value::Null,
            Stat::Bool(b) => Value::Bool(b),
            Stat::Int(i) => Value::from(i),
            Stat::Float(f) => Value::from(f),
            Stat::Text(t) => Value::String(t),
            Stat::List(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            Stat::Object(m) => Value::Object(map_of(m)),
            Stat::Decimal(..) => s.as_f64().map_or(Value::Null, Value::from),
        }
    }
}

impl Stat {
    /// The integer it is, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Stat::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The number it is, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Stat::Int(i) => Some(i as f64),
            Stat::Float(f) => Some(f),
            // Powers of ten are exact up to 10^22, so up to there (and for |units| up to 2^53)
            // the quotient is rounded once.
            Stat::Decimal(units, scale) => {
                Some(units as f64 / (0..scale).fold(1.0, |d: f64, _| d * 10.0))
            }
            _ => None,
        }
    }
}

impl From<bool> for Stat {
    fn from(b: bool) -> Stat {
        Stat::Bool(b)
    }
}

impl From<i64> for Stat {
    fn from(i: i64) -> Stat {
        Stat::Int(i)
    }
}

/// The integers that fit an `i64` as they are.
macro_rules! stat_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Stat {
            fn from(i: $t) -> Stat {
                Stat::Int(i.into())
            }
        }
    )*};
}

stat_from_int!(i8, i16, i32, u8, u16, u32);

impl From<usize> for Stat {
    fn from(i: usize) -> Stat {
        Stat::from(i as u64)
    }
}

impl From<u64> for Stat {
    /// Above `i64::MAX`, a float, as JSON would read it.
    fn from(i: u64) -> Stat {
        i64::try_from(i).map_or(Stat::Float(i as f64), Stat::Int)
    }
}

impl From<f64> for Stat {
    fn from(f: f64) -> Stat {
        Stat::Float(f)
    }
}

impl From<&str> for Stat {
    fn from(s: &str) -> Stat {
        Stat::Text(s.into())
    }
}

impl From<String> for Stat {
    fn from(s: String) -> Stat {
        Stat::Text(s)
    }
}

pub(crate) fn stats_of(m: &Map<String, Value>) -> Vec<(String, Stat)> {
    entries(m, MAX_NESTING)
}

pub(crate) fn map_of(v: Vec<(String, Stat)>) -> Map<String, Value> {
    v.into_iter().map(|(k, s)| (k, Value::from(s))).collect()
}

/// The variants' names, in their order on the wire.
const VARIANTS: &[&str] = &[
    "Null", "Bool", "Int", "Float", "Text", "List", "Object", "Decimal",
];

impl<'de> Deserialize<'de> for Stat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stat, D::Error> {
        Nested(MAX_NESTING).deserialize(d)
    }
}

// Postcard keeps no error's message (every `custom` one reads "Serde Deserialization Error"),
// so the refusal is also noted here, for `decode` to name it.
#[cfg(feature = "std")]
std::thread_local! {
    static TOO_DEEP: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Forgets a refusal noted before, so that the next decode's is its own.
pub(crate) fn clear_too_deep() {
    #[cfg(feature = "std")]
    TOO_DEEP.with(|t| t.set(false));
}

/// The message of a refusal, if the last decode on this thread stopped at a value nested
/// too deep; it forgets it.
pub(crate) fn took_too_deep() -> Option<String> {
    #[cfg(feature = "std")]
    if TOO_DEEP.with(|t| t.replace(false)) {
        return Some(alloc::string::ToString::to_string(&TooDeep));
    }
    None
}

/// The refusal of a value nested too deep.
struct TooDeep;

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a value nested deeper than {MAX_NESTING} lists or objects"
        )
    }
}

/// A [`Stat`] inside which `.0` more levels may nest.
#[derive(Clone, Copy)]
struct Nested(usize);

impl Nested {
    /// One level down, or the error of a value nested too deep.
    fn down<E: de::Error>(self) -> Result<Nested, E> {
        match self.0 {
            0 => {
                #[cfg(feature = "std")]
                TOO_DEEP.with(|t| t.set(true));
                Err(E::custom(TooDeep))
            }
            n => Ok(Nested(n - 1)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Nested {
    type Value = Stat;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Stat, D::Error> {
        d.deserialize_enum("Stat", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for Nested {
    type Value = Stat;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Stat, A::Error> {
        let (tag, v) = data.variant::<Tag>()?;
        Ok(match tag.0 {
            0 => v.unit_variant().map(|()| Stat::Null)?,
            1 => Stat::Bool(v.newtype_variant()?),
            2 => Stat::Int(v.newtype_variant()?),
            3 => Stat::Float(v.newtype_variant()?),
            4 => Stat::Text(v.newtype_variant()?),
            5 => Stat::List(v.newtype_variant_seed(Seq(self.down()?))?),
            6 => {
                let entry = Pair(PhantomData::<String>, self.down()?);
                Stat::Object(v.newtype_variant_seed(Seq(entry))?)
            }
            _ => {
                let (units, scale) =
                    v.tuple_variant(2, Pair(PhantomData::<i64>, PhantomData::<u8>))?;
                Stat::Decimal(units, scale)
            }
        })
    }
}

/// Which variant: its index on the wire, or its name in a self-describing format.
struct Tag(u8);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        d.deserialize_identifier(TagVisitor)
    }
}

struct TagVisitor;

impl Visitor<'_> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a kind of value")
    }

    fn visit_u64<E: de::Error>(self, i: u64) -> Result<Tag, E> {
        match u8::try_from(i) {
            Ok(i) if usize::from(i) < VARIANTS.len() => Ok(Tag(i)),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(i), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Tag, E> {
        match VARIANTS.iter().position(|&v| v == s) {
            Some(i) => Ok(Tag(i as u8)),
            None => Err(E::unknown_variant(s, VARIANTS)),
        }
    }
}

/// A sequence whose items are each read with the seed `.0`.
struct Seq<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Seq<S> {
    type Value = Vec<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Seq<S> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The length a peer claims is not trusted for the allocation.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Two items in a row, read with the seeds `.0` and `.1`: an object's key and value, a
/// decimal's units and scale.
#[derive(Clone, Copy)]
struct Pair<A, B>(A, B);

impl<'de, A: DeserializeSeed<'de>, B: DeserializeSeed<'de>> DeserializeSeed<'de> for Pair<A, B> {
    type Value = (A::Value, B::Value);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, A: DeserializeSeed<'de>, B: DeserializeSeed<'de>> Visitor<'de> for Pair<A, B> {
    type Value = (A::Value, B::Value);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("two items")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let first = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(0, &"two items"))?;
        let second = seq
            .next_element_seed(self.1)?
            .ok_or_else(|| de::Error::invalid_length(1, &"two items"))?;
        Ok((first, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_board_value_reads_as_json_reads_it() {
        assert_eq!(Stat::from(7u64), Stat::from(Value::from(7u64)));
        assert_eq!(Stat::from(u64::MAX), Stat::from(Value::from(u64::MAX)));
        assert_eq!(Stat::from(-3i32), Stat::Int(-3));
        assert_eq!(Stat::from("on"), Stat::from(Value::from("on")));
        assert_eq!(Stat::from(21.5).as_f64(), Some(21.5));
        assert_eq!(
            (Stat::Int(2).as_i64(), Stat::Int(2).as_f64()),
            (Some(2), Some(2.0))
        );
        assert_eq!(
            (Stat::Float(2.5).as_i64(), Stat::Null.as_f64()),
            (None, None)
        );
        // A reading in tenths reads as the nearest double, as if written `21.3` in JSON.
        assert_eq!(Value::from(Stat::Decimal(213, 1)), serde_json::json!(21.3));
        assert_eq!(Value::from(Stat::Decimal(-5, 2)), serde_json::json!(-0.05));
        assert_eq!(Stat::Decimal(7, 0).as_f64(), Some(7.0));
    }

    #[test]
    fn every_kind_of_value_reads_back_as_it_was_written() {
        let all = Stat::Object(vec![
            ("null".into(), Stat::Null),
            ("on".into(), Stat::Bool(true)),
            ("n".into(), Stat::Int(-7)),
            ("x".into(), Stat::Float(0.5)),
            ("s".into(), Stat::Text("é".into())),
            (
                "l".into(),
                Stat::List(vec![Stat::Int(1), Stat::List(vec![])]),
            ),
            ("o".into(), Stat::Object(vec![])),
            ("d".into(), Stat::Decimal(213, 1)),
        ]);
        let bytes = postcard::to_allocvec(&all).unwrap();
        assert_eq!(postcard::from_bytes::<Stat>(&bytes).unwrap(), all);
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(serde_json::from_str::<Stat>(&json).unwrap(), all);
        // A kind no version has is refused, by index and by name.
        assert!(postcard::from_bytes::<Stat>(&[8]).is_err());
        let e = serde_json::from_str::<Stat>(r#"{"Set":[]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `Set`"), "{e}");
        // JSON keeps the message postcard drops.
        let deep = "[".repeat(MAX_NESTING + 1) + &"]".repeat(MAX_NESTING + 1);
        let deep = deep.replace('[', r#"{"List":["#).replace(']', "]}");
        let e = serde_json::from_str::<Stat>(&deep).unwrap_err();
        assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    }

    #[test]
    fn a_board_cuts_a_value_nested_too_deep_so_the_host_reads_it() {
        let mut deep = Value::from(7);
        for i in 0..MAX_NESTING + 8 {
            deep = if i % 2 == 0 {
                Value::Array(vec![deep])
            } else {
                serde_json::json!({ "k": deep })
            };
        }
        let stat = Stat::from(&deep);
        let bytes = postcard::to_allocvec(&stat).unwrap();
        let back = postcard::from_bytes::<Stat>(&bytes).expect("read whole");
        assert_eq!(back, stat);
        // Kept down to the limit, then cut.
        let mut v = &Value::from(back);
        for _ in 0..MAX_NESTING {
            v = match v {
                Value::Array(a) => &a[0],
                Value::Object(m) => &m["k"],
                other => panic!("cut too early: {other}"),
            };
        }
        assert_eq!(v, &Value::from(CUT));
    }
}
