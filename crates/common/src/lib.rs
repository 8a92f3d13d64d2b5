//! Shared vocabulary of every FerroStack service: the domain [`Error`], the
//! [`RequestContext`] a validated token turns into, and OpenStack's time and id formats.
//!
//! This crate does no I/O and knows no service: a service maps [`Error`] into its own
//! upstream fault body (Keystone `{"error": ...}`, Nova `{"itemNotFound": ...}`, ...).

pub mod context;
pub mod error;
pub mod time;

pub use context::RequestContext;
pub use error::{Error, Result};

/// A new Keystone-style id: 32 lowercase hex digits, no dashes (`uuid4().hex` upstream).
pub fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
