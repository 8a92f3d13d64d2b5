//! Identity's own integration tests (no HTTP): the bootstrap saga's unwinding.

mod bootstrap;
