//! The `shoal` command line: parses arguments and calls the `shoal` library. Nothing else.
fn main() {}
