//! Interoperable image import (stage + glance-direct, web-download), the tasks API, the
//! size cap and Glance's comparison filters, as a client sees them.

use std::time::Duration;

use ferro_testkit::TestCloud;
use ferro_testkit::ferro_client::Client;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn image_admin(c: &TestCloud) -> Client {
    c.admin.clone_with_base(&c.image_url)
}

async fn create(client: &Client, body: Value) -> String {
    let r = client.post("/v2/images", &body).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn put_data(client: &Client, path: &str, data: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}{path}", client.base))
        .header("X-Auth-Token", client.token.clone().unwrap())
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
}

/// Serves `body` with status `status` to every GET on an ephemeral port; returns its URL.
async fn web_server(status: u16, body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/image.qcow2")
}

/// Polls image `id` until `done` holds for it (or 10 s pass), and returns it.
async fn wait_image(client: &Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let r = client.get(&format!("/v2/images/{id}")).await.unwrap();
        if done(&r.body) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} never reached the wanted state");
}

async fn wait_task(client: &Client, id: &str) -> Value {
    for _ in 0..200 {
        let r = client.get(&format!("/v2/tasks/{id}")).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        if matches!(r.body["status"].as_str(), Some("success" | "failure")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never ended");
}

fn no_files_left(c: &TestCloud, id: &str) {
    let dir = &c.config.state_dir;
    for path in [
        dir.join("images").join(id),
        dir.join("image-staging").join(id),
    ] {
        assert!(!path.exists(), "{path:?} was left behind");
    }
}

#[tokio::test]
async fn import_methods_and_stores_are_advertised() {
    let c = TestCloud::start().await;
    let a = image_admin(&c);
    let r = a.get("/v2/info/import").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["import-methods"]["value"],
        json!(["glance-direct", "web-download"])
    );
    let r = a.get("/v2/info/stores").await.unwrap();
    assert_eq!(r.body["stores"][0]["id"], "file");
    assert_eq!(r.body["stores"][0]["default"], "true");
    // Creating an image tells the client how it may import (openstacksdk reads this).
    let r = a.post("/v2/images", &json!({"name": "h"})).await.unwrap();
    assert_eq!(
        r.header("openstack-image-import-methods"),
        Some("glance-direct,web-download")
    );
    assert_eq!(r.header("openstack-image-store-ids"), Some("file"));
    assert_eq!(
        c.anonymous()
            .clone_with_base(&c.image_url)
            .get("/v2/info/import")
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test]
async fn stage_then_glance_direct_import_makes_the_image_active() {
    let c = TestCloud::start().await;
    let a = image_admin(&c);
    let id = create(
        &a,
        json!({"name": "gd", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = put_data(&a, &format!("/v2/images/{id}/stage"), data.clone()).await;
    assert_eq!(r.status(), 204);
    let img = a.get(&format!("/v2/images/{id}")).await.unwrap().body;
    assert_eq!(img["status"], "uploading");
    assert_eq!(img["size"], 300_000);
    // Staging twice, or uploading to a staged image, is a state conflict.
    assert_eq!(
        put_data(&a, &format!("/v2/images/{id}/stage"), vec![1])
            .await
            .status(),
        409
    );
    assert_eq!(
        put_data(&a, &format!("/v2/images/{id}/file"), vec![1])
            .await
            .status(),
        409
    );

    let r = a
        .post(
            &format!("/v2/images/{id}/import"),
            &json!({"method": {"name": "glance-direct"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:?}", r.body);
    let request_id = r.header("x-openstack-request-id").unwrap().to_string();
    let img = wait_image(&a, &id, |i| i["status"] == "active").await;
    assert_eq!(img["stores"], "file");
    assert_eq!(img["size"], 300_000);
    assert_eq!(img["os_hash_algo"], "sha512");
    assert!(img.get("os_glance_import_task").is_none());
    let got = reqwest::Client::new()
        .get(format!("{}/v2/images/{id}/file", a.base))
        .header("X-Auth-Token", a.token.clone().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.to_vec(), data);

    let tasks = a.get(&format!("/v2/images/{id}/tasks")).await.unwrap().body;
    let t = &tasks["tasks"][0];
    assert_eq!(t["type"], "api_image_import");
    assert_eq!(t["request_id"], request_id.as_str());
    assert_eq!(t["input"]["import_req"]["method"]["name"], "glance-direct");
    // The image task finishes just after the image goes active.
    let t = wait_task(&a, t["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "success");
    assert_eq!(t["result"]["image_id"], id.as_str());
    assert!(t["expires_at"].is_string());
    assert!(!c.config.state_dir.join("image-staging").join(&id).exists());
}

#[tokio::test]
async fn web_download_imports_and_a_failed_fetch_returns_the_image_to_queued() {
    let c = TestCloud::start_with(|cfg| cfg.image.web_download_allowed_ports = vec![])
        .await
        .unwrap();
    let a = image_admin(&c);
    let data = b"QFI\xfb pretend qcow2".to_vec();
    let url = web_server(200, data.clone()).await;
    let id = create(
        &a,
        json!({"name": "wd", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let r = a
        .post(
            &format!("/v2/images/{id}/import"),
            &json!({"method": {"name": "web-download", "uri": url}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:?}", r.body);
    let img = wait_image(&a, &id, |i| i["status"] == "active").await;
    assert_eq!(img["size"], data.len());

    let missing = web_server(404, Vec::new()).await;
    let id = create(
        &a,
        json!({"name": "wd2", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let r = a
        .post(
            &format!("/v2/images/{id}/import"),
            &json!({"method": {"name": "web-download", "uri": missing}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let img = wait_image(&a, &id, |i| i["os_glance_failed_import"] == "file").await;
    assert_eq!(img["status"], "queued");
    let tasks = a.get(&format!("/v2/images/{id}/tasks")).await.unwrap().body;
    let t = wait_task(&a, tasks["tasks"][0]["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "failure");
    assert!(t["message"].as_str().unwrap().contains("404"), "{t}");
    no_files_left(&c, &id);
}

#[tokio::test]
async fn bad_import_requests_get_glance_faults() {
    let c = TestCloud::start().await;
    let a = image_admin(&c);
    let id = create(
        &a,
        json!({"name": "x", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let imp = |body: Value| {
        let a = a.clone();
        let id = id.clone();
        async move {
            a.post(&format!("/v2/images/{id}/import"), &body)
                .await
                .unwrap()
        }
    };
    assert_eq!(imp(json!({})).await.status, 400);
    assert_eq!(imp(json!({"method": {}})).await.status, 400);
    let r = imp(json!({"method": {"name": "copy-image"}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.to_string().contains("Unknown import method name"),
        "{:?}",
        r.body
    );
    assert_eq!(
        imp(json!({"method": {"name": "glance-direct"}, "all_stores": "yes"}))
            .await
            .status,
        400
    );
    // Not staged yet.
    assert_eq!(
        imp(json!({"method": {"name": "glance-direct"}}))
            .await
            .status,
        409
    );
    // Default port filtering allows 80 and 443 only; other schemes never.
    let r =
        imp(json!({"method": {"name": "web-download", "uri": "http://127.0.0.1:8080/x"}})).await;
    assert_eq!(r.status, 400);
    assert!(r.body.to_string().contains("does not pass filtering"));
    assert_eq!(
        imp(json!({"method": {"name": "web-download", "uri": "file:///etc/passwd"}}))
            .await
            .status,
        400
    );
    assert_eq!(
        imp(json!({"method": {"name": "web-download", "uri": "http://h/x"}, "stores": ["ceph"]}))
            .await
            .status,
        409
    );
    let nf = a
        .post(
            "/v2/images/00000000-0000-0000-0000-000000000000/import",
            &json!({"method": {"name": "glance-direct"}}),
        )
        .await
        .unwrap();
    assert_eq!(nf.status, 404);
    // No formats: 409 before anything is recorded.
    let bare = create(&a, json!({"name": "noformat"})).await;
    let r = a
        .post(
            &format!("/v2/images/{bare}/import"),
            &json!({"method": {"name": "web-download", "uri": "http://h/x"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    let img = a.get(&format!("/v2/images/{id}")).await.unwrap().body;
    assert_eq!(img["status"], "queued");
    let tasks = a.get(&format!("/v2/images/{id}/tasks")).await.unwrap().body;
    assert_eq!(tasks["tasks"], json!([]));
}

#[tokio::test]
async fn the_tasks_api_is_for_admins_and_imports_from_a_url() {
    let c = TestCloud::start_with(|cfg| cfg.image.web_download_allowed_ports = vec![])
        .await
        .unwrap();
    let a = image_admin(&c);
    let url = web_server(200, vec![7u8; 1000]).await;
    let body = json!({"type": "import", "input": {
        "import_from": url, "import_from_format": "qcow2",
        "image_properties": {"name": "from-task", "disk_format": "qcow2", "container_format": "bare"}}});
    let r = a.post("/v2/tasks", &body).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["schema"], "/v2/schemas/task");
    let t = wait_task(&a, r.body["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "success", "{t}");
    let image_id = t["result"]["image_id"].as_str().unwrap();
    let img = a.get(&format!("/v2/images/{image_id}")).await.unwrap().body;
    assert_eq!(img["status"], "active");
    assert_eq!(img["name"], "from-task");
    assert_eq!(img["size"], 1000);

    // An unreachable source fails the task and leaves no image behind.
    let bad = json!({"type": "import", "input": {
        "import_from": "http://no-such-host.invalid/x.qcow2", "import_from_format": "qcow2",
        "image_properties": {"name": "never", "disk_format": "qcow2", "container_format": "bare"}}});
    let r = a.post("/v2/tasks", &bad).await.unwrap();
    assert_eq!(r.status, 201);
    let t = wait_task(&a, r.body["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "failure");
    let listed = a.get("/v2/images?name=never").await.unwrap().body;
    assert_eq!(listed["images"], json!([]));

    let list = a.get("/v2/tasks?limit=1").await.unwrap();
    assert_eq!(list.status, 200);
    assert_eq!(list.body["tasks"].as_array().unwrap().len(), 1);
    assert!(list.body["tasks"][0].get("input").is_none());
    assert!(list.body["next"].as_str().unwrap().contains("marker="));
    assert_eq!(a.get("/v2/tasks?status=bogus").await.unwrap().status, 400);
    assert_eq!(a.get("/v2/tasks/no-such-task").await.unwrap().status, 404);
    assert_eq!(
        a.delete(&format!("/v2/tasks/{}", t["id"].as_str().unwrap()))
            .await
            .unwrap()
            .status,
        405
    );
    assert_eq!(
        a.post("/v2/tasks", &json!({"type": "import"}))
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        a.post(
            "/v2/tasks",
            &json!({"type": "import", "input": {"import_from": "ftp://x/y"}})
        )
        .await
        .unwrap()
        .status,
        400
    );
    assert_eq!(
        a.get("/v2/schemas/tasks").await.unwrap().body["name"],
        "tasks"
    );

    c.project_user("tp", "tu", "pw", "member").await;
    let (m, _) = c.login("tu", "pw", Some("tp")).await.unwrap();
    let m = m.clone_with_base(&c.image_url);
    assert_eq!(m.get("/v2/tasks").await.unwrap().status, 403);
    assert_eq!(m.post("/v2/tasks", &body).await.unwrap().status, 403);
}

#[tokio::test]
async fn images_over_the_size_cap_are_refused_with_nothing_left() {
    let c = TestCloud::start_with(|cfg| cfg.image.size_cap = 1000)
        .await
        .unwrap();
    let a = image_admin(&c);
    let id = create(
        &a,
        json!({"name": "big", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let r = put_data(&a, &format!("/v2/images/{id}/file"), vec![0u8; 1001]).await;
    assert_eq!(r.status(), 413);
    let r = put_data(&a, &format!("/v2/images/{id}/stage"), vec![0u8; 5000]).await;
    assert_eq!(r.status(), 413);
    let img = a.get(&format!("/v2/images/{id}")).await.unwrap().body;
    assert_eq!(img["status"], "queued");
    no_files_left(&c, &id);
    assert_eq!(
        put_data(&a, &format!("/v2/images/{id}/file"), vec![0u8; 1000])
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn time_and_in_filters_follow_glance_operators() {
    let c = TestCloud::start().await;
    let a = image_admin(&c);
    let first = create(&a, json!({"name": "t1", "disk_format": "raw"})).await;
    let show = a.get(&format!("/v2/images/{first}")).await.unwrap().body;
    let created = show["created_at"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(&a, json!({"name": "t2", "disk_format": "qcow2"})).await;
    create(&a, json!({"name": "t,3", "disk_format": "iso"})).await;
    let names = |b: Value| {
        let mut v: Vec<String> = b["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let r = a
        .get(&format!("/v2/images?created_at=gt:{created}"))
        .await
        .unwrap();
    assert_eq!(names(r.body), ["t,3", "t2"]);
    let r = a
        .get(&format!("/v2/images?created_at=lte:{created}"))
        .await
        .unwrap();
    assert_eq!(names(r.body), ["t1"]);
    let r = a.get("/v2/images?disk_format=in:raw,iso").await.unwrap();
    assert_eq!(names(r.body), ["t,3", "t1"]);
    let r = a.get("/v2/images?name=in:t2,%22t,3%22").await.unwrap();
    assert_eq!(names(r.body), ["t,3", "t2"]);
    assert_eq!(
        a.get("/v2/images?created_at=gt:yesterday")
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        a.get(&format!("/v2/images?updated_at=about:{created}"))
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(a.get("/v2/images?name=like:t").await.unwrap().status, 400);
    assert_eq!(a.get("/v2/images?name=in:%22t2").await.unwrap().status, 400);
}

/// Registers Glance's unified limits as an operator would, returns the image service id.
async fn register_limits(c: &TestCloud, limits: &[(&str, i64)]) -> String {
    let services = c.admin.get("/v3/services?type=image").await.unwrap().body;
    let service = services["services"][0]["id"].as_str().unwrap().to_string();
    let body: Vec<Value> = limits
        .iter()
        .map(|(name, n)| json!({"service_id": service, "resource_name": name, "default_limit": n}))
        .collect();
    let r = c
        .admin
        .post("/v3/registered_limits", &json!({"registered_limits": body}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    service
}

#[tokio::test]
async fn unified_limits_cap_image_count_and_bytes() {
    let c = TestCloud::start().await;
    let service = register_limits(&c, &[("image_count_total", 2), ("image_size_total", 1)]).await;
    let (project, _) = c.project_user("quota", "qu", "pw", "member").await;
    let (m, _) = c.login("qu", "pw", Some("quota")).await.unwrap();
    let m = m.clone_with_base(&c.image_url);
    let fmt = json!({"disk_format": "raw", "container_format": "bare"});
    let a = create(&m, fmt.clone()).await;
    let b = create(&m, fmt.clone()).await;
    let r = m.post("/v2/images", &fmt).await.unwrap();
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("image_count_total"),
        "{:?}",
        r.body
    );

    // 1 MiB of storage: 600 KiB fits, another 600 KiB is cut off with nothing kept.
    assert_eq!(
        put_data(&m, &format!("/v2/images/{a}/file"), vec![1u8; 600 << 10])
            .await
            .status(),
        204
    );
    let r = put_data(&m, &format!("/v2/images/{b}/file"), vec![2u8; 600 << 10]).await;
    assert_eq!(r.status(), 413);
    let img = m.get(&format!("/v2/images/{b}")).await.unwrap().body;
    assert_eq!(img["status"], "queued");
    no_files_left(&c, &b);
    assert_eq!(
        put_data(&m, &format!("/v2/images/{b}/file"), vec![2u8; 300 << 10])
            .await
            .status(),
        204
    );

    // A project limit overrides the default.
    let r = c
        .admin
        .post(
            "/v3/limits",
            &json!({"limits": [{"service_id": service, "project_id": project,
                "resource_name": "image_count_total", "resource_limit": 3}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    create(&m, fmt.clone()).await;
    assert_eq!(m.post("/v2/images", &fmt).await.unwrap().status, 413);
    // Other projects are untouched by this project's usage.
    create(&image_admin(&c), fmt).await;
}

#[tokio::test]
async fn the_sweep_fails_imports_whose_process_died() {
    use ferro_image::db as idb;
    use ferro_image::model::{Status, Task};
    let c = TestCloud::start().await;
    let a = image_admin(&c);
    let id = create(
        &a,
        json!({"name": "orphan", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let images = &c.cloud.images;
    // An import that started ten minutes ago in a process that is gone.
    let long_ago = ferro_common::time::now_micros() - 600_000_000;
    let mut task = Task::new("api_image_import", "p".into(), json!({}), long_ago);
    task.status = "processing".into();
    task.image_id = Some(id.clone());
    idb::task_insert(&mut &images.db, &task).await.unwrap();
    assert!(
        idb::image_cas_status(
            &mut &images.db,
            &id,
            Status::Queued,
            Status::Importing,
            long_ago
        )
        .await
        .unwrap()
    );
    // A fresh one is left alone.
    let fresh = Task::new(
        "api_image_import",
        "p".into(),
        json!({}),
        ferro_common::time::now_micros(),
    );
    idb::task_insert(&mut &images.db, &fresh).await.unwrap();

    assert_eq!(images.sweep_stale_tasks().await.unwrap(), 1);
    let img = a.get(&format!("/v2/images/{id}")).await.unwrap().body;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["os_glance_failed_import"], "file");
    let t = a.get(&format!("/v2/tasks/{}", task.id)).await.unwrap().body;
    assert_eq!(t["status"], "failure");
    let t = a
        .get(&format!("/v2/tasks/{}", fresh.id))
        .await
        .unwrap()
        .body;
    assert_eq!(t["status"], "pending");
    assert_eq!(images.sweep_stale_tasks().await.unwrap(), 0);
}
