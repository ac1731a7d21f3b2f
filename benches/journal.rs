//! Journal benchmark (placeholder until written).
fn main() {}
