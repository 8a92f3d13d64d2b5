//! Bad input gets Keystone's faults: never a panic, a 500 or a half-written record.

use ferro_testkit::TestCloud;
use serde_json::json;

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let c = TestCloud::start().await;
    let a = c
        .login("admin", "wrong", Some("admin"))
        .await
        .unwrap_err()
        .to_string();
    let b = c
        .login("nobody", "wrong", Some("admin"))
        .await
        .unwrap_err()
        .to_string();
    assert!(a.contains("401"), "{a}");
    assert_eq!(a, b);
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let c = TestCloud::start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v3/projects", c.url))
        .header("X-Auth-Token", c.admin.token.clone().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["title"], "Bad Request");
    let r = c
        .admin
        .post("/v3/projects", &json!({"project": {"description": "x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'name'"),
        "{:?}",
        r.body
    );
    let r = c
        .admin
        .post(
            "/v3/projects",
            &json!({"project": {"name": "p", "enabled": "yes"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'enabled'")
    );
    let r = c
        .anonymous()
        .post("/v3/auth/tokens", &json!({"auth": {}}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let c = TestCloud::start().await;
    let big = "x".repeat(200_000);
    let r = c
        .admin
        .post(
            "/v3/projects",
            &json!({"project": {"name": "p", "description": big}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], 413);
}

#[tokio::test]
async fn unknown_ids_are_404_and_duplicates_are_409() {
    let c = TestCloud::start().await;
    for path in [
        "/v3/projects/nope",
        "/v3/users/nope",
        "/v3/groups/nope",
        "/v3/roles/nope",
        "/v3/domains/nope",
        "/v3/regions/nope",
    ] {
        let r = c.admin.get(path).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], 404);
    }
    let body = json!({"project": {"name": "twice", "domain_id": "default"}});
    assert_eq!(
        c.admin.post("/v3/projects", &body).await.unwrap().status,
        201
    );
    let r = c.admin.post("/v3/projects", &body).await.unwrap();
    assert_eq!(r.status, 409);
    let list = c.admin.get("/v3/projects?name=twice").await.unwrap();
    assert_eq!(
        list.body["projects"].as_array().unwrap().len(),
        1,
        "nothing half-written"
    );
}

#[tokio::test]
async fn missing_or_garbage_tokens_are_401() {
    let c = TestCloud::start().await;
    assert_eq!(c.anonymous().get("/v3/projects").await.unwrap().status, 401);
    for t in ["", "garbage", "gAAAAABinvalid"] {
        let r = c
            .anonymous()
            .with_token(t)
            .get("/v3/projects")
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{t:?}");
    }
}

#[tokio::test]
async fn an_enabled_domain_cannot_be_deleted_and_a_parent_project_neither() {
    let c = TestCloud::start().await;
    let d = c
        .admin
        .post("/v3/domains", &json!({"domain": {"name": "d1"}}))
        .await
        .unwrap();
    let did = d.body["domain"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.admin
            .delete(&format!("/v3/domains/{did}"))
            .await
            .unwrap()
            .status,
        403
    );
    let p = c
        .admin
        .post(
            "/v3/projects",
            &json!({"project": {"name": "parent", "domain_id": "default"}}),
        )
        .await
        .unwrap();
    let pid = p.body["project"]["id"].as_str().unwrap().to_string();
    let child = c
        .admin
        .post(
            "/v3/projects",
            &json!({"project": {"name": "child", "parent_id": pid}}),
        )
        .await
        .unwrap();
    assert_eq!(child.status, 201);
    assert_eq!(child.body["project"]["parent_id"], pid.as_str());
    assert_eq!(
        c.admin
            .delete(&format!("/v3/projects/{pid}"))
            .await
            .unwrap()
            .status,
        403
    );
    c.admin
        .patch(
            &format!("/v3/domains/{did}"),
            &json!({"domain": {"enabled": false}}),
        )
        .await
        .unwrap();
    assert_eq!(
        c.admin
            .delete(&format!("/v3/domains/{did}"))
            .await
            .unwrap()
            .status,
        204
    );
}
