//! The image proxy (upstream's deprecated `/images` and image metadata API).

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
