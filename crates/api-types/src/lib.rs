//! The serde bodies shared between FerroStack's services and the versioned contracts of
//! messages between the control plane and the agents (ARCHITECTURE.md §2). No I/O.
//!
//! Empty for now: identity, the only service so far, builds its Keystone bodies in
//! `ferro-identity::model` and has no bus contract. Types move here when a second crate
//! needs them (the compute agent's `build_and_run_instance`, ferro-client's typed calls).
