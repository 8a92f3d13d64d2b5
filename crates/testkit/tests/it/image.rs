//! The image API (Glance v2) as a client sees it: create, list, patch, data, visibility.

use ferro_testkit::TestCloud;
use ferro_testkit::ferro_client::Client;
use serde_json::{Value, json};

const PATCH: &str = "application/openstack-images-v2.1-json-patch";

/// A member of a fresh project, aimed at the image API.
async fn member(c: &TestCloud, project: &str, user: &str) -> Client {
    c.project_user(project, user, "pw", "member").await;
    let (client, _) = c.login(user, "pw", Some(project)).await.unwrap();
    client.clone_with_base(&c.image_url)
}

async fn create(client: &Client, body: Value) -> Value {
    let r = client.post("/v2/images", &body).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

async fn patch(client: &Client, id: &str, ops: Value) -> reqwest::Response {
    reqwest::Client::new()
        .patch(format!("{}/v2/images/{id}", client.base))
        .header("X-Auth-Token", client.token.clone().unwrap())
        .header("content-type", PATCH)
        .body(ops.to_string())
        .send()
        .await
        .unwrap()
}

async fn upload(client: &Client, id: &str, data: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}/v2/images/{id}/file", client.base))
        .header("X-Auth-Token", client.token.clone().unwrap())
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
}

async fn download(client: &Client, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v2/images/{id}/file", client.base))
        .header("X-Auth-Token", client.token.clone().unwrap())
        .send()
        .await
        .unwrap()
}

fn names(body: &Value) -> Vec<String> {
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn versions_are_listed_without_a_token() {
    let c = TestCloud::start().await;
    let anon = Client::new(&c.image_url);
    let r = anon.get("/").await.unwrap();
    assert_eq!(r.status, 300);
    let r = anon.get("/versions").await.unwrap();
    assert_eq!(r.status, 200);
    let v = r.body["versions"].as_array().unwrap();
    assert!(v.iter().any(|v| v["status"] == "CURRENT"));
    assert_eq!(
        v[0]["links"][0]["href"],
        json!(format!("{}/v2/", c.image_url))
    );
    // Everything else needs a token; the refusal is keystonemiddleware's body.
    let r = anon.get("/v2/images").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], 401);
}

#[tokio::test]
async fn the_catalog_names_glance_without_a_version() {
    let c = TestCloud::start().await;
    let image = c.admin_token["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "image")
        .cloned()
        .expect("image in catalog");
    assert_eq!(image["name"], "glance");
    let urls: Vec<&str> = image["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(urls.contains(&c.image_url.as_str()), "{urls:?}");
}

#[tokio::test]
async fn create_show_and_bad_formats() {
    let c = TestCloud::start().await;
    let m = member(&c, "alpha", "amy").await;
    let img = create(
        &m,
        json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
               "tags": ["a"], "os_distro": "cirros", "min_ram": 64}),
    )
    .await;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["os_distro"], "cirros");
    assert_eq!(img["tags"], json!(["a"]));
    assert!(img["checksum"].is_null() && img["size"].is_null());
    let id = img["id"].as_str().unwrap();
    assert_eq!(img["self"], json!(format!("/v2/images/{id}")));
    let r = m.get(&format!("/v2/images/{id}")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "cirros");
    assert_eq!(r.body["min_ram"], 64);

    for bad in [
        json!({"disk_format": "qcow3"}),
        json!({"container_format": "crate"}),
        json!({"min_disk": -1}),
        json!({"visibility": "secret"}),
        json!({"hw_x": 5}),
        json!({"id": "not-a-uuid"}),
    ] {
        let r = m.post("/v2/images", &bad).await.unwrap();
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert_eq!(r.body["code"], "400 Bad Request");
    }
    for forbidden in [
        json!({"status": "active"}),
        json!({"checksum": "x"}),
        json!({"self": "x"}),
    ] {
        let r = m.post("/v2/images", &forbidden).await.unwrap();
        assert_eq!(r.status, 403, "{forbidden}: {:?}", r.body);
    }
    // Members may not publish; admins may.
    let r = m
        .post("/v2/images", &json!({"visibility": "public"}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let admin = c.admin.clone_with_base(&c.image_url);
    let p = create(&admin, json!({"name": "pub", "visibility": "public"})).await;
    assert_eq!(p["visibility"], "public");
    // A chosen id is kept; reusing it is a conflict.
    let fixed = "b2173dd3-7ad6-4362-baa6-a68bce3565cb";
    create(&m, json!({"id": fixed})).await;
    let r = m.post("/v2/images", &json!({"id": fixed})).await.unwrap();
    assert_eq!(r.status, 409);
    let r = m.get("/v2/images/does-not-exist").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body["title"], "Not Found");
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let c = TestCloud::start().await;
    let m = member(&c, "alpha", "amy").await;
    for (name, disk, tag) in [
        ("img-a", "qcow2", "x"),
        ("img-b", "raw", "y"),
        ("img-c", "qcow2", "x"),
        ("img-d", "iso", "y"),
        ("img-e", "qcow2", "y"),
    ] {
        create(
            &m,
            json!({"name": name, "disk_format": disk, "container_format": "bare", "tags": [tag]}),
        )
        .await;
    }
    let r = m
        .get("/v2/images?sort_key=name&sort_dir=asc")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        names(&r.body),
        ["img-a", "img-b", "img-c", "img-d", "img-e"]
    );
    assert_eq!(r.body["schema"], "/v2/schemas/images");
    assert!(r.body.get("next").is_none());

    let r = m
        .get("/v2/images?disk_format=qcow2&sort=name:desc")
        .await
        .unwrap();
    assert_eq!(names(&r.body), ["img-e", "img-c", "img-a"]);
    let r = m.get("/v2/images?tag=y&name=img-b").await.unwrap();
    assert_eq!(names(&r.body), ["img-b"]);
    let r = m.get("/v2/images?tag=x&tag=y").await.unwrap();
    assert!(names(&r.body).is_empty());
    let r = m.get("/v2/images?status=active").await.unwrap();
    assert!(names(&r.body).is_empty());
    let r = m
        .get("/v2/images?visibility=shared&container_format=bare")
        .await
        .unwrap();
    assert_eq!(names(&r.body).len(), 5);

    // Pages of two, following `next` links to the end.
    let mut seen = Vec::new();
    let mut path = "/v2/images?sort_key=name&sort_dir=asc&limit=2".to_string();
    loop {
        let r = m.get(&path).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(
            r.body["first"],
            "/v2/images?sort_key=name&sort_dir=asc&limit=2"
        );
        seen.extend(names(&r.body));
        match r.body["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["img-a", "img-b", "img-c", "img-d", "img-e"]);

    for bad in [
        "/v2/images?sort_key=colour",
        "/v2/images?sort_dir=sideways",
        "/v2/images?limit=-1",
        "/v2/images?marker=00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(m.get(bad).await.unwrap().status, 400, "{bad}");
    }
}

#[tokio::test]
async fn patch_properties_tags_and_read_only_fields() {
    let c = TestCloud::start().await;
    let m = member(&c, "alpha", "amy").await;
    let img = create(&m, json!({"name": "one", "hw_a": "1"})).await;
    let id = img["id"].as_str().unwrap();

    let r = patch(
        &m,
        id,
        json!([
            {"op": "replace", "path": "/name", "value": "two"},
            {"op": "add", "path": "/min_disk", "value": 3},
            {"op": "add", "path": "/os_distro", "value": "debian"},
            {"op": "remove", "path": "/hw_a"},
            {"op": "replace", "path": "/tags", "value": ["t1", "t2"]},
            {"op": "replace", "path": "/protected", "value": true},
        ]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "two");
    assert_eq!(body["min_disk"], 3);
    assert_eq!(body["os_distro"], "debian");
    assert!(body.get("hw_a").is_none());
    assert_eq!(body["tags"], json!(["t1", "t2"]));
    assert_eq!(body["protected"], true);

    for ro in ["id", "checksum", "status", "size", "os_hash_value"] {
        let r = patch(
            &m,
            id,
            json!([{"op": "replace", "path": format!("/{ro}"), "value": "x"}]),
        )
        .await;
        assert_eq!(r.status(), 403, "{ro}");
    }
    let r = patch(&m, id, json!([{"op": "remove", "path": "/name"}])).await;
    assert_eq!(r.status(), 403);
    let r = patch(
        &m,
        id,
        json!([{"op": "replace", "path": "/nope", "value": "x"}]),
    )
    .await;
    assert_eq!(r.status(), 409);
    let r = patch(
        &m,
        id,
        json!([{"op": "replace", "path": "/disk_format", "value": "vhd9"}]),
    )
    .await;
    assert_eq!(r.status(), 400);
    // Nothing of a refused patch is applied.
    let r = patch(
        &m,
        id,
        json!([{"op": "replace", "path": "/name", "value": "three"},
               {"op": "replace", "path": "/status", "value": "active"}]),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        m.get(&format!("/v2/images/{id}")).await.unwrap().body["name"],
        "two"
    );
    // The JSON-patch media type is required.
    let r = m
        .patch(&format!("/v2/images/{id}"), &json!([]))
        .await
        .unwrap();
    assert_eq!(r.status, 415);

    // Tags API.
    assert_eq!(
        m.put(&format!("/v2/images/{id}/tags/t3"), None)
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        m.put(&format!("/v2/images/{id}/tags/t3"), None)
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        m.delete(&format!("/v2/images/{id}/tags/t1"))
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        m.delete(&format!("/v2/images/{id}/tags/t1"))
            .await
            .unwrap()
            .status,
        404
    );
    let tags = m.get(&format!("/v2/images/{id}")).await.unwrap().body["tags"].clone();
    assert_eq!(tags, json!(["t2", "t3"]));

    // Protected images cannot be deleted until unprotected.
    assert_eq!(
        m.delete(&format!("/v2/images/{id}")).await.unwrap().status,
        403
    );
    let r = patch(
        &m,
        id,
        json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        m.delete(&format!("/v2/images/{id}")).await.unwrap().status,
        204
    );
    assert_eq!(
        m.get(&format!("/v2/images/{id}")).await.unwrap().status,
        404
    );
    assert_eq!(
        m.delete(&format!("/v2/images/{id}")).await.unwrap().status,
        404
    );
}

#[tokio::test]
async fn upload_and_download_with_checksums() {
    let c = TestCloud::start().await;
    let m = member(&c, "alpha", "amy").await;
    let img = create(
        &m,
        json!({"name": "data", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let id = img["id"].as_str().unwrap();
    // No data yet: 204.
    assert_eq!(download(&m, id).await.status(), 204);

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = upload(&m, id, data.clone()).await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let shown = m.get(&format!("/v2/images/{id}")).await.unwrap().body;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["size"], data.len() as u64);
    let checksum = shown["checksum"].as_str().unwrap().to_string();
    assert_eq!(checksum.len(), 32);
    assert_eq!(shown["os_hash_algo"], "sha512");
    assert_eq!(shown["os_hash_value"].as_str().unwrap().len(), 128);

    let r = download(&m, id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-md5"], checksum.as_str());
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..]);

    // Ranges: a slice with 206 and Content-Range; past the end is 416.
    let ranged = |range: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/v2/images/{id}/file", m.base))
            .header("X-Auth-Token", m.token.clone().unwrap())
            .header("range", range)
            .send()
    };
    let r = ranged("bytes=10-19").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/3000000");
    assert_eq!(r.bytes().await.unwrap()[..], data[10..20]);
    let r = ranged("bytes=-5").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap()[..], data[data.len() - 5..]);
    let r = ranged("bytes=3000000-").await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */3000000");

    // Uploading again to an active image is a conflict.
    assert_eq!(upload(&m, id, b"again".to_vec()).await.status(), 409);
    // Formats are fixed once data is in.
    let r = patch(
        &m,
        id,
        json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
    )
    .await;
    assert_eq!(r.status(), 403);

    // Deactivated: only admins download.
    let r = m
        .post(&format!("/v2/images/{id}/actions/deactivate"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        m.get(&format!("/v2/images/{id}")).await.unwrap().body["status"],
        "deactivated"
    );
    assert_eq!(download(&m, id).await.status(), 403);
    let admin = c.admin.clone_with_base(&c.image_url);
    assert_eq!(download(&admin, id).await.status(), 200);
    let r = m
        .post(&format!("/v2/images/{id}/actions/reactivate"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(download(&m, id).await.status(), 200);

    // An image without formats takes no data; a queued one cannot be deactivated.
    let bare = create(&m, json!({"name": "noformat"})).await;
    let bid = bare["id"].as_str().unwrap();
    assert_eq!(upload(&m, bid, b"x".to_vec()).await.status(), 400);
    let r = m
        .post(&format!("/v2/images/{bid}/actions/deactivate"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // Deleting removes the data file.
    assert_eq!(
        m.delete(&format!("/v2/images/{id}")).await.unwrap().status,
        204
    );
    let dir = c.config.state_dir.join("images");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[tokio::test]
async fn an_interrupted_upload_leaves_the_image_queued_and_no_file() {
    let c = TestCloud::start().await;
    let m = member(&c, "alpha", "amy").await;
    let img = create(
        &m,
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let id = img["id"].as_str().unwrap().to_string();
    // Announce more bytes than are sent, then hang up.
    let addr = c.cloud.image_addr;
    let token = m.token.clone().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&[1u8; 1000]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let dir = c.config.state_dir.join("images");
    let mut status = String::new();
    for _ in 0..50 {
        status = m.get(&format!("/v2/images/{id}")).await.unwrap().body["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == "queued" && std::fs::read_dir(&dir).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "queued");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // And it can be uploaded afterwards.
    assert_eq!(upload(&m, &id, b"fine".to_vec()).await.status(), 204);
}

#[tokio::test]
async fn other_projects_cannot_see_private_or_shared_images() {
    let c = TestCloud::start().await;
    let a = member(&c, "alpha", "amy").await;
    let b = member(&c, "beta", "ben").await;
    let private = create(&a, json!({"name": "mine", "visibility": "private"})).await;
    let shared = create(&a, json!({"name": "ours"})).await;
    let community = create(&a, json!({"name": "everyone", "visibility": "community"})).await;
    for img in [&private, &shared] {
        let id = img["id"].as_str().unwrap();
        assert_eq!(
            b.get(&format!("/v2/images/{id}")).await.unwrap().status,
            404
        );
        assert_eq!(
            b.delete(&format!("/v2/images/{id}")).await.unwrap().status,
            404
        );
        let r = patch(
            &b,
            id,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
        assert_eq!(r.status(), 404);
        assert_eq!(download(&b, id).await.status(), 404);
    }
    // Community images are visible, not listed by default, and not writable by others.
    let cid = community["id"].as_str().unwrap();
    assert_eq!(
        b.get(&format!("/v2/images/{cid}")).await.unwrap().status,
        200
    );
    let r = patch(
        &b,
        cid,
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(names(&b.get("/v2/images").await.unwrap().body).is_empty());
    let r = b.get("/v2/images?visibility=community").await.unwrap();
    assert_eq!(names(&r.body), ["everyone"]);
    // The owner lists all three; the admin sees them too.
    assert_eq!(names(&a.get("/v2/images").await.unwrap().body).len(), 3);
    let admin = c.admin.clone_with_base(&c.image_url);
    let pid = private["id"].as_str().unwrap();
    assert_eq!(
        admin
            .get(&format!("/v2/images/{pid}"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn readers_look_but_do_not_touch() {
    let c = TestCloud::start().await;
    let a = member(&c, "alpha", "amy").await;
    let img = create(&a, json!({"name": "r"})).await;
    let id = img["id"].as_str().unwrap();
    let pid = img["owner"].as_str().unwrap();
    let (_, uid) = c.project_user("gamma", "rita", "pw", "reader").await;
    let rid = c.role_id("reader").await;
    let g = c
        .admin
        .put(&format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), None)
        .await
        .unwrap();
    assert_eq!(g.status, 204);
    let (r, _) = c.login("rita", "pw", Some("alpha")).await.unwrap();
    let r = r.clone_with_base(&c.image_url);
    assert_eq!(
        r.get(&format!("/v2/images/{id}")).await.unwrap().status,
        200
    );
    assert_eq!(r.get("/v2/images").await.unwrap().status, 200);
    assert_eq!(r.post("/v2/images", &json!({})).await.unwrap().status, 403);
    assert_eq!(
        r.delete(&format!("/v2/images/{id}")).await.unwrap().status,
        403
    );
    let p = patch(
        &r,
        id,
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    )
    .await;
    assert_eq!(p.status(), 403);
}

#[tokio::test]
async fn schemas_are_served() {
    let c = TestCloud::start().await;
    let admin = c.admin.clone_with_base(&c.image_url);
    let r = admin.get("/v2/schemas/image").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "image");
    assert!(
        r.body["properties"]["disk_format"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("qcow2"))
    );
    let r = admin.get("/v2/schemas/images").await.unwrap();
    assert_eq!(r.body["name"], "images");
}

#[tokio::test]
async fn every_image_route_needs_a_token() {
    let c = TestCloud::start().await;
    let id = "b2173dd3-7ad6-4362-baa6-a68bce3565cb";
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v2/images".to_string()),
        ("POST", "/v2/images".to_string()),
        ("GET", format!("/v2/images/{id}")),
        ("PATCH", format!("/v2/images/{id}")),
        ("DELETE", format!("/v2/images/{id}")),
        ("PUT", format!("/v2/images/{id}/file")),
        ("GET", format!("/v2/images/{id}/file")),
        ("PUT", format!("/v2/images/{id}/tags/t")),
        ("DELETE", format!("/v2/images/{id}/tags/t")),
        ("POST", format!("/v2/images/{id}/actions/deactivate")),
        ("POST", format!("/v2/images/{id}/actions/reactivate")),
        ("GET", format!("/v2/images/{id}/members")),
        ("POST", format!("/v2/images/{id}/members")),
        ("GET", format!("/v2/images/{id}/members/p")),
        ("PUT", format!("/v2/images/{id}/members/p")),
        ("DELETE", format!("/v2/images/{id}/members/p")),
        ("GET", "/v2/schemas/member".to_string()),
        ("GET", "/v2/schemas/members".to_string()),
        ("GET", "/v2/schemas/image".to_string()),
        ("GET", "/v2/schemas/images".to_string()),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{}{path}", c.image_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn shared_images_reach_members_once_accepted() {
    let c = TestCloud::start().await;
    let a = member(&c, "alpha", "amy").await;
    let b = member(&c, "beta", "ben").await;
    let (bob, body) = c.login("ben", "pw", Some("beta")).await.unwrap();
    drop(bob);
    let beta = body["token"]["project"]["id"].as_str().unwrap().to_string();
    let img = create(&a, json!({"name": "shared-one"})).await;
    let id = img["id"].as_str().unwrap();
    let members = format!("/v2/images/{id}/members");

    // Only shared images have members; only the owner adds them.
    let private = create(&a, json!({"name": "p", "visibility": "private"})).await;
    let pid = private["id"].as_str().unwrap();
    let r = a
        .post(
            &format!("/v2/images/{pid}/members"),
            &json!({"member": beta}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(a.post(&members, &json!({})).await.unwrap().status, 400);

    let r = a.post(&members, &json!({"member": beta})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["member_id"], json!(beta));
    assert_eq!(
        a.post(&members, &json!({"member": beta}))
            .await
            .unwrap()
            .status,
        409
    );

    // Pending: the member sees the image but does not list it.
    assert_eq!(
        b.get(&format!("/v2/images/{id}")).await.unwrap().status,
        200
    );
    assert!(names(&b.get("/v2/images").await.unwrap().body).is_empty());
    let r = b.get("/v2/images?member_status=pending").await.unwrap();
    assert_eq!(names(&r.body), ["shared-one"]);
    // The owner cannot accept for the member.
    let mine = format!("{members}/{beta}");
    let r = a
        .put(&mine, Some(&json!({"status": "accepted"})))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = b
        .put(&mine, Some(&json!({"status": "maybe"})))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = b
        .put(&mine, Some(&json!({"status": "accepted"})))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "accepted");
    assert_eq!(
        names(&b.get("/v2/images").await.unwrap().body),
        ["shared-one"]
    );
    let r = b.get("/v2/images?visibility=shared").await.unwrap();
    assert_eq!(names(&r.body), ["shared-one"]);
    // Members read but do not write the image.
    let r = patch(
        &b,
        id,
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    )
    .await;
    assert_eq!(r.status(), 403);
    // Both sides see the membership.
    let r = a.get(&members).await.unwrap();
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["schema"], "/v2/schemas/members");
    assert_eq!(b.get(&mine).await.unwrap().body["status"], "accepted");
    assert_eq!(
        b.get(&members).await.unwrap().body["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A third project sees nothing.
    let g = member(&c, "gamma", "gus").await;
    assert_eq!(
        g.get(&format!("/v2/images/{id}")).await.unwrap().status,
        404
    );
    assert_eq!(g.get(&mine).await.unwrap().status, 404);

    // The owner stops sharing: the member loses the image.
    assert_eq!(b.delete(&mine).await.unwrap().status, 403);
    assert_eq!(a.delete(&mine).await.unwrap().status, 204);
    assert_eq!(a.delete(&mine).await.unwrap().status, 404);
    assert_eq!(
        b.get(&format!("/v2/images/{id}")).await.unwrap().status,
        404
    );
    assert_eq!(
        a.get("/v2/schemas/member").await.unwrap().body["name"],
        "member"
    );
}

#[tokio::test]
async fn os_glance_properties_are_reserved_and_size_filters_exactly() {
    let c = TestCloud::start().await;
    let alice = member(&c, "p-res", "res-alice").await;
    let body = json!({"name": "r", "disk_format": "raw", "container_format": "bare", "os_glance_foo": "bar"});
    assert_eq!(alice.post("/v2/images", &body).await.unwrap().status, 403);
    let img = create(
        &alice,
        json!({"name": "sized", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let id = img["id"].as_str().unwrap();
    let r = patch(
        &alice,
        id,
        json!([{"op": "add", "path": "/os_glance_x", "value": "y"}]),
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        upload(&alice, id, vec![7u8; 1234]).await.status().as_u16(),
        204
    );
    create(
        &alice,
        json!({"name": "other", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let r = alice.get("/v2/images?size=1234").await.unwrap();
    assert_eq!(names(&r.body), ["sized"]);
    assert!(names(&alice.get("/v2/images?size=1235").await.unwrap().body).is_empty());
}

#[tokio::test]
async fn concurrent_patches_and_tag_adds_all_apply() {
    let c = TestCloud::start().await;
    let a = c.admin.clone_with_base(&c.image_url);
    let id = create(&a, json!({"name": "busy"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut work = Vec::new();
    for i in 0..12 {
        let (a, id) = (a.clone(), id.clone());
        work.push(tokio::spawn(async move {
            let op = json!([{"op": "add", "path": format!("/k{i}"), "value": "v"}]);
            assert_eq!(patch(&a, &id, op).await.status(), 200);
            let r = a
                .put(&format!("/v2/images/{id}/tags/t{i}"), None)
                .await
                .unwrap();
            assert_eq!(r.status, 204);
        }));
    }
    for w in work {
        w.await.unwrap();
    }
    let img = a.get(&format!("/v2/images/{id}")).await.unwrap().body;
    for i in 0..12 {
        assert_eq!(img[format!("k{i}")], "v", "property k{i} lost: {img}");
    }
    assert_eq!(img["tags"].as_array().unwrap().len(), 12, "{img}");
}
