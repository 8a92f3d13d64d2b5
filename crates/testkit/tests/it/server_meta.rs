//! A server's metadata and tags sub-resources: merge, replace, single items, quotas on
//! the number of items, the state checks, and upstream's faults.

use serde_json::json;

use crate::servers::{create, image_and_flavor, nova, wait_hosts, wait_status};
use ferro_testkit::TestCloud;

#[tokio::test]
async fn metadata_merges_replaces_and_refuses_what_upstream_refuses() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    let id = create(&n, "meta", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let md = format!("/servers/{id}/metadata");

    let r = n.get(&md).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"metadata": {}}));
    let r = n
        .post(&md, &json!({"metadata": {"a": "1", "b": "2"}}))
        .await
        .unwrap();
    assert_eq!(
        r.body,
        json!({"metadata": {"a": "1", "b": "2"}}),
        "{}",
        r.body
    );
    let r = n.post(&md, &json!({"metadata": {"b": "3"}})).await.unwrap();
    assert_eq!(r.body["metadata"], json!({"a": "1", "b": "3"}));
    let r = n
        .put(&md, Some(&json!({"metadata": {"c": "4"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["metadata"], json!({"c": "4"}));
    assert_eq!(
        n.get(&md).await.unwrap().body["metadata"],
        json!({"c": "4"})
    );

    let r = n.get(&format!("{md}/c")).await.unwrap();
    assert_eq!(r.body, json!({"meta": {"c": "4"}}));
    let r = n.get(&format!("{md}/nope")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "Metadata item was not found"
    );

    let item = format!("{md}/d");
    let r = n
        .put(&item, Some(&json!({"meta": {"e": "5"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Request body and URI mismatch"
    );
    let r = n
        .put(&item, Some(&json!({"meta": {"d": "5", "e": "6"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = n
        .put(&item, Some(&json!({"meta": {"d": "5"}})))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"meta": {"d": "5"}}));
    assert_eq!(n.delete(&item).await.unwrap().status, 204);
    assert_eq!(n.delete(&item).await.unwrap().status, 404);

    // Keys: 1-255 of [a-zA-Z0-9-_:. ]; values up to 255 characters.
    for bad in [
        json!({"metadata": {"k".repeat(256): "v"}}),
        json!({"metadata": {"": "v"}}),
        json!({"metadata": {"a/b": "v"}}),
        json!({"metadata": {"k": "v".repeat(256)}}),
        json!({"metadata": {"k": 1}}),
        json!({"meta": {"k": "v"}}),
    ] {
        let r = n.post(&md, &bad).await.unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..129).map(|k| (format!("k{k}"), json!("v"))).collect();
    let r = n
        .put(&md, Some(&json!({ "metadata": many })))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Maximum number of metadata items exceeds 128"
    );
    assert_eq!(
        n.get(&md).await.unwrap().body["metadata"],
        json!({"c": "4"})
    );

    // Not while the server is in error (no host could take this one).
    let f = nova(&c, "2.1")
        .post(
            "/flavors",
            &json!({"flavor": {"name": "huge", "vcpus": 1, "ram": 64, "disk": 1000000}}),
        )
        .await
        .unwrap();
    let huge = f.body["flavor"]["id"].as_str().unwrap().to_string();
    let broken = create(&n, "broken", &image, &huge).await;
    wait_status(&n, &broken, "ERROR").await;
    let r = n
        .post(
            &format!("/servers/{broken}/metadata"),
            &json!({"metadata": {"a": "b"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        format!("Cannot 'update metadata' instance {broken} while it is in vm_state error")
    );
    let r = n.get("/servers/no-such-server/metadata").await.unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn tags_are_added_listed_checked_and_removed_from_2_26() {
    let c = TestCloud::with_fake_hosts(1).await;
    wait_hosts(&c, 1).await;
    let (image, flavor) = image_and_flavor(&c, 1, 64).await;
    let n = nova(&c, "2.37");
    let id = create(&n, "tagged", &image, &flavor).await;
    wait_status(&n, &id, "ACTIVE").await;
    let tags = format!("/servers/{id}/tags");

    assert_eq!(nova(&c, "2.25").get(&tags).await.unwrap().status, 404);
    let r = n
        .put(&tags, Some(&json!({"tags": ["a", "b", "a"]})))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"tags": ["a", "b"]}));
    let r = n.put(&format!("{tags}/c"), None).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.headers.get("location").is_some_and(|l| {
        l.to_str()
            .unwrap()
            .ends_with(&format!("/servers/{id}/tags/c"))
    }));
    assert_eq!(n.put(&format!("{tags}/c"), None).await.unwrap().status, 204);
    assert_eq!(n.get(&format!("{tags}/c")).await.unwrap().status, 204);
    let r = n.get(&format!("{tags}/x")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Server {id} has no tag 'x'")
    );
    assert_eq!(
        n.get(&tags).await.unwrap().body["tags"],
        json!(["a", "b", "c"])
    );
    assert_eq!(
        n.put(&format!("{tags}/a%2Cb"), None).await.unwrap().status,
        400
    );
    let r = n
        .put(&format!("{tags}/{}", "t".repeat(61)), None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let fifty_one: Vec<String> = (0..51).map(|t| format!("t{t}")).collect();
    let r = n
        .put(&tags, Some(&json!({ "tags": fifty_one })))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        n.put(&tags, Some(&json!({"tags": ["a/b"]})))
            .await
            .unwrap()
            .status,
        400
    );

    assert_eq!(n.delete(&format!("{tags}/c")).await.unwrap().status, 204);
    assert_eq!(n.delete(&format!("{tags}/c")).await.unwrap().status, 404);
    assert_eq!(n.delete(&tags).await.unwrap().status, 204);
    assert_eq!(n.get(&tags).await.unwrap().body, json!({"tags": []}));
    // The server body carries them from 2.26 too.
    n.put(&format!("{tags}/shown"), None).await.unwrap();
    let s = n.get(&format!("/servers/{id}")).await.unwrap();
    assert_eq!(s.body["server"]["tags"], json!(["shown"]));
}
