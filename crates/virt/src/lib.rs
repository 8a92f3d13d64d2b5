//! The hypervisor seam of a compute host: the [`Driver`] trait the compute agent drives, and
//! [`FakeDriver`], an in-memory hypervisor for tests and scale runs (configurable delay and
//! injected failures). [`qemu::QemuDriver`] is the real one: a qemu-system process per
//! guest, controlled over QMP.
//!
//! A driver owns guests on one host only; it must not know the database, the bus or any
//! API. Every operation is idempotent where upstream's are (destroying a missing guest
//! succeeds), so the agent can repeat a message after a redelivery.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
pub use ferro_api_types::compute::{ImageSource, InstanceSpec, Nic, PowerState};

pub mod qemu;

/// Why a driver operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VirtError {
    #[error("instance {0} not found on this host")]
    NotFound(String),
    #[error("instance {uuid} cannot {op} while {state:?}")]
    InvalidState {
        uuid: String,
        op: &'static str,
        state: PowerState,
    },
    #[error("hypervisor failure: {0}")]
    Failed(String),
    /// The driver cannot do this at all (upstream's `NotImplementedError` from a driver, e.g.
    /// `AttachInterfaceNotSupported`): the caller's request is refused, nothing failed.
    #[error("not supported: {0}")]
    NotSupported(String),
}

/// One operation of a driver, to name injected failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Spawn,
    Destroy,
    Reboot,
    PowerOff,
    PowerOn,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Snapshot,
    AttachInterface,
    DetachInterface,
}

/// A hypervisor on one host.
#[async_trait]
pub trait Driver: Send + Sync {
    /// `fake`, `QEMU`: what `hypervisor_type` shows.
    fn hypervisor_type(&self) -> &'static str;
    /// The hypervisor's version as Nova's integer (`7.2.22` is 7002022).
    fn hypervisor_version(&self) -> i64 {
        1
    }
    /// The accelerator guests run with (`kvm`, `tcg`), where that means something.
    fn accelerator(&self) -> Option<&'static str> {
        None
    }
    /// What the host's hypervisor shows as `cpu_info` (Nova's free-form detail): a JSON
    /// object, empty where the driver has nothing to say.
    fn cpu_info(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    /// Whether spawning plugs the guest's ports into the host's dataplane, so the network
    /// service will send `network-vif-plugged` for them (Nova waits for it before the
    /// guest counts as built).
    fn plugs_vifs(&self) -> bool {
        false
    }
    /// Creates and starts a guest; a guest that exists already is left as it is.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), VirtError>;
    /// Stops and removes a guest; a missing guest is not an error.
    async fn destroy(&self, uuid: &str) -> Result<(), VirtError>;
    /// Restarts a guest (soft: ACPI, hard: reset).
    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), VirtError>;
    async fn power_off(&self, uuid: &str) -> Result<(), VirtError>;
    async fn power_on(&self, uuid: &str) -> Result<(), VirtError>;
    async fn pause(&self, uuid: &str) -> Result<(), VirtError>;
    async fn unpause(&self, uuid: &str) -> Result<(), VirtError>;
    async fn suspend(&self, uuid: &str) -> Result<(), VirtError>;
    async fn resume(&self, uuid: &str) -> Result<(), VirtError>;
    /// The guest's power state as the hypervisor sees it.
    async fn power_state(&self, uuid: &str) -> Result<PowerState, VirtError>;
    /// The guest's serial console log.
    async fn console_output(&self, uuid: &str) -> Result<String, VirtError>;
    /// The uuids of the guests on this host.
    async fn list_instances(&self) -> Result<Vec<String>, VirtError>;

    /// Resize, on the source host: stops the guest and readies its disks to move.
    async fn migrate_disk_and_power_off(&self, uuid: &str) -> Result<(), VirtError> {
        self.power_off(uuid).await
    }

    /// Resize, on the destination host (maybe the same): the guest runs as `spec` says (the
    /// new flavor), powered off unless `power_on`. The default builds the guest anew, which
    /// suits guests without lasting disks; drivers with disks carry them over instead.
    async fn finish_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<(), VirtError> {
        self.destroy(&spec.uuid).await?;
        self.spawn(spec).await?;
        if !power_on {
            self.power_off(&spec.uuid).await?;
        }
        Ok(())
    }

    /// Rebuild: the guest is made anew from `spec`'s image (its disks' contents are lost, as
    /// upstream's rebuild), powered off unless `power_on`.
    async fn rebuild(&self, spec: &InstanceSpec, power_on: bool) -> Result<(), VirtError> {
        self.destroy(&spec.uuid).await?;
        self.spawn(spec).await?;
        if !power_on {
            self.power_off(&spec.uuid).await?;
        }
        Ok(())
    }

    /// createImage: the guest's root disk, flattened to one qcow2 file at `dest`, consistent
    /// at the block level; the guest keeps running (or not) as it was.
    async fn snapshot(&self, uuid: &str, dest: &std::path::Path) -> Result<(), VirtError> {
        let _ = dest;
        Err(VirtError::Failed(format!(
            "the {} driver cannot snapshot instance {uuid}",
            self.hypervisor_type()
        )))
    }

    /// A reverted resize, on the source host: the guest is `spec` (the old flavor) again.
    async fn finish_revert_migration(
        &self,
        spec: &InstanceSpec,
        power_on: bool,
    ) -> Result<(), VirtError> {
        self.finish_migration(spec, power_on).await
    }

    /// Nova's image cache manager pass: cached images no guest of this host used for
    /// longer than `max_age` are removed (never one a guest uses); the names removed.
    async fn manage_image_cache(&self, max_age: Duration) -> Result<Vec<String>, VirtError> {
        let _ = max_age;
        Ok(Vec::new())
    }

    /// `os-interface` attach: port `nic` becomes a NIC of guest `uuid`, running or not, and
    /// stays one across power cycles. A NIC the guest has already is left as it is.
    async fn attach_interface(&self, uuid: &str, nic: &Nic) -> Result<(), VirtError> {
        let _ = nic;
        Err(VirtError::NotSupported(format!(
            "the {} driver cannot attach interfaces (instance {uuid})",
            self.hypervisor_type()
        )))
    }

    /// `os-interface` detach: port `port_id` is no longer a NIC of guest `uuid` and its
    /// host device is gone. A port the guest does not have is not an error.
    async fn detach_interface(&self, uuid: &str, port_id: &str) -> Result<(), VirtError> {
        let _ = port_id;
        Err(VirtError::NotSupported(format!(
            "the {} driver cannot detach interfaces (instance {uuid})",
            self.hypervisor_type()
        )))
    }
}

struct FakeGuest {
    state: PowerState,
    console: String,
    /// The ports plugged into the guest, in order.
    nics: Vec<String>,
}

/// An in-memory hypervisor. Each operation sleeps the configured delay first; failures are
/// injected per operation ([`FakeDriver::fail`]) and last until cleared.
#[derive(Default)]
pub struct FakeDriver {
    guests: Mutex<BTreeMap<String, FakeGuest>>,
    failing: Mutex<BTreeSet<Op>>,
    delay: Mutex<Duration>,
    plugs_vifs: std::sync::atomic::AtomicBool,
}

impl FakeDriver {
    /// A fake hypervisor without delay or failures.
    pub fn new() -> FakeDriver {
        FakeDriver::default()
    }

    /// The same, each operation taking `delay`.
    pub fn with_delay(delay: Duration) -> FakeDriver {
        FakeDriver {
            delay: Mutex::new(delay),
            ..FakeDriver::default()
        }
    }

    /// Makes every operation from now on take `delay` (a long one stands in for a host whose
    /// agent died mid-operation).
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Makes the fake claim (or not) that it plugs ports, as a real hypervisor's driver
    /// does: builds then wait for `network-vif-plugged` events.
    pub fn set_plugs_vifs(&self, plugs: bool) {
        self.plugs_vifs
            .store(plugs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes `op` fail (or succeed again) from now on.
    pub fn fail(&self, op: Op, failing: bool) {
        let mut f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing {
            f.insert(op);
        } else {
            f.remove(&op);
        }
    }

    /// Puts guest `uuid` in `state` behind the driver's back, as a guest that shut itself
    /// down, crashed or was started by hand (false if it runs no such guest).
    pub fn set_power_state(&self, uuid: &str, state: PowerState) -> bool {
        match self
            .guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(uuid)
        {
            Some(g) => {
                g.state = state;
                true
            }
            None => false,
        }
    }

    /// The ports plugged into guest `uuid`, in order (`None` for a guest it does not run).
    pub fn interfaces(&self, uuid: &str) -> Option<Vec<String>> {
        self.guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .map(|g| g.nics.clone())
    }

    async fn enter(&self, op: Op) -> Result<(), VirtError> {
        let delay = *self.delay.lock().unwrap_or_else(|e| e.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&op);
        if failing {
            Err(VirtError::Failed(format!("injected failure of {op:?}")))
        } else {
            Ok(())
        }
    }

    /// Moves guest `uuid` from one of `from` to `to`.
    async fn transition(
        &self,
        op: Op,
        name: &'static str,
        uuid: &str,
        from: &[PowerState],
        to: PowerState,
    ) -> Result<(), VirtError> {
        self.enter(op).await?;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        let g = guests
            .get_mut(uuid)
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))?;
        if g.state == to {
            return Ok(());
        }
        if !from.contains(&g.state) {
            return Err(VirtError::InvalidState {
                uuid: uuid.to_string(),
                op: name,
                state: g.state,
            });
        }
        g.state = to;
        g.console.push_str(&format!("fake: {name}\n"));
        Ok(())
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn hypervisor_type(&self) -> &'static str {
        "fake"
    }

    fn plugs_vifs(&self) -> bool {
        self.plugs_vifs.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<(), VirtError> {
        self.enter(Op::Spawn).await?;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        guests
            .entry(spec.uuid.clone())
            .or_insert_with(|| FakeGuest {
                state: PowerState::Running,
                console: format!(
                    "fake: booting {} ({} vCPU, {} MiB)\nlogin:\n",
                    spec.name, spec.vcpus, spec.memory_mb
                ),
                nics: spec.nics.iter().map(|n| n.port_id.clone()).collect(),
            });
        Ok(())
    }

    async fn destroy(&self, uuid: &str) -> Result<(), VirtError> {
        self.enter(Op::Destroy).await?;
        self.guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), VirtError> {
        use PowerState::*;
        let from: &[PowerState] = if hard {
            &[Running, Shutdown, Paused, Suspended, Crashed]
        } else {
            &[Running]
        };
        self.enter(Op::Reboot).await?;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        let g = guests
            .get_mut(uuid)
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))?;
        if !from.contains(&g.state) {
            return Err(VirtError::InvalidState {
                uuid: uuid.to_string(),
                op: "reboot",
                state: g.state,
            });
        }
        g.state = Running;
        g.console.push_str("fake: rebooted\nlogin:\n");
        Ok(())
    }

    async fn power_off(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(
            Op::PowerOff,
            "power off",
            uuid,
            &[Running, Paused, Suspended, Crashed],
            Shutdown,
        )
        .await
    }

    async fn power_on(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(Op::PowerOn, "power on", uuid, &[Shutdown, Crashed], Running)
            .await
    }

    async fn pause(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(Op::Pause, "pause", uuid, &[Running], Paused)
            .await
    }

    async fn unpause(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(Op::Unpause, "unpause", uuid, &[Paused], Running)
            .await
    }

    async fn suspend(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(Op::Suspend, "suspend", uuid, &[Running], Suspended)
            .await
    }

    async fn resume(&self, uuid: &str) -> Result<(), VirtError> {
        use PowerState::*;
        self.transition(Op::Resume, "resume", uuid, &[Suspended], Running)
            .await
    }

    async fn power_state(&self, uuid: &str) -> Result<PowerState, VirtError> {
        self.guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .map(|g| g.state)
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))
    }

    async fn console_output(&self, uuid: &str) -> Result<String, VirtError> {
        self.guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .map(|g| g.console.clone())
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))
    }

    async fn snapshot(&self, uuid: &str, dest: &std::path::Path) -> Result<(), VirtError> {
        self.enter(Op::Snapshot).await?;
        let console = {
            let guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
            guests
                .get(uuid)
                .map(|g| g.console.clone())
                .ok_or_else(|| VirtError::NotFound(uuid.to_string()))?
        };
        // A fake disk: what the guest "wrote" so far.
        tokio::fs::write(dest, format!("fake disk of {uuid}\n{console}"))
            .await
            .map_err(|e| VirtError::Failed(format!("snapshot to {}: {e}", dest.display())))
    }

    async fn attach_interface(&self, uuid: &str, nic: &Nic) -> Result<(), VirtError> {
        self.enter(Op::AttachInterface).await?;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        let g = guests
            .get_mut(uuid)
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))?;
        if !g.nics.contains(&nic.port_id) {
            g.nics.push(nic.port_id.clone());
            g.console.push_str(&format!(
                "fake: plugged {} ({})\n",
                nic.port_id, nic.mac_address
            ));
        }
        Ok(())
    }

    async fn detach_interface(&self, uuid: &str, port_id: &str) -> Result<(), VirtError> {
        self.enter(Op::DetachInterface).await?;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        let g = guests
            .get_mut(uuid)
            .ok_or_else(|| VirtError::NotFound(uuid.to_string()))?;
        if g.nics.iter().any(|p| p == port_id) {
            g.nics.retain(|p| p != port_id);
            g.console.push_str(&format!("fake: unplugged {port_id}\n"));
        }
        Ok(())
    }

    async fn list_instances(&self) -> Result<Vec<String>, VirtError> {
        Ok(self
            .guests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str) -> InstanceSpec {
        InstanceSpec {
            uuid: uuid.into(),
            name: format!("instance-{uuid}"),
            vcpus: 1,
            memory_mb: 64,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            image_ref: "img".into(),
            user_data: None,
            key_data: None,
            ..InstanceSpec::default()
        }
    }

    #[tokio::test]
    async fn guests_follow_the_power_state_machine() {
        let d = FakeDriver::new();
        d.spawn(&spec("a")).await.unwrap();
        d.spawn(&spec("a")).await.unwrap();
        assert_eq!(d.list_instances().await.unwrap(), vec!["a".to_string()]);
        assert_eq!(d.power_state("a").await.unwrap(), PowerState::Running);
        d.pause("a").await.unwrap();
        assert!(matches!(
            d.suspend("a").await,
            Err(VirtError::InvalidState { .. })
        ));
        assert!(d.reboot("a", false).await.is_err());
        d.reboot("a", true).await.unwrap();
        d.power_off("a").await.unwrap();
        assert_eq!(d.power_state("a").await.unwrap(), PowerState::Shutdown);
        d.power_on("a").await.unwrap();
        assert!(d.console_output("a").await.unwrap().contains("login:"));
        d.destroy("a").await.unwrap();
        d.destroy("a").await.unwrap();
        assert!(matches!(
            d.power_state("a").await,
            Err(VirtError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn interfaces_plug_and_unplug_idempotently() {
        let d = FakeDriver::new();
        let nic = |p: &str| Nic {
            port_id: p.into(),
            ..Nic::default()
        };
        let mut s = spec("c");
        s.nics = vec![nic("p1")];
        d.spawn(&s).await.unwrap();
        d.attach_interface("c", &nic("p2")).await.unwrap();
        d.attach_interface("c", &nic("p2")).await.unwrap();
        assert_eq!(d.interfaces("c").unwrap(), vec!["p1", "p2"]);
        d.detach_interface("c", "p1").await.unwrap();
        d.detach_interface("c", "p1").await.unwrap();
        assert_eq!(d.interfaces("c").unwrap(), vec!["p2"]);
        assert!(matches!(
            d.attach_interface("nosuch", &nic("p3")).await,
            Err(VirtError::NotFound(_))
        ));
        d.fail(Op::AttachInterface, true);
        assert!(d.attach_interface("c", &nic("p3")).await.is_err());
        assert_eq!(d.interfaces("c").unwrap(), vec!["p2"]);
    }

    #[tokio::test]
    async fn injected_failures_last_until_cleared() {
        let d = FakeDriver::new();
        d.fail(Op::Spawn, true);
        assert!(matches!(
            d.spawn(&spec("b")).await,
            Err(VirtError::Failed(_))
        ));
        assert!(d.list_instances().await.unwrap().is_empty());
        d.fail(Op::Spawn, false);
        d.spawn(&spec("b")).await.unwrap();
    }
}
