//! The QEMU driver against real guests (root, qemu-system-x86, qemu-utils, genisoimage):
//! FerroStack's guest test image boots under TCG (or KVM where the probe says so), reads
//! its config drive and prints to the serial console. Every test's host directory and
//! processes go away through [`host::TestHost`]'s `Drop`, even when the test fails.

mod disks;
mod failures;
mod host;
mod lifecycle;
mod nics;
