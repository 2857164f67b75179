//! Multi-process QuorumLM clusters for integration, chaos and load tests.
//!
//! This crate is the second member of the workspace. It starts real `qlmd` processes in
//! temporary directories and drives them through the client library. The harness arrives with
//! the replicated server (issue 4) and the chaos suite (issue 5); until then it is empty so the
//! workspace layout is already the one the project is known by.
