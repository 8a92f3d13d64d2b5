//! Identity behaviour as a client sees it: tokens, scopes, revocation, roles, catalog.

use ferro_testkit::TestCloud;
use ferro_testkit::ferro_client::Client;
use serde_json::json;

fn subject(token: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-subject-token", token.parse().unwrap());
    h
}

async fn validate(c: &TestCloud, token: &str) -> u16 {
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v3/auth/tokens", c.url))
        .header("X-Auth-Token", c.admin.token.clone().unwrap())
        .headers(subject(token))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn version_documents_are_what_keystoneauth_parses() {
    let c = TestCloud::start().await;
    let root = c.anonymous().get("/").await.unwrap();
    assert_eq!(root.status, 300);
    assert_eq!(root.body["versions"]["values"][0]["id"], "v3.14");
    let v3 = c.anonymous().get("/v3").await.unwrap();
    assert_eq!(v3.status, 200);
    assert_eq!(
        v3.body["version"]["links"][0]["href"],
        format!("{}/v3/", c.url)
    );
    assert!(
        v3.header("x-openstack-request-id")
            .unwrap()
            .starts_with("req-")
    );
}

#[tokio::test]
async fn project_token_carries_user_roles_implied_roles_and_catalog() {
    let c = TestCloud::start().await;
    let t = &c.admin_token["token"];
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(t["project"]["name"], "admin");
    assert_eq!(t["project"]["domain"]["id"], "default");
    let mut roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        ["admin", "manager", "member", "reader"],
        "admin implies manager implies member implies reader"
    );
    let identity = &t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "identity")
        .unwrap()["endpoints"];
    assert_eq!(identity.as_array().unwrap().len(), 3);
    assert!(t["expires_at"].as_str().unwrap().ends_with(".000000Z"));
}

#[tokio::test]
async fn member_token_has_member_and_reader_but_not_admin() {
    let c = TestCloud::start().await;
    c.project_user("p1", "alice", "pw-alice", "member").await;
    let (_, body) = c.login("alice", "pw-alice", Some("p1")).await.unwrap();
    let mut roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["member", "reader"]);
}

#[tokio::test]
async fn revoked_token_is_refused_on_use_and_not_found_on_validate() {
    let c = TestCloud::start().await;
    let (user, _) = c
        .login("admin", ferro_testkit::ADMIN_PASSWORD, Some("admin"))
        .await
        .unwrap();
    let token = user.token.clone().unwrap();
    assert_eq!(validate(&c, &token).await, 200);
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("{}/v3/auth/tokens", c.url))
        .header("X-Auth-Token", c.admin.token.clone().unwrap())
        .headers(subject(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(validate(&c, &token).await, 404);
    assert_eq!(user.get("/v3/projects").await.unwrap().status, 401);
    // The admin's own token, issued separately, still works.
    assert_eq!(c.admin.get("/v3/projects").await.unwrap().status, 200);
}

#[tokio::test]
async fn disabled_user_and_disabled_project_stop_their_tokens_at_once() {
    let c = TestCloud::start().await;
    let (pid, uid) = c.project_user("p1", "bob", "pw-bob", "member").await;
    let (bob, body) = c.login("bob", "pw-bob", Some("p1")).await.unwrap();
    let token = bob.token.clone().unwrap();
    assert_eq!(body["token"]["project"]["id"], pid.as_str());
    assert_eq!(
        bob.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        200
    );
    let r = c
        .admin
        .patch(
            &format!("/v3/users/{uid}"),
            &json!({"user": {"enabled": false}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        bob.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        401
    );
    assert_eq!(validate(&c, &token).await, 404);
    // Re-enabled, the old token stays revoked (upstream's revocation event), new ones work.
    c.admin
        .patch(
            &format!("/v3/users/{uid}"),
            &json!({"user": {"enabled": true}}),
        )
        .await
        .unwrap();
    assert_eq!(validate(&c, &token).await, 404);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (bob, _) = c.login("bob", "pw-bob", Some("p1")).await.unwrap();
    assert_eq!(
        bob.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        200
    );
    c.admin
        .patch(
            &format!("/v3/projects/{pid}"),
            &json!({"project": {"enabled": false}}),
        )
        .await
        .unwrap();
    assert_eq!(
        bob.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        401
    );
    assert!(
        c.login("bob", "pw-bob", Some("p1")).await.is_err(),
        "no new tokens on a disabled project"
    );
}

#[tokio::test]
async fn password_change_needs_the_original_and_revokes_old_tokens() {
    let c = TestCloud::start().await;
    let (_, uid) = c.project_user("p1", "carol", "old-pw", "member").await;
    let (carol, _) = c.login("carol", "old-pw", Some("p1")).await.unwrap();
    let wrong = c
        .anonymous()
        .post(
            &format!("/v3/users/{uid}/password"),
            &json!({"user": {"original_password": "nope", "password": "new-pw"}}),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = carol
        .post(
            &format!("/v3/users/{uid}/password"),
            &json!({"user": {"original_password": "old-pw", "password": "new-pw"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        carol.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        401
    );
    assert!(c.login("carol", "old-pw", Some("p1")).await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(c.login("carol", "new-pw", Some("p1")).await.is_ok());
}

#[tokio::test]
async fn application_credential_authenticates_with_its_roles_only() {
    let c = TestCloud::start().await;
    let (pid, uid) = c.project_user("p1", "dave", "pw-dave", "member").await;
    let (dave, _) = c.login("dave", "pw-dave", Some("p1")).await.unwrap();
    let r = dave
        .post(
            &format!("/v3/users/{uid}/application_credentials"),
            &json!({"application_credential": {"name": "ci", "roles": [{"name": "reader"}]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let cred = &r.body["application_credential"];
    let (id, secret) = (
        cred["id"].as_str().unwrap(),
        cred["secret"].as_str().unwrap(),
    );
    assert_eq!(cred["project_id"], pid.as_str());
    let dup = dave
        .post(
            &format!("/v3/users/{uid}/application_credentials"),
            &json!({"application_credential": {"name": "ci"}}),
        )
        .await
        .unwrap();
    assert_eq!(dup.status, 409);
    let auth = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": id, "secret": secret}}}});
    let (app, body) = Client::login(&c.url, &auth).await.unwrap();
    let t = &body["token"];
    assert_eq!(t["methods"], json!(["application_credential"]));
    assert_eq!(t["project"]["id"], pid.as_str());
    assert_eq!(
        t["roles"].as_array().unwrap().len(),
        1,
        "only the credential's role: {t}"
    );
    assert_eq!(t["application_credential"]["restricted"], true);
    // A restricted credential cannot mint more credentials.
    let r = app
        .post(
            &format!("/v3/users/{uid}/application_credentials"),
            &json!({"application_credential": {"name": "more"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let bad = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": id, "secret": "wrong"}}}});
    assert!(Client::login(&c.url, &bad).await.is_err());
    // Deleting the credential kills its tokens.
    assert_eq!(
        dave.delete(&format!("/v3/users/{uid}/application_credentials/{id}"))
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        401
    );
}

#[tokio::test]
async fn rescoping_keeps_expiry_and_chains_audit_ids() {
    let c = TestCloud::start().await;
    let (unscoped, body) = c
        .login("admin", ferro_testkit::ADMIN_PASSWORD, None)
        .await
        .unwrap();
    let token = unscoped.token.clone().unwrap();
    // The admin's default project scopes a login without scope, as upstream.
    assert_eq!(body["token"]["project"]["name"], "admin");
    let auth = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
        "scope": {"domain": {"id": "default"}}}});
    let r = c.anonymous().post("/v3/auth/tokens", &auth).await.unwrap();
    // The admin has no role on the domain itself.
    assert_eq!(r.status, 401);
    let auth = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
        "scope": {"system": {"all": true}}}});
    let r = c.anonymous().post("/v3/auth/tokens", &auth).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let t = &r.body["token"];
    assert_eq!(t["system"], json!({"all": true}));
    assert_eq!(t["expires_at"], body["token"]["expires_at"]);
    assert_eq!(t["audit_ids"][1], body["token"]["audit_ids"][0]);
}

#[tokio::test]
async fn reader_can_list_but_not_create_and_another_project_is_hidden() {
    let c = TestCloud::start().await;
    let (p1, uid) = c.project_user("p1", "erin", "pw-erin", "reader").await;
    let (erin, _) = c.login("erin", "pw-erin", Some("p1")).await.unwrap();
    assert_eq!(
        erin.get(&format!("/v3/projects/{p1}"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        erin.get(&format!("/v3/users/{uid}")).await.unwrap().status,
        200
    );
    let r = erin
        .post("/v3/projects", &json!({"project": {"name": "nope"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], 403);
    let (p2, _) = c.project_user("p2", "frank", "pw-frank", "member").await;
    assert_eq!(
        erin.get(&format!("/v3/projects/{p2}"))
            .await
            .unwrap()
            .status,
        403
    );
    let mine = erin.get("/v3/auth/projects").await.unwrap();
    let names: Vec<&str> = mine.body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p1"]);
}

#[tokio::test]
async fn group_membership_grants_roles_and_shows_in_effective_assignments() {
    let c = TestCloud::start().await;
    let (pid, uid) = c.project_user("p1", "gina", "pw-gina", "reader").await;
    let g = c
        .admin
        .post(
            "/v3/groups",
            &json!({"group": {"name": "ops", "domain_id": "default"}}),
        )
        .await
        .unwrap();
    assert_eq!(g.status, 201);
    let gid = g.body["group"]["id"].as_str().unwrap();
    assert_eq!(
        c.admin
            .put(&format!("/v3/groups/{gid}/users/{uid}"), None)
            .await
            .unwrap()
            .status,
        204
    );
    let member = c.role_id("member").await;
    assert_eq!(
        c.admin
            .put(
                &format!("/v3/projects/{pid}/groups/{gid}/roles/{member}"),
                None
            )
            .await
            .unwrap()
            .status,
        204
    );
    let (_, body) = c.login("gina", "pw-gina", Some("p1")).await.unwrap();
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"member"), "{roles:?}");
    let r = c
        .admin
        .get(&format!(
            "/v3/role_assignments?effective&include_names&user.id={uid}&scope.project.id={pid}"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let list = r.body["role_assignments"].as_array().unwrap();
    let via_group = list
        .iter()
        .find(|a| a["role"]["name"] == "member")
        .expect("member via group");
    assert!(
        via_group["links"]["membership"]
            .as_str()
            .unwrap()
            .contains(gid)
    );
    assert_eq!(via_group["user"]["name"], "gina");
    assert_eq!(via_group["scope"]["project"]["name"], "p1");
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let c = TestCloud::start().await;
    let (pid, _) = c.project_user("keep", "hank", "pw-hank", "member").await;
    let (_, _) = c.login("hank", "pw-hank", Some("keep")).await.unwrap();
    let old = c.admin.token.clone().unwrap();
    let c = c.restart().await.unwrap();
    assert_eq!(
        c.admin
            .with_token(&old)
            .get(&format!("/v3/projects/{pid}"))
            .await
            .unwrap()
            .status,
        200,
        "tokens survive"
    );
    assert!(c.login("hank", "pw-hank", Some("keep")).await.is_ok());
}

#[tokio::test]
async fn tokens_from_before_a_key_rotation_still_validate() {
    let c = TestCloud::start().await;
    let old = c.admin.token.clone().unwrap();
    ferro_identity::token::rotate_repository(&c.cloud.identity.config.key_repository, 3).unwrap();
    c.cloud.identity.reload_keys().unwrap();
    let (fresh, _) = c
        .login("admin", ferro_testkit::ADMIN_PASSWORD, Some("admin"))
        .await
        .unwrap();
    assert_eq!(validate(&c, &old).await, 200);
    assert_eq!(validate(&c, fresh.token.as_deref().unwrap()).await, 200);
}

#[tokio::test]
async fn keystone_default_bcrypt_cost_12_hashes_and_verifies() {
    let c = TestCloud::start_with(|cfg| cfg.identity.bcrypt_cost = 12)
        .await
        .unwrap();
    let (_, uid) = c.project_user("p", "ivan", "pw-ivan", "member").await;
    assert!(c.login("ivan", "pw-ivan", Some("p")).await.is_ok());
    let hash = ferro_identity::db::user_get(&mut &c.cloud.identity.db, &uid)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(hash.starts_with("$2b$12$"), "{hash}");
}

#[tokio::test]
async fn a_project_member_cannot_list_users_groups_or_role_assignments() {
    let c = TestCloud::start().await;
    c.project_user("p1", "jack", "pw-jack", "member").await;
    let (jack, _) = c.login("jack", "pw-jack", Some("p1")).await.unwrap();
    for path in [
        "/v3/users",
        "/v3/groups",
        "/v3/role_assignments",
        "/v3/projects",
    ] {
        assert_eq!(jack.get(path).await.unwrap().status, 403, "{path}");
        assert_eq!(c.admin.get(path).await.unwrap().status, 200, "{path}");
    }
}

#[tokio::test]
async fn application_credential_with_an_empty_role_list_gets_the_tokens_roles() {
    let c = TestCloud::start().await;
    let (_, uid) = c.project_user("p1", "kim", "pw-kim", "member").await;
    let (kim, _) = c.login("kim", "pw-kim", Some("p1")).await.unwrap();
    let r = kim
        .post(
            &format!("/v3/users/{uid}/application_credentials"),
            &json!({"application_credential": {"name": "all", "roles": []}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let roles = r.body["application_credential"]["roles"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(roles, 2, "member and reader: {:?}", r.body);
}

#[tokio::test]
async fn project_list_shows_every_projects_tags() {
    let c = TestCloud::start().await;
    for (name, tags) in [
        ("t1", json!(["a", "b"])),
        ("t2", json!([])),
        ("t3", json!(["c"])),
    ] {
        let r = c
            .admin
            .post(
                "/v3/projects",
                &json!({"project": {"name": name, "tags": tags}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201);
    }
    let r = c.admin.get("/v3/projects").await.unwrap();
    let by_name = |n: &str| {
        r.body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()["tags"]
            .clone()
    };
    assert_eq!(by_name("t1"), json!(["a", "b"]));
    assert_eq!(by_name("t2"), json!([]));
    assert_eq!(by_name("t3"), json!(["c"]));
    let r = c.admin.get("/v3/projects?tags-any=a,c").await.unwrap();
    assert_eq!(r.body["projects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_change_made_by_one_process_reaches_the_others_cache() {
    let c = TestCloud::start().await;
    let (pid, uid) = c.project_user("p1", "lena", "pw-lena", "member").await;
    // A second API process on the same database, as `ferrostack serve` scaled out.
    let mut config = c.config.clone();
    config.identity.port = 0;
    let other = ferrostack::Cloud::start(&config).await.unwrap();
    // Past the workers' first round, so that nothing but the change itself can clear the
    // other process's cache.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (lena, _) = c.login("lena", "pw-lena", Some("p1")).await.unwrap();
    let via_other = lena.clone_with_base(&other.identity_url);
    assert_eq!(
        via_other
            .get(&format!("/v3/users/{uid}"))
            .await
            .unwrap()
            .status,
        200,
        "cached there now"
    );
    // Removing the grant writes no revocation event: the other process must learn of it
    // through the change counter.
    let member = c.role_id("member").await;
    let r = c
        .admin
        .delete(&format!("/v3/projects/{pid}/users/{uid}/roles/{member}"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let mut status = 0;
    for _ in 0..40 {
        status = via_other
            .get(&format!("/v3/users/{uid}"))
            .await
            .unwrap()
            .status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "the other process still honours a token with no role left"
    );
}
