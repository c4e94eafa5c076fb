//! the pace binary
fn main() {}
