//! Whole-cloud tests: FerroStack started in-process through `TestCloud`, driven over HTTP.

mod identity;
mod identity_faults;
mod image;
mod unauthorized;
