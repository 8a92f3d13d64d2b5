//! The host detail an agent reports reaches `os-hypervisors` as Nova's `cpu_info`: the JSON
//! text before microversion 2.28, the object from 2.28, gone from 2.88 — and a new report
//! with different detail (a QEMU host whose accelerator changed) replaces it.

use ferro_api_types::compute::{CONTRACT_VERSION, ConductorRequest, HostResources};
use ferro_testkit::TestCloud;
use serde_json::{Value, json};

use crate::servers::nova;

fn report(cpu_info: Value) -> ConductorRequest {
    ConductorRequest::ServiceHeartbeat {
        version: CONTRACT_VERSION.into(),
        host: "qemu-detail".into(),
        resources: HostResources {
            vcpus: 2,
            memory_mb: 1024,
            local_gb: 10,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 7_002_022,
            provider_uuid: Some("0c0ffee0-0000-4000-8000-00000000cafe".into()),
            running_instances: 0,
            cpu_info,
        },
    }
}

/// Host `host` in `/os-hypervisors/detail` at `version` (waiting for its first report).
async fn detail_of(c: &TestCloud, version: &str, host: &str) -> Value {
    for _ in 0..200 {
        let r = nova(c, version)
            .get("/os-hypervisors/detail")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let found = r.body["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hypervisor_hostname"].as_str() == Some(host))
            .cloned();
        if let Some(h) = found {
            return h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{host} is never listed")
}

async fn detail(c: &TestCloud, version: &str) -> Value {
    detail_of(c, version, "qemu-detail").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accelerator_shows_in_cpu_info_as_nova_places_host_detail() {
    let c = TestCloud::with_fake_hosts(1).await;
    let tcg = json!({"arch": "x86_64", "model": "qemu64", "accelerator": "tcg",
        "topology": {"cells": 1, "sockets": 1, "cores": 2, "threads": 1}});
    c.cloud
        .compute
        .conduct(report(tcg.clone()), "req-cpu-1")
        .await
        .unwrap();

    let h = detail(&c, "2.27").await;
    assert_eq!(h["hypervisor_type"], "QEMU", "{h}");
    let text = h["cpu_info"].as_str().expect("a JSON string before 2.28");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), tcg);
    let h = detail(&c, "2.28").await;
    assert_eq!(h["cpu_info"], tcg, "{h}");
    assert_eq!(h["cpu_info"]["accelerator"], "tcg");
    assert!(detail(&c, "2.88").await.get("cpu_info").is_none());

    // The host's accelerator changes (forced to KVM): the next report shows it.
    let kvm = json!({"arch": "x86_64", "model": "host", "accelerator": "kvm"});
    c.cloud
        .compute
        .conduct(report(kvm.clone()), "req-cpu-2")
        .await
        .unwrap();
    assert_eq!(detail(&c, "2.28").await["cpu_info"], kvm);

    // A driver with nothing to say (fake) shows the empty object, as before.
    let fake = detail_of(&c, "2.28", "fake-0").await;
    assert_eq!(fake["cpu_info"], json!({}), "{fake}");
}
