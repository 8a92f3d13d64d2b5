//! The unauthorised sweep: every identity route called without a token, with a reader's token
//! and with another project's member token. Upstream answers 401, 403 or 404 — never a 5xx,
//! and never a success for a write the caller may not make.

use ferro_testkit::TestCloud;
use reqwest::Method;
use serde_json::json;

/// Routes with `{x}` placeholders; ids are filled with the admin project's real records, so
/// the policy check (not a missing record) decides.
const ROUTES: &[(&str, &str, bool)] = &[
    // (method, path, is a write)
    ("GET", "/v3/auth/catalog", false),
    ("GET", "/v3/auth/projects", false),
    ("GET", "/v3/auth/domains", false),
    ("GET", "/v3/auth/system", false),
    ("GET", "/v3/domains", false),
    ("POST", "/v3/domains", true),
    ("GET", "/v3/domains/{domain}", false),
    ("PATCH", "/v3/domains/{domain}", true),
    ("DELETE", "/v3/domains/{domain}", true),
    ("GET", "/v3/projects", false),
    ("POST", "/v3/projects", true),
    ("GET", "/v3/projects/{project}", false),
    ("PATCH", "/v3/projects/{project}", true),
    ("DELETE", "/v3/projects/{project}", true),
    ("GET", "/v3/projects/{project}/tags", false),
    ("PUT", "/v3/projects/{project}/tags", true),
    ("PUT", "/v3/projects/{project}/tags/t1", true),
    ("DELETE", "/v3/projects/{project}/tags", true),
    ("GET", "/v3/users", false),
    ("POST", "/v3/users", true),
    ("GET", "/v3/users/{user}", false),
    ("PATCH", "/v3/users/{user}", true),
    ("DELETE", "/v3/users/{user}", true),
    ("GET", "/v3/users/{user}/groups", false),
    ("GET", "/v3/users/{user}/projects", false),
    ("GET", "/v3/users/{user}/application_credentials", false),
    ("POST", "/v3/users/{user}/application_credentials", true),
    ("GET", "/v3/users/{user}/access_rules", false),
    ("GET", "/v3/users/{user}/credentials/OS-EC2", false),
    ("GET", "/v3/groups", false),
    ("POST", "/v3/groups", true),
    ("GET", "/v3/groups/{group}", false),
    ("PATCH", "/v3/groups/{group}", true),
    ("DELETE", "/v3/groups/{group}", true),
    ("GET", "/v3/groups/{group}/users", false),
    ("PUT", "/v3/groups/{group}/users/{user}", true),
    ("DELETE", "/v3/groups/{group}/users/{user}", true),
    ("GET", "/v3/roles", false),
    ("POST", "/v3/roles", true),
    ("GET", "/v3/roles/{role}", false),
    ("PATCH", "/v3/roles/{role}", true),
    ("DELETE", "/v3/roles/{role}", true),
    ("GET", "/v3/roles/{role}/implies", false),
    ("PUT", "/v3/roles/{role}/implies/{role2}", true),
    ("DELETE", "/v3/roles/{role}/implies/{role2}", true),
    ("GET", "/v3/role_inferences", false),
    ("GET", "/v3/role_assignments", false),
    ("GET", "/v3/projects/{project}/users/{user}/roles", false),
    (
        "PUT",
        "/v3/projects/{project}/users/{user}/roles/{role}",
        true,
    ),
    (
        "DELETE",
        "/v3/projects/{project}/users/{user}/roles/{role}",
        true,
    ),
    (
        "PUT",
        "/v3/domains/{domain}/groups/{group}/roles/{role}",
        true,
    ),
    ("PUT", "/v3/system/users/{user}/roles/{role}", true),
    (
        "PUT",
        "/v3/OS-INHERIT/domains/{domain}/users/{user}/roles/{role}/inherited_to_projects",
        true,
    ),
    ("GET", "/v3/regions", false),
    ("POST", "/v3/regions", true),
    ("GET", "/v3/regions/RegionOne", false),
    ("PATCH", "/v3/regions/RegionOne", true),
    ("DELETE", "/v3/regions/RegionOne", true),
    ("GET", "/v3/services", false),
    ("POST", "/v3/services", true),
    ("GET", "/v3/endpoints", false),
    ("POST", "/v3/endpoints", true),
    ("GET", "/v3/credentials", false),
    ("POST", "/v3/credentials", true),
    ("GET", "/v3/policies", false),
    ("POST", "/v3/policies", true),
    ("GET", "/v3/OS-TRUST/trusts", false),
    ("GET", "/v3/domains/{domain}/config", false),
    ("GET", "/v3/OS-OAUTH1/consumers", false),
    ("POST", "/v3/OS-OAUTH1/consumers", true),
    ("GET", "/v3/OS-EP-FILTER/endpoint_groups", false),
];

#[tokio::test]
async fn every_route_refuses_callers_without_the_right_and_never_fails_with_5xx() {
    let c = TestCloud::start().await;
    let admin_project = c.admin_token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_user = c.admin_token["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = c
        .admin
        .post("/v3/groups", &json!({"group": {"name": "g"}}))
        .await
        .unwrap();
    let group = g.body["group"]["id"].as_str().unwrap().to_string();
    let admin_role = c.role_id("admin").await;
    let member_role = c.role_id("member").await;
    c.project_user("p-reader", "reader", "pw-reader", "reader")
        .await;
    c.project_user("p-other", "other", "pw-other", "member")
        .await;
    let (reader, _) = c
        .login("reader", "pw-reader", Some("p-reader"))
        .await
        .unwrap();
    let (other, _) = c.login("other", "pw-other", Some("p-other")).await.unwrap();
    let body = json!({"project": {"name": "x"}, "user": {"name": "x"}, "group": {"name": "x"}, "role": {"name": "x"},
        "domain": {"name": "x"}, "region": {}, "service": {"type": "x"}, "tags": [],
        "endpoint": {"interface": "public", "url": "http://x", "service_id": "x"},
        "credential": {"type": "x", "blob": "x", "user_id": admin_user},
        "policy": {"type": "x", "blob": "x"}, "consumer": {}, "endpoint_group": {"name": "x", "filters": {}},
        "application_credential": {"name": "x"}});
    let http = reqwest::Client::new();
    let mut problems = Vec::new();
    for (method, path, write) in ROUTES {
        let path = path
            .replace("{domain}", "default")
            .replace("{project}", &admin_project)
            .replace("{user}", &admin_user)
            .replace("{group}", &group)
            .replace("{role2}", &member_role)
            .replace("{role}", &admin_role);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for (who, token) in [
            ("anonymous", None),
            ("reader", reader.token.clone()),
            ("other project", other.token.clone()),
        ] {
            let mut req = http
                .request(method.clone(), format!("{}{path}", c.url))
                .json(&body);
            if let Some(t) = &token {
                req = req.header("X-Auth-Token", t);
            }
            let status = req.send().await.unwrap().status().as_u16();
            let allowed: &[u16] = match (who, write) {
                ("anonymous", _) => &[401],
                (_, true) => &[400, 403, 404],
                // Reads that upstream lets any authenticated user make (their own scope, the
                // catalog of their token) may succeed.
                (_, false) => &[200, 403, 404],
            };
            if !allowed.contains(&status) {
                problems.push(format!("{who} {method} {path}: {status}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "unexpected answers:\n{}",
        problems.join("\n")
    );
}
