//! Versions: the set of live tables per level, its edits, and the manifest that logs them.
pub mod edit;
pub mod manifest;
pub mod set;
