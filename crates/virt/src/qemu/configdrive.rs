//! The config drive: an ISO9660 volume labelled `config-2`, laid out as Nova's
//! `nova/virt/configdrive.py` writes it — `openstack/<version>/{meta_data.json, user_data,
//! network_data.json, vendor_data.json, vendor_data2.json}` and the EC2-style
//! `ec2/<version>/meta-data.json` and `user-data`, for every version and `latest` — built
//! with genisoimage (or xorriso's mkisofs emulation). The documents come from
//! `ferro_api_types::metadata`, the generator the metadata API serves from too.

use std::io::Read;
use std::path::Path;

use ferro_api_types::metadata::{Facts, InstanceMetadata};

use super::process::{run_tool, which};
use crate::{InstanceSpec, VirtError};

/// The volume label cloud-init and our guest image look for.
pub const LABEL: &str = "config-2";

/// The metadata of `spec` as the drive holds it (a fresh random seed).
pub fn metadata(spec: &InstanceSpec) -> Result<InstanceMetadata<'_>, VirtError> {
    let mut seed = vec![0u8; 512];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut seed);
    }
    let facts = Facts {
        random_seed: seed,
        ..Facts::default()
    };
    InstanceMetadata::new(spec, facts).map_err(|e| VirtError::Failed(format!("config drive: {e}")))
}

/// Writes the tree into `staging` and builds the ISO at `iso`.
pub async fn build(spec: &InstanceSpec, staging: &Path, iso: &Path) -> Result<(), VirtError> {
    let io = |e: std::io::Error| VirtError::Failed(format!("config drive: {e}"));
    for (path, bytes) in metadata(spec)?.config_drive_files() {
        let file = staging.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&file, bytes).map_err(io)?;
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
    use base64::Engine as _;

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
        let md = metadata(&spec).unwrap().meta_data("latest");
        assert_eq!(md["uuid"], spec.uuid);
        assert_eq!(md["name"], "vm");
        assert_eq!(md["public_keys"]["k"], "ssh-ed25519 AAAA");
        assert_eq!(md["random_seed"].as_str().unwrap().len(), 684);
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
        assert_eq!(
            std::fs::read(dir.path().join("staging/ec2/latest/user-data")).unwrap(),
            b"hello"
        );
        let network: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                dir.path()
                    .join("staging/openstack/latest/network_data.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(network["links"], serde_json::json!([]));
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
