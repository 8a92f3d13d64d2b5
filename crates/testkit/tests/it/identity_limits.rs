//! Keystone's unified limits as a client sees them: registered limits, project and domain
//! limits, the flat model, their faults and who may see what; and the in-process
//! `Identity::effective_limit` other services enforce with.

use ferro_testkit::TestCloud;
use ferro_testkit::ferro_client::{Client, Response};
use serde_json::{Value, json};

/// Creates a service of `kind` (named after it, as devstack names glance `glance`).
async fn service(c: &TestCloud, kind: &str) -> String {
    let r = c
        .admin
        .post(
            "/v3/services",
            &json!({"service": {"type": kind, "name": kind}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["service"]["id"].as_str().unwrap().to_string()
}

async fn register(c: &TestCloud, items: Value) -> Response {
    c.admin
        .post(
            "/v3/registered_limits",
            &json!({"registered_limits": items}),
        )
        .await
        .unwrap()
}

/// Registers one limit and returns its id.
async fn register_one(
    c: &TestCloud,
    sid: &str,
    region: Option<&str>,
    name: &str,
    default: i64,
) -> String {
    let r = register(
        c,
        json!([{"service_id": sid, "region_id": region, "resource_name": name, "default_limit": default}]),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["registered_limits"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn limit(c: &TestCloud, item: Value) -> Response {
    c.admin
        .post("/v3/limits", &json!({"limits": [item]}))
        .await
        .unwrap()
}

fn message(r: &Response) -> &str {
    r.body["error"]["message"].as_str().unwrap_or_default()
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// A system-scoped admin token, as tempest's `os_system_admin`.
async fn system_admin(c: &TestCloud) -> Client {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": ferro_testkit::ADMIN_PASSWORD}}},
        "scope": {"system": {"all": true}}}});
    Client::login(&c.url, &body).await.unwrap().0
}

#[tokio::test]
async fn registered_limits_are_created_listed_filtered_updated_and_deleted() {
    let c = TestCloud::start().await;
    let sid = service(&c, "volumev3").await;
    let r = register(
        &c,
        json!([
            {"service_id": sid, "resource_name": "volume", "default_limit": 10, "description": "Number of volumes"},
            {"service_id": sid, "region_id": "RegionOne", "resource_name": "snapshot", "default_limit": 5},
        ]),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A create answers the records only, without collection links.
    assert!(r.body.get("links").is_none(), "{:?}", r.body);
    let made = r.body["registered_limits"].as_array().unwrap();
    assert_eq!(made.len(), 2);
    let volume = &made[0];
    assert_eq!(volume["service_id"], json!(sid));
    assert_eq!(volume["region_id"], Value::Null);
    assert_eq!(volume["resource_name"], "volume");
    assert_eq!(volume["default_limit"], 10);
    assert_eq!(volume["description"], "Number of volumes");
    let vid = volume["id"].as_str().unwrap().to_string();
    assert_eq!(
        volume["links"]["self"],
        json!(format!("{}/v3/registered_limits/{vid}", c.url))
    );
    assert_eq!(made[1]["region_id"], "RegionOne");
    assert_eq!(made[1]["description"], Value::Null);
    let sn = made[1]["id"].as_str().unwrap().to_string();

    let all = c.admin.get("/v3/registered_limits").await.unwrap();
    assert_eq!(all.status, 200);
    assert_eq!(ids(&all.body, "registered_limits"), {
        let mut v = vec![vid.clone(), sn.clone()];
        v.sort();
        v
    });
    assert_eq!(
        all.body["links"],
        json!({"self": format!("{}/v3/registered_limits", c.url), "previous": null, "next": null})
    );
    for (query, expect) in [
        (format!("service_id={sid}"), 2),
        ("region_id=RegionOne".to_string(), 1),
        ("resource_name=volume".to_string(), 1),
        ("resource_name=nothing".to_string(), 0),
        ("service_id=nope".to_string(), 0),
    ] {
        let r = c
            .admin
            .get(&format!("/v3/registered_limits?{query}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body["registered_limits"].as_array().unwrap().len(),
            expect,
            "{query}"
        );
    }

    let shown = c
        .admin
        .get(&format!("/v3/registered_limits/{vid}"))
        .await
        .unwrap();
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["registered_limit"], *volume);

    let r = c
        .admin
        .patch(
            &format!("/v3/registered_limits/{vid}"),
            &json!({"registered_limit": {"default_limit": -1, "description": null, "region_id": "RegionOne"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["registered_limit"]["default_limit"], -1);
    assert_eq!(r.body["registered_limit"]["description"], Value::Null);
    assert_eq!(r.body["registered_limit"]["region_id"], "RegionOne");
    let again = c
        .admin
        .get(&format!("/v3/registered_limits/{vid}"))
        .await
        .unwrap();
    assert_eq!(again.body["registered_limit"]["default_limit"], -1);

    let d = c
        .admin
        .delete(&format!("/v3/registered_limits/{vid}"))
        .await
        .unwrap();
    assert_eq!(d.status, 204);
    for _ in 0..2 {
        let gone = c
            .admin
            .get(&format!("/v3/registered_limits/{vid}"))
            .await
            .unwrap();
        assert_eq!(gone.status, 404);
        assert_eq!(gone.body["error"]["code"], 404);
    }
    let d = c
        .admin
        .delete(&format!("/v3/registered_limits/{vid}"))
        .await
        .unwrap();
    assert_eq!(d.status, 404);
}

#[tokio::test]
async fn registered_limit_faults_are_keystones() {
    let c = TestCloud::start().await;
    let sid = service(&c, "compute").await;
    let bad_bodies = [
        json!({}),
        json!({"registered_limits": []}),
        json!({"registered_limits": {"service_id": sid}}),
        json!({"registered_limits": [1]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores"}]}),
        json!({"registered_limits": [{"resource_name": "cores", "default_limit": 1}]}),
        json!({"registered_limits": [{"service_id": sid, "default_limit": 1}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "", "default_limit": 1}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "   ", "default_limit": 1}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "x".repeat(256), "default_limit": 1}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": -2}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 2147483648i64}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 1.5}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": "1"}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 1, "description": "d".repeat(256)}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 1, "region_id": ""}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 1, "colour": "red"}]}),
        json!({"registered_limits": [{"service_id": sid, "resource_name": "cores", "default_limit": 1}], "extra": 1}),
    ];
    for body in &bad_bodies {
        let r = c.admin.post("/v3/registered_limits", body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["title"], "Bad Request");
    }
    // References that do not exist are 400s naming the attribute.
    let r = register(
        &c,
        json!([{"service_id": "0123456789abcdef0123456789abcdef", "resource_name": "cores", "default_limit": 1}]),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        message(&r).starts_with("Expecting to find service_id in registered_limit."),
        "{:?}",
        r.body
    );
    let r = register(
        &c,
        json!([{"service_id": sid, "region_id": "Atlantis", "resource_name": "cores", "default_limit": 1}]),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(message(&r).contains("region_id"), "{:?}", r.body);
    // Nothing was written by any refused request.
    let all = c.admin.get("/v3/registered_limits").await.unwrap();
    assert_eq!(all.body["registered_limits"], json!([]));

    let cores = register_one(&c, &sid, None, "cores", 20).await;
    // Same service, region and resource: 409, also region-less twice and inside one batch,
    // and a batch with one duplicate writes none of its records.
    let r = register(
        &c,
        json!([{"service_id": sid, "resource_name": "ram", "default_limit": 1},
               {"service_id": sid, "resource_name": "cores", "default_limit": 2}]),
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(
        message(&r),
        "Conflict occurred attempting to store registered_limit - Duplicate entry."
    );
    let r = register(
        &c,
        json!([{"service_id": sid, "region_id": "RegionOne", "resource_name": "ram", "default_limit": 1},
               {"service_id": sid, "region_id": "RegionOne", "resource_name": "ram", "default_limit": 2}]),
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let all = c.admin.get("/v3/registered_limits").await.unwrap();
    assert_eq!(ids(&all.body, "registered_limits"), vec![cores.clone()]);
    // The same resource in a region is another registration.
    let regional = register_one(&c, &sid, Some("RegionOne"), "cores", 30).await;

    // Updates: validated like creates, 404 for an unknown id, 409 into another's key.
    let path = format!("/v3/registered_limits/{regional}");
    for body in [
        json!({"registered_limit": {"default_limit": -5}}),
        json!({"registered_limit": {"id": "x"}}),
        json!({"registered_limit": {"resource_name": ""}}),
        json!({"registered_limit": "x"}),
        json!({}),
    ] {
        let r = c.admin.patch(&path, &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
    }
    let r = c
        .admin
        .patch(&path, &json!({"registered_limit": {"service_id": "nope"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(message(&r).contains("service_id"));
    let r = c
        .admin
        .patch(&path, &json!({"registered_limit": {"region_id": null}}))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{:?}", r.body);
    let r = c
        .admin
        .patch(
            "/v3/registered_limits/0123456789abcdef",
            &json!({"registered_limit": {"default_limit": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // Unchanged: the refused updates wrote nothing.
    let r = c.admin.get(&path).await.unwrap();
    assert_eq!(r.body["registered_limit"]["region_id"], "RegionOne");
    assert_eq!(r.body["registered_limit"]["default_limit"], 30);
}

#[tokio::test]
async fn only_admins_write_registered_limits_and_any_scoped_user_reads_them() {
    let c = TestCloud::start().await;
    let sid = service(&c, "image").await;
    let rid = register_one(&c, &sid, None, "image_count_total", 100).await;
    c.project_user("p1", "mia", "pw-mia", "member").await;
    let (mia, _) = c.login("mia", "pw-mia", Some("p1")).await.unwrap();
    let r = mia
        .post(
            "/v3/registered_limits",
            &json!({"registered_limits": [{"service_id": sid, "resource_name": "x", "default_limit": 1}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], 403);
    let path = format!("/v3/registered_limits/{rid}");
    let r = mia
        .patch(&path, &json!({"registered_limit": {"default_limit": 1}}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(mia.delete(&path).await.unwrap().status, 403);
    let r = mia.get("/v3/registered_limits").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.body, "registered_limits"), vec![rid.clone()]);
    assert_eq!(mia.get(&path).await.unwrap().status, 200);
    assert_eq!(c.anonymous().get(&path).await.unwrap().status, 401);
    // The registration survived the refused writes.
    let r = c.admin.get(&path).await.unwrap();
    assert_eq!(r.body["registered_limit"]["default_limit"], 100);
}

#[tokio::test]
async fn limits_override_registered_limits_per_project_and_domain() {
    let c = TestCloud::start().await;
    let sid = service(&c, "volumev3").await;
    register_one(&c, &sid, None, "volume", 10).await;
    let snap_reg = register_one(&c, &sid, Some("RegionOne"), "snapshot", 5).await;
    let (p1, _) = c.project_user("p1", "ann", "pw-ann", "member").await;

    let r = c
        .admin
        .post(
            "/v3/limits",
            &json!({"limits": [
                {"service_id": sid, "project_id": p1, "resource_name": "volume", "resource_limit": 11,
                 "description": "Number of volumes for p1"},
                {"service_id": sid, "domain_id": "default", "region_id": "RegionOne",
                 "resource_name": "snapshot", "resource_limit": 50},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body.get("links").is_none());
    let made = r.body["limits"].as_array().unwrap();
    let vol = made[0].clone();
    assert_eq!(vol["project_id"], json!(p1));
    assert_eq!(vol["domain_id"], Value::Null);
    assert_eq!(vol["service_id"], json!(sid));
    assert_eq!(vol["region_id"], Value::Null);
    assert_eq!(vol["resource_name"], "volume");
    assert_eq!(vol["resource_limit"], 11);
    assert_eq!(vol["description"], "Number of volumes for p1");
    let vid = vol["id"].as_str().unwrap().to_string();
    assert_eq!(
        vol["links"]["self"],
        json!(format!("{}/v3/limits/{vid}", c.url))
    );
    let dom = &made[1];
    assert_eq!(dom["domain_id"], "default");
    assert_eq!(dom["project_id"], Value::Null);
    assert_eq!(dom["region_id"], "RegionOne");
    let did = dom["id"].as_str().unwrap().to_string();

    let all = c.admin.get("/v3/limits").await.unwrap();
    assert_eq!(all.status, 200);
    assert_eq!(all.body["limits"].as_array().unwrap().len(), 2);
    assert_eq!(
        all.body["links"],
        json!({"self": format!("{}/v3/limits", c.url), "previous": null, "next": null})
    );
    for (query, expect) in [
        (format!("project_id={p1}"), vec![vid.clone()]),
        ("domain_id=default".to_string(), vec![did.clone()]),
        ("region_id=RegionOne".to_string(), vec![did.clone()]),
        ("resource_name=volume".to_string(), vec![vid.clone()]),
        (
            format!("service_id={sid}&resource_name=snapshot"),
            vec![did.clone()],
        ),
        ("resource_name=ram".to_string(), vec![]),
    ] {
        let r = c.admin.get(&format!("/v3/limits?{query}")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(ids(&r.body, "limits"), expect, "{query}");
    }

    let r = c.admin.get(&format!("/v3/limits/{vid}")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["limit"], vol);

    let r = c
        .admin
        .patch(
            &format!("/v3/limits/{vid}"),
            &json!({"limit": {"resource_limit": 0, "description": "shut"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["limit"]["resource_limit"], 0);
    assert_eq!(r.body["limit"]["description"], "shut");
    assert_eq!(r.body["limit"]["resource_name"], "volume");
    let r = c.admin.get(&format!("/v3/limits/{vid}")).await.unwrap();
    assert_eq!(r.body["limit"]["resource_limit"], 0);

    // A registered limit in use can neither change nor go.
    let path = format!("/v3/registered_limits/{snap_reg}");
    let r = c
        .admin
        .patch(&path, &json!({"registered_limit": {"default_limit": 6}}))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(message(&r).contains("project limits associated with it"));
    assert_eq!(c.admin.delete(&path).await.unwrap().status, 403);

    assert_eq!(
        c.admin
            .delete(&format!("/v3/limits/{did}"))
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        c.admin
            .get(&format!("/v3/limits/{did}"))
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        c.admin
            .delete(&format!("/v3/limits/{did}"))
            .await
            .unwrap()
            .status,
        404
    );
    // Free again.
    assert_eq!(c.admin.delete(&path).await.unwrap().status, 204);

    let model = c.admin.get("/v3/limits/model").await.unwrap();
    assert_eq!(model.status, 200);
    assert_eq!(
        model.body,
        json!({"model": {"name": "flat",
            "description": "Limit enforcement and validation does not take project hierarchy into consideration."}})
    );
}

#[tokio::test]
async fn limit_faults_are_keystones() {
    let c = TestCloud::start().await;
    let sid = service(&c, "compute").await;
    register_one(&c, &sid, Some("RegionOne"), "cores", 20).await;
    let (p1, _) = c.project_user("p1", "bo", "pw-bo", "member").await;
    let good = json!({"service_id": sid, "project_id": p1, "region_id": "RegionOne",
        "resource_name": "cores", "resource_limit": 4});
    let with = |k: &str, v: Value| {
        let mut x = good.clone();
        x[k] = v;
        x
    };
    let without = |k: &str| {
        let mut x = good.clone();
        x.as_object_mut().unwrap().remove(k);
        x
    };
    for item in [
        without("service_id"),
        without("resource_name"),
        without("resource_limit"),
        without("project_id"),
        with("domain_id", json!("default")),
        with("project_id", Value::Null),
        with("project_id", json!("not/an/id")),
        with("resource_limit", json!(-2)),
        with("resource_limit", json!(2147483648i64)),
        with("resource_limit", json!(true)),
        with("resource_name", json!("")),
        with("description", json!("d".repeat(256))),
        with("links", json!({})),
    ] {
        let r = limit(&c, item.clone()).await;
        assert_eq!(r.status, 400, "{item}: {:?}", r.body);
    }
    assert_eq!(
        c.admin
            .post("/v3/limits", &json!({"limits": []}))
            .await
            .unwrap()
            .status,
        400
    );
    for (k, v, attr) in [
        ("project_id", json!("0123456789abcdef"), "project_id"),
        ("service_id", json!("0123456789abcdef"), "service_id"),
        ("region_id", json!("Atlantis"), "region_id"),
    ] {
        let r = limit(&c, with(k, v)).await;
        assert_eq!(r.status, 400, "{k}: {:?}", r.body);
        assert!(
            message(&r).starts_with(&format!("Expecting to find {attr} in limit.")),
            "{:?}",
            r.body
        );
    }
    let mut d = without("project_id");
    d["domain_id"] = json!("0123456789abcdef");
    let r = limit(&c, d).await;
    assert_eq!(r.status, 400);
    assert!(message(&r).contains("domain_id"));

    // No registration for the service, region and resource: keystone's 403.
    for item in [with("resource_name", json!("ram")), without("region_id")] {
        let r = limit(&c, item).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert_eq!(
            message(&r),
            "Unable to create a limit that has no corresponding registered limit."
        );
    }

    let r = limit(&c, good.clone()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let lid = r.body["limits"][0]["id"].as_str().unwrap().to_string();
    let r = limit(&c, with("resource_limit", json!(9))).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(
        message(&r),
        "Conflict occurred attempting to store limit - Duplicate entry."
    );
    // The same resource for the project's domain is a different limit.
    let mut dom = without("project_id");
    dom["domain_id"] = json!("default");
    assert_eq!(limit(&c, dom).await.status, 201);

    let path = format!("/v3/limits/{lid}");
    for body in [
        json!({"limit": {"resource_limit": -3}}),
        json!({"limit": {"resource_name": "ram"}}),
        json!({"limit": {"project_id": p1}}),
        json!({"limit": []}),
        json!({"limits": {}}),
    ] {
        let r = c.admin.patch(&path, &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
    }
    let r = c
        .admin
        .patch("/v3/limits/nope", &json!({"limit": {"resource_limit": 1}}))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = c.admin.get(&path).await.unwrap();
    assert_eq!(r.body["limit"]["resource_limit"], 4);
}

#[tokio::test]
async fn project_users_see_only_their_projects_limits() {
    let c = TestCloud::start().await;
    let sid = service(&c, "image").await;
    register_one(&c, &sid, None, "image_count_total", 100).await;
    let (p1, _) = c.project_user("p1", "cy", "pw-cy", "member").await;
    let (p2, _) = c.project_user("p2", "di", "pw-di", "reader").await;
    let mut lids = Vec::new();
    for p in [&p1, &p2] {
        let r = limit(
            &c,
            json!({"service_id": sid, "project_id": p, "resource_name": "image_count_total", "resource_limit": 3}),
        )
        .await;
        assert_eq!(r.status, 201);
        lids.push(r.body["limits"][0]["id"].as_str().unwrap().to_string());
    }
    let r = limit(
        &c,
        json!({"service_id": sid, "domain_id": "default", "resource_name": "image_count_total", "resource_limit": 50}),
    )
    .await;
    assert_eq!(r.status, 201);
    let dom = r.body["limits"][0]["id"].as_str().unwrap().to_string();

    let (cy, _) = c.login("cy", "pw-cy", Some("p1")).await.unwrap();
    let r = cy.get("/v3/limits").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.body, "limits"), vec![lids[0].clone()]);
    // Asking for another project's limits finds none rather than widening the view.
    let r = cy
        .get(&format!("/v3/limits?project_id={p2}"))
        .await
        .unwrap();
    assert_eq!(r.body["limits"], json!([]));
    assert_eq!(
        cy.get(&format!("/v3/limits/{}", lids[0]))
            .await
            .unwrap()
            .status,
        200
    );
    for other in [&lids[1], &dom] {
        let r = cy.get(&format!("/v3/limits/{other}")).await.unwrap();
        assert_eq!(r.status, 403, "{:?}", r.body);
    }
    // An unknown limit is a 403 to them (the rule sees no project), a 404 to an admin.
    assert_eq!(cy.get("/v3/limits/nope").await.unwrap().status, 403);
    assert_eq!(c.admin.get("/v3/limits/nope").await.unwrap().status, 404);
    // Writes are the admin's.
    let r = cy
        .patch(
            &format!("/v3/limits/{}", lids[0]),
            &json!({"limit": {"resource_limit": 1000}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = cy
        .post(
            "/v3/limits",
            &json!({"limits": [{"service_id": sid, "project_id": p1, "resource_name": "image_count_total", "resource_limit": 1000}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        cy.delete(&format!("/v3/limits/{}", lids[0]))
            .await
            .unwrap()
            .status,
        403
    );
    // Anyone scoped reads the model.
    assert_eq!(cy.get("/v3/limits/model").await.unwrap().status, 200);

    // A system-scoped admin sees everything, as tempest's system admin does.
    let sys = system_admin(&c).await;
    let r = sys.get("/v3/limits").await.unwrap();
    assert_eq!(r.body["limits"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn tempest_image_quota_setup_works_with_a_system_admin() {
    // tempest.scenario.test_unified_limits: devstack registers glance's limits in the
    // catalog region, the test finds glance by name, creates then updates project limits.
    let c = TestCloud::start().await;
    let sys = system_admin(&c).await;
    let services = sys.get("/v3/services").await.unwrap();
    let glance = services.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "glance")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .expect("bootstrap registers glance");
    let r = sys
        .post(
            "/v3/registered_limits",
            &json!({"registered_limits": [
                {"service_id": glance, "region_id": "RegionOne", "resource_name": "image_count_total", "default_limit": 1000},
                {"service_id": glance, "region_id": "RegionOne", "resource_name": "image_size_total", "default_limit": 1000},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (pid, _) = c.project_user("tp", "tu", "pw-tu", "member").await;
    let r = sys
        .post(
            "/v3/limits",
            &json!({"limits": [{"service_id": glance, "project_id": pid, "resource_name": "image_count_total",
                "resource_limit": 10, "region_id": "RegionOne",
                "description": format!("image_count_total limit for {pid}")}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let lid = r.body["limits"][0]["id"].as_str().unwrap().to_string();
    let r = sys
        .patch(
            &format!("/v3/limits/{lid}"),
            &json!({"limit": {"resource_limit": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let identity = &c.cloud.identity;
    assert_eq!(
        identity
            .effective_limit(&pid, "image", "image_count_total")
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        identity
            .effective_limit(&pid, "image", "image_size_total")
            .await
            .unwrap(),
        Some(1000)
    );
    // A limit for a resource nobody registered is refused as tempest expects (it skips).
    let r = sys
        .post(
            "/v3/limits",
            &json!({"limits": [{"service_id": glance, "project_id": pid, "resource_name": "image_stage_total",
                "resource_limit": 10, "region_id": "RegionOne"}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn effective_limit_is_the_project_limit_else_the_registered_default() {
    let c = TestCloud::start().await;
    let identity = c.cloud.identity.clone();
    let (p1, _) = c.project_user("p1", "ed", "pw-ed", "member").await;
    let (p2, _) = c.project_user("p2", "flo", "pw-flo", "member").await;
    // Nothing registered: unlimited.
    assert_eq!(
        identity
            .effective_limit(&p1, "block-storage", "volumes")
            .await
            .unwrap(),
        None
    );
    let sid = service(&c, "block-storage").await;
    let rid = register_one(&c, &sid, None, "volumes", 10).await;
    assert_eq!(
        identity
            .effective_limit(&p1, "block-storage", "volumes")
            .await
            .unwrap(),
        Some(10)
    );
    // Another type or resource is not it.
    assert_eq!(
        identity
            .effective_limit(&p1, "compute", "volumes")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        identity
            .effective_limit(&p1, "block-storage", "snapshots")
            .await
            .unwrap(),
        None
    );
    let r = limit(
        &c,
        json!({"service_id": sid, "project_id": p1, "resource_name": "volumes", "resource_limit": 3}),
    )
    .await;
    assert_eq!(r.status, 201);
    let lid = r.body["limits"][0]["id"].as_str().unwrap().to_string();
    // A domain limit does not apply to its projects in the flat model.
    assert_eq!(
        limit(
            &c,
            json!({"service_id": sid, "domain_id": "default", "resource_name": "volumes", "resource_limit": 1}),
        )
        .await
        .status,
        201
    );
    assert_eq!(
        identity
            .effective_limit(&p1, "block-storage", "volumes")
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        identity
            .effective_limit(&p2, "block-storage", "volumes")
            .await
            .unwrap(),
        Some(10)
    );
    // Updates are seen at once; 0 shuts the project off; -1 is unlimited.
    for (v, expect) in [(0, Some(0)), (-1, None), (7, Some(7))] {
        let r = c
            .admin
            .patch(
                &format!("/v3/limits/{lid}"),
                &json!({"limit": {"resource_limit": v}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            identity
                .effective_limit(&p1, "block-storage", "volumes")
                .await
                .unwrap(),
            expect
        );
    }
    // A region-less registration wins over a regional one of the same resource.
    register_one(&c, &sid, Some("RegionOne"), "volumes", 99).await;
    assert_eq!(
        identity
            .effective_limit(&p2, "block-storage", "volumes")
            .await
            .unwrap(),
        Some(10)
    );
    // Deleting the project takes its limits with it.
    assert_eq!(
        c.admin
            .delete(&format!("/v3/projects/{p1}"))
            .await
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        c.admin
            .get(&format!("/v3/limits/{lid}"))
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        identity
            .effective_limit(&p1, "block-storage", "volumes")
            .await
            .unwrap(),
        Some(10)
    );
    // The domain limit still holds the registration.
    let r = c
        .admin
        .delete(&format!("/v3/registered_limits/{rid}"))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn effective_limit_without_a_configured_region_reads_the_lowest_region() {
    let c = TestCloud::start().await;
    let (p1, _) = c.project_user("p1", "gus", "pw-gus", "member").await;
    let r = c
        .admin
        .post("/v3/regions", &json!({"region": {"id": "RegionTwo"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let sid = service(&c, "network").await;
    register_one(&c, &sid, Some("RegionTwo"), "ports", 20).await;
    register_one(&c, &sid, Some("RegionOne"), "ports", 10).await;
    // No region configured: the lowest region id, whatever the order of creation.
    assert_eq!(
        c.cloud
            .identity
            .effective_limit(&p1, "network", "ports")
            .await
            .unwrap(),
        Some(10)
    );
    // A project limit under another region's registration does not count.
    let r = limit(
        &c,
        json!({"service_id": sid, "project_id": p1, "region_id": "RegionTwo", "resource_name": "ports", "resource_limit": 2}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        c.cloud
            .identity
            .effective_limit(&p1, "network", "ports")
            .await
            .unwrap(),
        Some(10)
    );
}

/// A user with `role` on a new domain `name`, logged in domain-scoped; returns the client,
/// the domain id and a project of that domain.
async fn domain_user(c: &TestCloud, name: &str, role: &str) -> (Client, String, String) {
    let d = c
        .admin
        .post("/v3/domains", &json!({"domain": {"name": name}}))
        .await
        .unwrap();
    assert_eq!(d.status, 201, "{:?}", d.body);
    let did = d.body["domain"]["id"].as_str().unwrap().to_string();
    let p = c
        .admin
        .post(
            "/v3/projects",
            &json!({"project": {"name": format!("{name}-p"), "domain_id": did}}),
        )
        .await
        .unwrap();
    let pid = p.body["project"]["id"].as_str().unwrap().to_string();
    let u = c
        .admin
        .post(
            "/v3/users",
            &json!({"user": {"name": format!("{name}-u"), "domain_id": did, "password": "pw"}}),
        )
        .await
        .unwrap();
    let uid = u.body["user"]["id"].as_str().unwrap().to_string();
    let rid = c.role_id(role).await;
    let g = c
        .admin
        .put(&format!("/v3/domains/{did}/users/{uid}/roles/{rid}"), None)
        .await
        .unwrap();
    assert_eq!(g.status, 204);
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": uid, "password": "pw"}}}, "scope": {"domain": {"id": did}}}});
    (Client::login(&c.url, &body).await.unwrap().0, did, pid)
}

#[tokio::test]
async fn domain_users_see_their_domains_limits_and_domain_admins_see_all_but_write_none() {
    // keystone-tempest-plugin's rbac test_limit personas, domain-scoped.
    let c = TestCloud::start().await;
    let sid = service(&c, "image").await;
    register_one(&c, &sid, Some("RegionOne"), "image_count_total", 5).await;
    let (reader, did, own_project) = domain_user(&c, "dr", "reader").await;
    let (elsewhere, _) = c.project_user("other", "oz", "pw-oz", "member").await;
    let mut lids = Vec::new();
    for item in [
        json!({"project_id": own_project}),
        json!({"project_id": elsewhere}),
        json!({"domain_id": did}),
    ] {
        let mut body = json!({"service_id": sid, "region_id": "RegionOne",
            "resource_name": "image_count_total", "resource_limit": 10});
        body.as_object_mut()
            .unwrap()
            .extend(item.as_object().unwrap().clone());
        let r = limit(&c, body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        lids.push(r.body["limits"][0]["id"].as_str().unwrap().to_string());
    }
    let r = reader.get("/v3/limits").await.unwrap();
    assert_eq!(r.status, 200);
    let mut expect = vec![lids[0].clone(), lids[2].clone()];
    expect.sort();
    assert_eq!(ids(&r.body, "limits"), expect);
    assert_eq!(
        reader
            .get(&format!("/v3/limits/{}", lids[0]))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        reader
            .get(&format!("/v3/limits/{}", lids[2]))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        reader
            .get(&format!("/v3/limits/{}", lids[1]))
            .await
            .unwrap()
            .status,
        403
    );

    // A domain admin holds `admin`: sees every limit, but the write rules are for system
    // and project scopes only.
    let (dadmin, _, dproject) = domain_user(&c, "da", "admin").await;
    let r = dadmin.get("/v3/limits").await.unwrap();
    assert_eq!(r.body["limits"].as_array().unwrap().len(), 3);
    let r = dadmin
        .post(
            "/v3/limits",
            &json!({"limits": [{"service_id": sid, "region_id": "RegionOne", "project_id": dproject,
                "resource_name": "image_count_total", "resource_limit": 1}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = dadmin
        .patch(
            &format!("/v3/limits/{}", lids[0]),
            &json!({"limit": {"description": "x"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = dadmin
        .post(
            "/v3/registered_limits",
            &json!({"registered_limits": [{"service_id": sid, "resource_name": "x", "default_limit": 1}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}
