//! The config drive: an ISO9660 volume labelled `config-2`, laid out as Nova's
//! `nova/virt/configdrive.py` and `nova/api/metadata/base.py` write it —
//! `openstack/latest/{meta_data.json, user_data, network_data.json, vendor_data.json}` and
//! the EC2-style `ec2/latest/meta-data.json` and `user-data` — built with genisoimage (or
//! xorriso's mkisofs emulation).

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use super::process::{run_tool, which};
use crate::{InstanceSpec, VirtError};

/// The volume label cloud-init and our guest image look for.
pub const LABEL: &str = "config-2";

/// `meta_data.json` of `spec`: Nova's openstack metadata fields.
pub fn meta_data(spec: &InstanceSpec) -> Value {
    let mut seed = [0u8; 512];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut seed);
    }
    let mut md = json!({
        "uuid": spec.uuid,
        "name": if spec.display_name.is_empty() { &spec.name } else { &spec.display_name },
        "hostname": if spec.hostname.is_empty() { &spec.name } else { &spec.hostname },
        "launch_index": spec.launch_index,
        "availability_zone": spec.availability_zone,
        "project_id": spec.project_id,
        "meta": spec.metadata,
        "random_seed": base64::engine::general_purpose::STANDARD.encode(seed),
        "devices": [],
        "dedicated_cpus": [],
    });
    if let (Some(name), Some(key)) = (&spec.key_name, &spec.key_data) {
        md["public_keys"] = json!({ name: key });
        md["keys"] = json!([{"name": name, "type": "ssh", "data": key}]);
    }
    md
}

/// Writes the tree into `staging` and builds the ISO at `iso`.
pub async fn build(spec: &InstanceSpec, staging: &Path, iso: &Path) -> Result<(), VirtError> {
    let io = |e: std::io::Error| VirtError::Failed(format!("config drive: {e}"));
    let os = staging.join("openstack/latest");
    let ec2 = staging.join("ec2/latest");
    std::fs::create_dir_all(&os).map_err(io)?;
    std::fs::create_dir_all(&ec2).map_err(io)?;
    let md = meta_data(spec);
    std::fs::write(os.join("meta_data.json"), md.to_string()).map_err(io)?;
    // TODO-compat: ports join network_data.json when the network slice passes them.
    let network = json!({"links": [], "networks": [], "services": []});
    std::fs::write(os.join("network_data.json"), network.to_string()).map_err(io)?;
    std::fs::write(os.join("vendor_data.json"), "{}").map_err(io)?;
    std::fs::write(os.join("vendor_data2.json"), "{}").map_err(io)?;
    let ec2_md = json!({
        "instance-id": spec.name.replace("instance-", "i-"),
        "hostname": md["hostname"],
        "local-hostname": md["hostname"],
        "placement": {"availability-zone": spec.availability_zone},
        "public-keys": spec.key_name.as_ref().map(|n| json!({"0": {"openssh-key": spec.key_data, "_name": n}})),
    });
    std::fs::write(ec2.join("meta-data.json"), ec2_md.to_string()).map_err(io)?;
    if let Some(u) = &spec.user_data {
        // The API stores user data base64-encoded; the drive holds the bytes.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(u.trim())
            .map_err(|e| {
                VirtError::Failed(format!("config drive: user data is not base64: {e}"))
            })?;
        std::fs::write(os.join("user_data"), &bytes).map_err(io)?;
        std::fs::write(ec2.join("user-data"), &bytes).map_err(io)?;
    }
    let tool = if which("genisoimage").is_some() {
        "genisoimage"
    } else if which("xorriso").is_some() {
        "xorrisofs"
    } else {
        return Err(VirtError::Failed(
            "config drive: neither genisoimage nor xorriso is installed".into(),
        ));
    };
    let out = iso.to_string_lossy();
    let src = staging.to_string_lossy();
    // Nova's mkisofs flags: Rock Ridge and Joliet, the label, no version numbers.
    run_tool(
        tool,
        &[
            "-o",
            &out,
            "-ldots",
            "-allow-lowercase",
            "-allow-multidot",
            "-l",
            "-V",
            LABEL,
            "-r",
            "-J",
            "-quiet",
            &src,
        ],
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_drive_is_an_iso_labelled_config_2_with_nova_s_tree() {
        let dir = tempfile::tempdir().unwrap();
        let spec = InstanceSpec {
            uuid: "6f5d1c1e-0000-4000-8000-000000000001".into(),
            name: "instance-0000000a".into(),
            display_name: "vm".into(),
            key_name: Some("k".into()),
            key_data: Some("ssh-ed25519 AAAA".into()),
            user_data: Some(base64::engine::general_purpose::STANDARD.encode("hello")),
            ..InstanceSpec::default()
        };
        let md = meta_data(&spec);
        assert_eq!(md["uuid"], spec.uuid);
        assert_eq!(md["name"], "vm");
        assert_eq!(md["public_keys"]["k"], "ssh-ed25519 AAAA");
        let iso = dir.path().join("disk.config");
        build(&spec, &dir.path().join("staging"), &iso)
            .await
            .unwrap();
        let bytes = std::fs::read(&iso).unwrap();
        // The primary volume descriptor at sector 16 holds the volume id at offset 40.
        let pvd = &bytes[16 * 2048..17 * 2048];
        assert_eq!(&pvd[1..6], b"CD001");
        assert_eq!(std::str::from_utf8(&pvd[40..48]).unwrap(), LABEL);
        assert_eq!(
            std::fs::read(dir.path().join("staging/openstack/latest/user_data")).unwrap(),
            b"hello"
        );
        assert!(
            build(
                &InstanceSpec {
                    user_data: Some("%%".into()),
                    ..spec
                },
                &dir.path().join("s2"),
                &iso
            )
            .await
            .is_err()
        );
    }
}
