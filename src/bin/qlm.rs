//! `qlm`: the QuorumLM command line (vendor, admin and script tool).
fn main() {}
