//! Nova's deprecated proxies (before 2.36) to the image API (`/images` and image metadata)
//! and the network API (`os-security-groups`, `os-security-group-rules`).

use ferro_testkit::TestCloud;
use serde_json::json;

use crate::servers::{image_and_flavor, nova};

/// The image proxy (before 2.36): Nova's view of the image API's images and their
/// properties as metadata; gone at later microversions.
#[tokio::test]
async fn the_image_proxy_shows_images_and_edits_their_properties() {
    let c = TestCloud::with_fake_hosts(1).await;
    let (image, _) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.35");

    let r = n.get("/images/detail").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let found = r.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == image.as_str())
        .cloned()
        .expect("the image is listed");
    assert_eq!(found["status"], "ACTIVE", "{found}");
    assert_eq!(found["progress"], 100);
    assert!(found["metadata"].is_object(), "{found}");
    let r = n.get("/images?name=nonesuch").await.unwrap();
    assert_eq!(r.body["images"], json!([]), "{}", r.body);
    let r = n.get(&format!("/images/{image}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["image"]["links"][2]["rel"], "alternate");

    // Properties as metadata: merge, set one, replace all, delete one.
    let meta = format!("/images/{image}/metadata");
    let r = n
        .post(
            &meta,
            &json!({"metadata": {"os_distro": "debian", "k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["os_distro"], "debian");
    let r = n
        .put(&format!("{meta}/k"), Some(&json!({"meta": {"k": "w"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = n.get(&format!("{meta}/k")).await.unwrap();
    assert_eq!(r.body, json!({"meta": {"k": "w"}}));
    let r = n
        .put(&format!("{meta}/k"), Some(&json!({"meta": {"other": "w"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = n
        .put(&meta, Some(&json!({"metadata": {"only": "this"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = n.get(&meta).await.unwrap();
    assert_eq!(r.body, json!({"metadata": {"only": "this"}}));
    assert_eq!(n.delete(&format!("{meta}/only")).await.unwrap().status, 204);
    assert_eq!(n.delete(&format!("{meta}/only")).await.unwrap().status, 404);
    assert_eq!(n.get(&format!("{meta}/only")).await.unwrap().status, 404);

    // Unknown images, later microversions, and delete.
    let r = n
        .get("/images/00000000-0000-0000-0000-000000000000")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(nova(&c, "2.36").get("/images").await.unwrap().status, 404);
    assert_eq!(nova(&c, "2.38").get(&meta).await.unwrap().status, 200);
    assert_eq!(nova(&c, "2.39").get(&meta).await.unwrap().status, 404);
    assert_eq!(
        n.delete(&format!("/images/{image}")).await.unwrap().status,
        204
    );
    assert_eq!(
        n.get(&format!("/images/{image}")).await.unwrap().status,
        404
    );
}

/// The security group proxy: Nova's view of the network API's groups and ingress rules,
/// upstream's checks of rule arguments, gone at 2.36.
#[tokio::test]
async fn the_security_group_proxy_manages_groups_and_ingress_rules() {
    let c = TestCloud::start().await;
    let n = nova(&c, "2.35");
    let r = n
        .post(
            "/os-security-groups",
            &json!({"security_group": {"name": "web", "description": "w"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let g = r.body["security_group"].clone();
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["name"], "web");
    // Neutron's default egress rules are not shown: ingress only.
    assert_eq!(g["rules"], json!([]), "{g}");

    let rule = |body: serde_json::Value| {
        let n = n.clone();
        async move {
            n.post(
                "/os-security-group-rules",
                &json!({ "security_group_rule": body }),
            )
            .await
            .unwrap()
        }
    };
    let r = rule(
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 22,
        "to_port": 22, "cidr": "10.0.0.0/8"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ssh = r.body["security_group_rule"].clone();
    assert_eq!(ssh["ip_range"]["cidr"], "10.0.0.0/8", "{ssh}");
    assert_eq!(ssh["from_port"], 22);
    assert_eq!(ssh["parent_group_id"], id.as_str());
    let r = rule(
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 22,
        "to_port": 22, "cidr": "10.0.0.0/8"}),
    )
    .await;
    assert_eq!(r.status, 400, "the same rule twice: {}", r.body);
    for bad in [
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 80, "to_port": 22}),
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 0, "to_port": 22}),
        json!({"parent_group_id": id, "ip_protocol": "icmp", "from_port": 300, "to_port": 0}),
        json!({"parent_group_id": id, "ip_protocol": "gre", "from_port": 1, "to_port": 2}),
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": "a", "to_port": 2}),
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 1, "to_port": 2,
            "cidr": "10.0.0.0/99"}),
        json!({"parent_group_id": id, "cidr": "10.0.0.0/8"}),
        json!({"parent_group_id": "not-a-uuid"}),
    ] {
        let r = rule(bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = rule(
        json!({"parent_group_id": "00000000-0000-0000-0000-000000000000",
        "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // A group rule without ports spans them all; the rule names its group.
    let r = rule(json!({"parent_group_id": id, "ip_protocol": "udp", "group_id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let udp = r.body["security_group_rule"].clone();
    assert_eq!(
        (udp["from_port"].clone(), udp["to_port"].clone()),
        (json!(1), json!(65535))
    );
    assert_eq!(udp["group"]["name"], "web", "{udp}");

    let r = n.get(&format!("/os-security-groups/{id}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["security_group"]["rules"].as_array().unwrap().len(),
        2
    );
    let r = n.get("/os-security-groups").await.unwrap();
    assert!(
        r.body["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == id.as_str()),
        "{}",
        r.body
    );
    let r = n
        .put(
            &format!("/os-security-groups/{id}"),
            Some(&json!({"security_group": {"name": "web2", "description": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["security_group"]["name"], "web2");

    let ssh_id = ssh["id"].as_str().unwrap();
    let r = n
        .delete(&format!("/os-security-group-rules/{ssh_id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let r = n
        .delete(&format!("/os-security-group-rules/{ssh_id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(n.get("/os-security-groups/abc").await.unwrap().status, 400);
    assert_eq!(
        nova(&c, "2.36")
            .get("/os-security-groups")
            .await
            .unwrap()
            .status,
        404
    );
    let r = n
        .delete(&format!("/os-security-groups/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let r = n.get(&format!("/os-security-groups/{id}")).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}
