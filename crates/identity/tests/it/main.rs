//! Identity's own integration tests (no HTTP): the bootstrap saga's unwinding and
//! limits read with a configured region.

mod bootstrap;
mod limits;
