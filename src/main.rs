//! The hookbox binary (to be written).
fn main() {}
