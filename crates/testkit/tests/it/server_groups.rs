//! Server groups: the API's bodies per microversion, quotas, and the scheduler keeping an
//! anti-affinity group's servers apart and an affinity group's together.

use ferro_client::Client;
use serde_json::{Value, json};

use crate::servers::{image_and_flavor, nova, wait_hosts, wait_status};
use ferro_testkit::TestCloud;

async fn boot(
    n: &Client,
    name: &str,
    image: &str,
    flavor: &str,
    group: &str,
    count: i64,
) -> Vec<String> {
    let r = n
        .post(
            "/servers",
            &json!({"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                "networks": "none", "min_count": count},
                "os:scheduler_hints": {"group": group}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let list = n.get(&format!("/servers?name=^{name}")).await.unwrap();
    list.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn host(s: &Value) -> String {
    s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn anti_affinity_spreads_affinity_packs_and_a_full_group_fails_to_place() {
    let c = TestCloud::with_fake_hosts(2).await;
    wait_hosts(&c, 2).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.71");

    let r = n
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "apart", "policy": "anti-affinity"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let apart = r.body["server_group"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["server_group"]["rules"], json!({}));
    assert_eq!(r.body["server_group"]["members"], json!([]));

    let ids = boot(&n, "apart", &image, &flavor, &apart, 2).await;
    assert_eq!(ids.len(), 2);
    let a = wait_status(&n, &ids[0], "ACTIVE").await;
    let b = wait_status(&n, &ids[1], "ACTIVE").await;
    assert_ne!(host(&a), host(&b), "anti-affinity put both on {}", host(&a));
    assert_eq!(a["server_groups"], json!([apart]));
    // Both hosts hold a member: a third has nowhere to go.
    let third = boot(&n, "apart-third", &image, &flavor, &apart, 1).await;
    let t = wait_status(&n, &third[0], "ERROR").await;
    assert!(
        t["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host"),
        "{t}"
    );

    let g = n.get(&format!("/os-server-groups/{apart}")).await.unwrap();
    let mut members: Vec<String> = g.body["server_group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut all = vec![ids[0].clone(), ids[1].clone(), third[0].clone()];
    all.sort();
    assert_eq!(members, all);

    let r = n
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "together", "policy": "affinity"}}),
        )
        .await
        .unwrap();
    let together = r.body["server_group"]["id"].as_str().unwrap().to_string();
    let ids = boot(&n, "together", &image, &flavor, &together, 3).await;
    let hosts: Vec<String> = {
        let mut h = Vec::new();
        for id in &ids {
            h.push(host(&wait_status(&n, id, "ACTIVE").await));
        }
        h
    };
    assert!(hosts.iter().all(|h| h == &hosts[0]), "{hosts:?}");

    // A deleted server leaves its group's members.
    assert_eq!(
        n.delete(&format!("/servers/{}", ids[0]))
            .await
            .unwrap()
            .status,
        204
    );
    crate::servers::wait_gone(&n, &ids[0]).await;
    let g = n
        .get(&format!("/os-server-groups/{together}"))
        .await
        .unwrap();
    assert_eq!(
        g.body["server_group"]["members"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn groups_follow_upstream_bodies_quotas_and_faults() {
    let c = TestCloud::start().await;
    let old = nova(&c, "2.1");
    let r = old
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "g", "policies": ["affinity"]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let g = &r.body["server_group"];
    assert_eq!(g["policies"], json!(["affinity"]));
    assert_eq!(g["metadata"], json!({}));
    assert!(g.get("project_id").is_none() && g.get("policy").is_none());
    let id = g["id"].as_str().unwrap().to_string();
    // Soft policies only from 2.15; `policy` and `rules` from 2.64.
    let soft = json!({"server_group": {"name": "s", "policies": ["soft-affinity"]}});
    assert_eq!(
        old.post("/os-server-groups", &soft).await.unwrap().status,
        400
    );
    let r = nova(&c, "2.15")
        .post("/os-server-groups", &soft)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["server_group"]["project_id"].is_string());
    let new = nova(&c, "2.64");
    assert_eq!(
        new.post("/os-server-groups", &soft).await.unwrap().status,
        400
    );
    let r = new
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "r", "policy": "affinity",
            "rules": {"max_server_per_host": 2}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Only anti-affinity policy supports rules."
    );
    let r = new
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "r", "policy": "anti-affinity",
            "rules": {"max_server_per_host": "2"}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["server_group"]["rules"],
        json!({"max_server_per_host": 2})
    );
    for bad in [
        json!({"server_group": {"name": "", "policy": "affinity"}}),
        json!({"server_group": {"name": "x", "policy": "closeness"}}),
        json!({"server_group": {"name": "x", "policy": "anti-affinity",
            "rules": {"max_server_per_host": 0}}}),
        json!({"server_group": {"name": "x"}}),
    ] {
        assert_eq!(
            new.post("/os-server-groups", &bad).await.unwrap().status,
            400,
            "{bad}"
        );
    }

    let list = new.get("/os-server-groups?limit=2&offset=1").await.unwrap();
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["server_groups"].as_array().unwrap().len(), 2);
    assert_eq!(
        new.get("/os-server-groups?bogus=1").await.unwrap().status,
        200
    );
    assert_eq!(
        nova(&c, "2.75")
            .get("/os-server-groups?bogus=1")
            .await
            .unwrap()
            .status,
        400
    );

    // Ten groups by default; the eleventh is refused.
    for k in 3..10 {
        let r = new
            .post(
                "/os-server-groups",
                &json!({"server_group": {"name": format!("q{k}"), "policy": "affinity"}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{k}: {}", r.body);
    }
    let r = new
        .post(
            "/os-server-groups",
            &json!({"server_group": {"name": "q", "policy": "affinity"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Quota exceeded, too many server groups."
    );

    assert_eq!(
        new.delete(&format!("/os-server-groups/{id}"))
            .await
            .unwrap()
            .status,
        204
    );
    let r = new.get(&format!("/os-server-groups/{id}")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Instance group {id} could not be found.")
    );
    assert_eq!(
        new.delete(&format!("/os-server-groups/{id}"))
            .await
            .unwrap()
            .status,
        404
    );

    // A hint naming no group is a bad request.
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let r = nova(&c, "2.37")
        .post(
            "/servers",
            &json!({"server": {"name": "x", "imageRef": image, "flavorRef": flavor,
                "networks": "none"}, "os:scheduler_hints": {"group": id}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
}
