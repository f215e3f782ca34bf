//! The store: the only code that imports redb.

pub mod codec;
