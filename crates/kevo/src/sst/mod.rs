//! Sorted string tables: immutable sorted files of internal keys, their blocks and the block cache.
pub mod block;
pub mod builder;
pub mod cache;
pub mod filter;
pub mod format;
pub mod properties;
pub mod table;
