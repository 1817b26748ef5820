//! The journal: a ring of records in a fixed byte budget ([`ring`]), the table of the names
//! records are logged under ([`names`]), and the filter a journal query applies ([`query`]).

pub mod names;
pub mod query;
pub mod ring;

pub use names::{Names, UnitNames};
pub use query::{Filter, Grep};
pub use ring::{
    records, text, Cursor, ReadOutcome, Record, Ring, TooSmall, UnitId, MAX_MESSAGE, MIN_BUDGET,
};
