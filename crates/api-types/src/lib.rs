//! The serde bodies shared between FerroStack's services and the versioned contracts of
//! messages between the control plane and the agents (ARCHITECTURE.md §2). No I/O.
//!
//! [`compute`] holds Nova's state vocabulary and the bus contract between the compute
//! conductor and the compute agents; [`metadata`] the documents a guest reads about itself
//! (metadata API and config drive); [`network`] the bus contract between the network
//! service and the network agents.

pub mod compute;
pub mod metadata;
pub mod network;
