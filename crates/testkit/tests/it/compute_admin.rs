//! The admin and legacy corners of the compute API Tempest exercises: one hypervisor by id,
//! its uptime, search and servers; `os-hosts`; the extension list; the usage audit log;
//! `os-resetState`, `forceDelete` and `restore`; ips, the server password and diagnostics;
//! and the trimmed bodies of `PUT /servers/{id}` and `rebuild` before 2.75.

use ferro_testkit::TestCloud;
use serde_json::json;

use crate::servers::{create, image_and_flavor, nova, wait_gone, wait_hosts, wait_status};

#[tokio::test]
async fn hypervisor_by_id_uptime_search_servers_and_hosts() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.1");
    let id = create(&nova(&c, "2.37"), "on-a-host", &image, &flavor).await;
    let server = wait_status(&n, &id, "ACTIVE").await;
    let list = n.get("/os-hypervisors").await.unwrap();
    let hv = list.body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hypervisor_hostname"] == server["OS-EXT-SRV-ATTR:host"])
        .unwrap()
        .clone();
    let hid = hv["id"].to_string();
    let r = n.get(&format!("/os-hypervisors/{hid}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["hypervisor"]["running_vms"], 1);
    assert!(r.body["hypervisor"]["vcpus"].as_i64().unwrap() > 0);
    let r = n
        .get(&format!("/os-hypervisors/{hid}/uptime"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["hypervisor"]["uptime"].is_string());
    assert_eq!(n.get("/os-hypervisors/424242").await.unwrap().status, 404);
    let r = n.get("/os-hypervisors/fake-/search").await.unwrap();
    assert_eq!(
        r.body["hypervisors"].as_array().unwrap().len(),
        2,
        "{}",
        r.body
    );
    assert_eq!(
        n.get("/os-hypervisors/nope/search").await.unwrap().status,
        404
    );
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap();
    let r = n
        .get(&format!("/os-hypervisors/{host}/servers"))
        .await
        .unwrap();
    assert_eq!(
        r.body["hypervisors"][0]["servers"][0]["uuid"],
        id.as_str(),
        "{}",
        r.body
    );
    // 2.53: uuids, a malformed one is a 400, with_servers lists the servers.
    let n53 = nova(&c, "2.53");
    let uuid = n53.get("/os-hypervisors").await.unwrap().body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hypervisor_hostname"] == host)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = n53
        .get(&format!("/os-hypervisors/{uuid}?with_servers=true"))
        .await
        .unwrap();
    assert_eq!(
        r.body["hypervisor"]["servers"][0]["uuid"],
        id.as_str(),
        "{}",
        r.body
    );
    assert_eq!(n53.get("/os-hypervisors/1").await.unwrap().status, 400);
    assert_eq!(
        n53.get("/os-hypervisors/fake/search").await.unwrap().status,
        404
    );

    // os-hosts until 2.42.
    let r = n.get("/os-hosts").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["host_name"] == host && h["service"] == "compute" && h["zone"] == "nova")
    );
    assert_eq!(
        n.get("/os-hosts?zone=nowhere").await.unwrap().body["hosts"],
        json!([])
    );
    let r = n.get(&format!("/os-hosts/{host}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let res = r.body["host"].as_array().unwrap();
    assert_eq!(res[0]["resource"]["project"], "(total)");
    assert_eq!(res[1]["resource"]["cpu"], 1);
    assert_eq!(
        res.len(),
        4,
        "totals, used now, used max, one project: {}",
        r.body
    );
    assert_eq!(n.get("/os-hosts/nowhere").await.unwrap().status, 404);
    let bad = n
        .put(&format!("/os-hosts/{host}"), Some(&json!({"status": "on"})))
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let none = n
        .put("/os-hosts/nowhere", Some(&json!({"status": "enable"})))
        .await
        .unwrap();
    assert_eq!(none.status, 404);
    let r = n
        .put(
            &format!("/os-hosts/{host}"),
            Some(&json!({"status": "enable"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 501);
    assert_eq!(n.get("/os-hosts/nowhere/reboot").await.unwrap().status, 404);
    assert_eq!(nova(&c, "2.43").get("/os-hosts").await.unwrap().status, 404);

    // The usage audit log: every compute host, none audited.
    let r = n.get("/os-instance_usage_audit_log").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["instance_usage_audit_logs"]["num_hosts"], 2);
    let r = n
        .get("/os-instance_usage_audit_log/2026-11-24%2011%3A00%3A00")
        .await
        .unwrap();
    assert_eq!(
        r.body["instance_usage_audit_log"]["period_ending"],
        "2026-11-01 00:00:00"
    );
    assert_eq!(
        r.body["instance_usage_audit_log"]["period_beginning"],
        "2026-10-01 00:00:00"
    );
    let r = n
        .get("/os-instance_usage_audit_log/not-a-time")
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // Extensions.
    let r = n.get("/extensions").await.unwrap();
    assert!(
        r.body["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "Hosts")
    );
    let r = n.get("/extensions/os-consoles").await.unwrap();
    assert_eq!(r.body["extension"]["alias"], "os-consoles");
    assert_eq!(n.get("/extensions/nope").await.unwrap().status, 404);

    // Non-admins get 403 on the admin APIs.
    let (_, _) = c.project_user("p1", "alice", "pw", "member").await;
    let (alice, _) = c.login("alice", "pw", Some("p1")).await.unwrap();
    let alice = alice.clone_with_base(&format!("{}/v2.1", c.compute_url));
    for path in [
        format!("/os-hypervisors/{hid}"),
        format!("/os-hypervisors/{hid}/uptime"),
        "/os-hosts".to_string(),
        "/os-instance_usage_audit_log".to_string(),
    ] {
        assert_eq!(alice.get(&path).await.unwrap().status, 403, "{path}");
    }
    assert_eq!(alice.get("/extensions").await.unwrap().status, 200);
}

#[tokio::test]
async fn reset_state_force_delete_restore_and_server_subresources() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 128).await;
    let n = nova(&c, "2.1");
    let id = create(&nova(&c, "2.37"), "vm", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let act = |body: serde_json::Value| {
        let n = n.clone();
        let id = id.clone();
        async move {
            n.post(&format!("/servers/{id}/action"), &body)
                .await
                .unwrap()
        }
    };
    let r = act(json!({"os-resetState": {"state": "error"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(&n, &id, "ERROR").await;
    assert_eq!(
        act(json!({"os-resetState": {"state": "bogus"}}))
            .await
            .status,
        400
    );
    let r = act(json!({"os-resetState": {"state": "active"}})).await;
    assert_eq!(r.status, 202);
    wait_status(&n, &id, "ACTIVE").await;
    let r = act(json!({"restore": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(act(json!({"injectNetworkInfo": null})).await.status, 202);

    // The request id also comes as x-compute-request-id, and names the instance action.
    let r = n.get(&format!("/servers/{id}")).await.unwrap();
    let rid = r.header("x-compute-request-id").unwrap().to_string();
    assert_eq!(Some(rid.as_str()), r.header("x-openstack-request-id"));
    let r = act(json!({"os-stop": null})).await;
    let rid = r.header("x-compute-request-id").unwrap().to_string();
    let shown = n
        .get(&format!("/servers/{id}/os-instance-actions/{rid}"))
        .await
        .unwrap();
    assert_eq!(
        shown.body["instanceAction"]["action"], "stop",
        "{}",
        shown.body
    );
    wait_status(&n, &id, "SHUTOFF").await;
    let r = n.get(&format!("/servers/{id}/ips")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["addresses"].is_object());
    assert_eq!(
        n.get(&format!("/servers/{id}/ips/nonet"))
            .await
            .unwrap()
            .status,
        404
    );
    let r = n
        .get(&format!("/servers/{id}/os-server-password"))
        .await
        .unwrap();
    assert_eq!(r.body, json!({"password": ""}));
    let r = n
        .delete(&format!("/servers/{id}/os-server-password"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = n.get(&format!("/servers/{id}/diagnostics")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = nova(&c, "2.48")
        .get(&format!("/servers/{id}/diagnostics"))
        .await
        .unwrap();
    assert_eq!(r.body["state"], "shutdown", "{}", r.body);
    assert_eq!(r.body["num_cpus"], 1);

    // PUT and rebuild before 2.75 show only the base attributes; 2.57 adds user_data.
    let r = n
        .put(
            &format!("/servers/{id}"),
            Some(&json!({"server": {"name": "renamed"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.body["server"].as_object().unwrap();
    assert_eq!(s["name"], "renamed");
    assert!(
        !s.contains_key("OS-EXT-STS:vm_state") && !s.contains_key("key_name"),
        "{s:?}"
    );
    let r = nova(&c, "2.75")
        .put(
            &format!("/servers/{id}"),
            Some(&json!({"server": {"name": "again"}})),
        )
        .await
        .unwrap();
    assert!(
        r.body["server"]["OS-EXT-STS:vm_state"].is_string(),
        "{}",
        r.body
    );
    let r = nova(&c, "2.57")
        .post(
            &format!("/servers/{id}/action"),
            &json!({"rebuild": {"imageRef": image}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let s = r.body["server"].as_object().unwrap();
    assert!(
        s.contains_key("user_data") && s.contains_key("key_name"),
        "{s:?}"
    );
    assert!(!s.contains_key("OS-EXT-STS:task_state"), "{s:?}");
    wait_status(&n, &id, "SHUTOFF").await;

    let r = act(json!({"forceDelete": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_gone(&n, &id).await;
    assert_eq!(act(json!({"forceDelete": null})).await.status, 404);
    assert_eq!(act(json!({"restore": null})).await.status, 404);
}

#[tokio::test]
async fn the_v2_version_document_is_linked_from_the_version_list() {
    let c = TestCloud::start().await;
    let root = c.admin.clone_with_base(&c.compute_url);
    let list = root.get("/").await.unwrap();
    for v in list.body["versions"].as_array().unwrap() {
        let href = v["links"][0]["href"].as_str().unwrap();
        let path = href.strip_prefix(c.compute_url.as_str()).unwrap();
        let r = root.get(path).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["version"]["id"], v["id"]);
        assert_eq!(r.body["version"]["links"][0]["href"], href);
    }
}
