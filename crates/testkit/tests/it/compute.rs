//! The compute API (Nova v2.1) as a client sees it: version discovery and microversions,
//! flavors with extra specs and access lists, key pairs, quotas and limits, availability
//! zones and services — the happy paths and upstream's faults for bad input.

use ferro_testkit::TestCloud;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A compute client with a token and an optional microversion.
#[derive(Clone)]
struct Nova {
    base: String,
    token: Option<String>,
    version: Option<String>,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The message of a Nova fault named `name` with this answer's status.
    fn fault(&self, name: &str) -> String {
        assert_eq!(
            self.body[name]["code"],
            json!(self.status),
            "fault {name}: {}",
            self.body
        );
        self.body[name]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Nova {
    fn at(&self, version: &str) -> Nova {
        Nova {
            version: Some(version.to_string()),
            ..self.clone()
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(v) = &self.version {
            req = req.header("OpenStack-API-Version", format!("compute {v}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }
}

fn admin(c: &TestCloud) -> Nova {
    Nova {
        base: c.compute_url.clone(),
        token: c.admin.token.clone(),
        version: None,
    }
}

/// A member of a fresh project: `(client, project id, user id)`.
async fn member(c: &TestCloud, project: &str, user: &str) -> (Nova, String, String) {
    let (pid, uid) = c.project_user(project, user, "pw", "member").await;
    let (client, _) = c.login(user, "pw", Some(project)).await.unwrap();
    let nova = Nova {
        base: c.compute_url.clone(),
        token: client.token.clone(),
        version: None,
    };
    (nova, pid, uid)
}

fn admin_project(c: &TestCloud) -> String {
    c.admin_token["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create_flavor(n: &Nova, body: Value) -> Value {
    let r = n.post("/v2.1/flavors", json!({ "flavor": body })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["flavor"].clone()
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn versions_catalog_and_microversion_negotiation() {
    let c = TestCloud::start().await;
    let anon = Nova {
        base: c.compute_url.clone(),
        token: None,
        version: None,
    };
    // `/` lists both versions with 200, as Nova answers its root.
    let r = anon.get("/").await;
    assert_eq!(r.status, 200);
    let versions = r.body["versions"].as_array().unwrap();
    assert_eq!(versions[0]["id"], "v2.0");
    assert_eq!(versions[1]["id"], "v2.1");
    assert_eq!(versions[1]["status"], "CURRENT");
    assert_eq!(versions[1]["min_version"], "2.1");
    assert_eq!(versions[1]["version"], "2.104");
    assert_eq!(
        versions[1]["links"][0]["href"],
        json!(format!("{}/v2.1/", c.compute_url))
    );
    let r = anon.get("/v2.1/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"]["id"], "v2.1");
    assert_eq!(r.body["version"]["links"][0]["rel"], "self");
    // Other unversioned paths get the choices, 300.
    let r = anon.get("/v3/whatever").await;
    assert_eq!(r.status, 300);
    assert_eq!(r.body["choices"][1]["id"], "v2.1");

    // The catalog points clients at /v2.1 under type compute, name nova.
    let compute = c.admin_token["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "compute")
        .cloned()
        .expect("compute in catalog");
    assert_eq!(compute["name"], "nova");
    let urls: Vec<&str> = compute["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(
        urls.contains(&format!("{}/v2.1", c.compute_url).as_str()),
        "{urls:?}"
    );

    // Without a token: keystonemiddleware's 401, before any version check.
    let r = anon.at("9.9").get("/v2.1/flavors").await;
    assert_eq!(r.status, 401);
    assert!(r.header("openstack-api-version").is_none());

    let a = admin(&c);
    let r = a.get("/v2.1/flavors").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("openstack-api-version"), Some("compute 2.1"));
    assert_eq!(r.header("x-openstack-nova-api-version"), Some("2.1"));
    let vary: Vec<&str> = r
        .headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.contains(&"OpenStack-API-Version"), "{vary:?}");
    assert!(vary.contains(&"X-OpenStack-Nova-API-Version"), "{vary:?}");
    let r = a.at("latest").get("/v2.1/flavors").await;
    assert_eq!(r.header("openstack-api-version"), Some("compute 2.104"));
    let r = a.at("2.60").get("/v2.1/flavors").await;
    assert_eq!(r.header("x-openstack-nova-api-version"), Some("2.60"));
    // The legacy header alone.
    let r = reqwest::Client::new()
        .get(format!("{}/v2.1/flavors", c.compute_url))
        .header("X-Auth-Token", a.token.clone().unwrap())
        .header("X-OpenStack-Nova-API-Version", "2.10")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("openstack-api-version").unwrap(),
        "compute 2.10"
    );

    let r = a.at("2.105").get("/v2.1/flavors").await;
    assert_eq!(r.status, 406);
    assert_eq!(
        r.fault("computeFault"),
        "Version 2.105 is not supported by the API. Minimum is 2.1 and maximum is 2.104."
    );
    let r = a.at("2.x").get("/v2.1/flavors").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault("badRequest"),
        "API Version String 2.x is of invalid format. Must be of format MajorNum.MinorNum."
    );
    // Faults of a valid version carry its headers too.
    let r = a.at("2.50").get("/v2.1/flavors/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.fault("itemNotFound"), "Flavor nope could not be found.");
    assert_eq!(r.header("openstack-api-version"), Some("compute 2.50"));
}

#[tokio::test]
async fn flavors_create_show_list_update_delete() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let f = create_flavor(
        &a,
        json!({"name": "m1.tiny", "id": "1", "ram": 512, "vcpus": 1, "disk": 1}),
    )
    .await;
    assert_eq!(f["id"], "1");
    assert_eq!(f["swap"], "");
    assert_eq!(f["rxtx_factor"], 1.0);
    assert_eq!(f["os-flavor-access:is_public"], true);
    assert_eq!(f["OS-FLV-DISABLED:disabled"], false);
    assert_eq!(
        f["links"][0]["href"],
        json!(format!("{}/v2.1/flavors/1", c.compute_url))
    );
    assert_eq!(
        f["links"][1]["href"],
        json!(format!("{}/flavors/1", c.compute_url))
    );
    // An id is made up when none (or null) is given; numbers become text.
    let auto = create_flavor(
        &a,
        json!({"name": "auto", "id": null, "ram": "1024", "vcpus": "2", "disk": 10, "swap": 512}),
    )
    .await;
    assert_eq!(auto["id"].as_str().unwrap().len(), 36);
    assert_eq!(auto["ram"], 1024);
    let num = create_flavor(
        &a,
        json!({"name": "num", "id": 42, "ram": 2048, "vcpus": 2, "disk": 20}),
    )
    .await;
    assert_eq!(num["id"], "42");
    let desc = a
        .at("2.55")
        .post(
            "/v2.1/flavors",
            json!({"flavor": {"name": "described", "ram": 4096, "vcpus": 4, "disk": 40,
                "description": "big one", "OS-FLV-EXT-DATA:ephemeral": 5}}),
        )
        .await;
    assert_eq!(desc.status, 200, "{}", desc.body);
    assert_eq!(desc.body["flavor"]["description"], "big one");
    let desc_id = desc.body["flavor"]["id"].as_str().unwrap().to_string();

    // Show per microversion.
    let r = a.get("/v2.1/flavors/1").await;
    assert_eq!(r.status, 200);
    assert!(r.body["flavor"].get("description").is_none());
    let r = a.at("2.75").get(&format!("/v2.1/flavors/{desc_id}")).await;
    assert_eq!(r.body["flavor"]["swap"], 0);
    assert_eq!(r.body["flavor"]["OS-FLV-EXT-DATA:ephemeral"], 5);
    assert_eq!(r.body["flavor"]["extra_specs"], json!({}));
    let r = a.at("2.102").get("/v2.1/flavors/1").await;
    assert!(r.body["flavor"].get("rxtx_factor").is_none());
    let r = a.at("2.102").get("/v2.1/flavors/1?colour=red").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault("badRequest"),
        "Additional properties are not allowed ('colour' was unexpected)"
    );

    // Lists: default order by flavor id, filters, paging with a next link.
    let r = a.get("/v2.1/flavors").await;
    assert_eq!(r.status, 200);
    let all = ids(&r.body, "flavors");
    assert_eq!(all.len(), 4);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(r.body["flavors"][0].get("ram").is_none());
    let r = a
        .get("/v2.1/flavors/detail?minRam=2048&sort_key=memory_mb&sort_dir=desc")
        .await;
    assert_eq!(ids(&r.body, "flavors"), vec![desc_id.clone(), "42".into()]);
    let r = a
        .get("/v2.1/flavors/detail?minDisk=20&sort_key=memory_mb")
        .await;
    assert_eq!(
        ids(&r.body, "flavors"),
        vec!["42".to_string(), desc_id.clone()]
    );
    let r = a.get("/v2.1/flavors?limit=2&sort_key=memory_mb").await;
    assert_eq!(
        ids(&r.body, "flavors"),
        vec!["1".to_string(), auto["id"].as_str().unwrap().into()]
    );
    let next = r.body["flavors_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains("marker="), "{next}");
    let path = next.strip_prefix(&c.compute_url).unwrap();
    let r = a.get(path).await;
    assert_eq!(
        ids(&r.body, "flavors"),
        vec!["42".to_string(), desc_id.clone()]
    );
    let r = a.get("/v2.1/flavors?marker=nope").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.fault("badRequest"), "marker [nope] not found");
    let r = a.get("/v2.1/flavors?minRam=big").await;
    assert_eq!(r.fault("badRequest"), "Invalid minRam filter [big]");
    let r = a.get("/v2.1/flavors?limit=-1").await;
    assert_eq!(
        r.fault("badRequest"),
        "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'"
    );
    let r = a.get("/v2.1/flavors?sort_key=colour").await;
    assert_eq!(r.status, 400);
    let r = a.get("/v2.1/flavors?is_public=maybe").await;
    assert_eq!(r.fault("badRequest"), "Invalid is_public filter [maybe]");
    let r = a.at("2.102").get("/v2.1/flavors?name=^m1").await;
    assert_eq!(ids(&r.body, "flavors"), vec!["1".to_string()]);
    // Before 2.75 unknown parameters are ignored; from 2.75 they are refused.
    assert_eq!(a.get("/v2.1/flavors?colour=red").await.status, 200);
    assert_eq!(
        a.at("2.75").get("/v2.1/flavors?colour=red").await.status,
        400
    );

    // Description updates exist from 2.55.
    let r = a
        .put("/v2.1/flavors/1", json!({"flavor": {"description": "d"}}))
        .await;
    assert_eq!(r.status, 404);
    let r = a
        .at("2.55")
        .put(
            "/v2.1/flavors/1",
            json!({"flavor": {"description": "tiny"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["flavor"]["description"], "tiny");
    let r = a
        .at("2.55")
        .put("/v2.1/flavors/1", json!({"flavor": {"name": "x"}}))
        .await;
    assert_eq!(r.status, 400);

    // Delete: 202, then gone.
    let r = a.delete("/v2.1/flavors/42").await;
    assert_eq!(r.status, 202);
    assert_eq!(a.get("/v2.1/flavors/42").await.status, 404);
    let r = a.delete("/v2.1/flavors/42").await;
    assert_eq!(r.fault("itemNotFound"), "Flavor 42 could not be found.");
}

#[tokio::test]
async fn flavor_create_refuses_bad_input_duplicates_and_non_admins() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let cases = [
        (
            json!({"flavor": {"name": "x", "vcpus": 1, "disk": 0}}),
            "Invalid input for field/attribute flavor. Value: {'disk': 0, 'name': 'x', 'vcpus': 1}. 'ram' is a required property",
        ),
        (
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 0, "disk": 0}}),
            "Invalid input for field/attribute vcpus. Value: 0. 0 is less than the minimum of 1",
        ),
        (
            json!({"flavor": {"name": "x", "ram": -1, "vcpus": 1, "disk": 0}}),
            "Invalid input for field/attribute ram. Value: -1. -1 is less than the minimum of 1",
        ),
        (
            json!({"flavor": {"name": "x", "ram": "-1", "vcpus": 1, "disk": 0}}),
            "Invalid input for field/attribute ram. Value: -1. '-1' does not match '^[0-9]+$'",
        ),
        (
            json!({"flavor": {"name": " x", "ram": 64, "vcpus": 1, "disk": 0}}),
            "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace.",
        ),
        (
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "description": "d"}}),
            "Invalid input for field/attribute flavor. Value: {'description': 'd', 'disk': 0, 'name': 'x', 'ram': 64, 'vcpus': 1}. Additional properties are not allowed ('description' was unexpected)",
        ),
        (
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "id": "a/b"}}),
            "Invalid input for field/attribute id. Value: a/b. 'a/b' does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'",
        ),
        (
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": "perhaps"}}),
            "Invalid input for field/attribute os-flavor-access:is_public. Value: perhaps. 'perhaps' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']",
        ),
        (json!({"flavour": {}}), "'flavor' is a required property"),
    ];
    for (body, message) in cases {
        let r = a.post("/v2.1/flavors", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.fault("badRequest"), message, "{body}");
    }
    let r = a
        .post(
            "/v2.1/flavors",
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "rxtx_factor": "0"}}),
        )
        .await;
    assert_eq!(
        r.fault("badRequest"),
        "Invalid input received: 'rxtx_factor' argument must be a float between 0 and 3.40282e+38"
    );
    // Malformed JSON, an empty body and a foreign media type.
    let raw = reqwest::Client::new()
        .post(format!("{}/v2.1/flavors", c.compute_url))
        .header("X-Auth-Token", a.token.clone().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let b: Value = raw.json().await.unwrap();
    assert_eq!(b["badRequest"]["message"], "Malformed request body");
    let r = a.send(Method::POST, "/v2.1/flavors", None).await;
    assert_eq!(r.fault("badRequest"), "None is not of type 'object'");
    let raw = reqwest::Client::new()
        .post(format!("{}/v2.1/flavors", c.compute_url))
        .header("X-Auth-Token", a.token.clone().unwrap())
        .header("content-type", "application/xml")
        .body("<flavor/>")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 415);
    let b: Value = raw.json().await.unwrap();
    assert_eq!(b["badMediaType"]["message"], "Unsupported Content-Type");

    create_flavor(
        &a,
        json!({"name": "dup", "id": "d1", "ram": 64, "vcpus": 1, "disk": 0}),
    )
    .await;
    let r = a
        .post(
            "/v2.1/flavors",
            json!({"flavor": {"name": "other", "id": "d1", "ram": 64, "vcpus": 1, "disk": 0}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault("conflictingRequest"),
        "Flavor with ID d1 already exists."
    );
    let r = a
        .post(
            "/v2.1/flavors",
            json!({"flavor": {"name": "dup", "ram": 64, "vcpus": 1, "disk": 0}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault("conflictingRequest"),
        "Flavor with name dup already exists."
    );

    // Members may not create (valid body: 403; invalid body: still 400, validation first).
    let (m, _, _) = member(&c, "alpha", "amy").await;
    let r = m
        .post(
            "/v2.1/flavors",
            json!({"flavor": {"name": "mine", "ram": 64, "vcpus": 1, "disk": 0}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.fault("forbidden"),
        "You are not authorized to perform the requested action: os_compute_api:os-flavor-manage:create."
    );
    let r = m.post("/v2.1/flavors", json!({"flavor": {}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(m.delete("/v2.1/flavors/d1").await.status, 403);
    assert_eq!(m.get("/v2.1/flavors/d1").await.status, 200);
}

#[tokio::test]
async fn extra_specs_and_private_flavor_access() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let (m, project, _) = member(&c, "alpha", "amy").await;
    create_flavor(
        &a,
        json!({"name": "pub", "id": "p1", "ram": 64, "vcpus": 1, "disk": 0}),
    )
    .await;
    let private = create_flavor(
        &a,
        json!({"name": "priv", "id": "x1", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": false}),
    )
    .await;
    assert_eq!(private["os-flavor-access:is_public"], false);

    // Extra specs: create (numbers are kept as sent in the answer, stored as text).
    let r = a
        .post(
            "/v2.1/flavors/p1/os-extra_specs",
            json!({"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 1024}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["extra_specs"]["quota:cpu_shares"], 1024);
    let r = m.get("/v2.1/flavors/p1/os-extra_specs").await;
    assert_eq!(
        r.body,
        json!({"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "1024"}})
    );
    let r = m.get("/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy").await;
    assert_eq!(r.body, json!({"hw:cpu_policy": "dedicated"}));
    let r = m.get("/v2.1/flavors/p1/os-extra_specs/nope").await;
    assert_eq!(
        r.fault("itemNotFound"),
        "Flavor p1 has no extra specs with key nope."
    );
    let r = a
        .put(
            "/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy",
            json!({"hw:cpu_policy": "shared"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = a
        .put(
            "/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy",
            json!({"other": "x"}),
        )
        .await;
    assert_eq!(r.fault("badRequest"), "Request body and URI mismatch");
    let r = a
        .put(
            "/v2.1/flavors/p1/os-extra_specs/a",
            json!({"a": "1", "b": "2"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .post(
            "/v2.1/flavors/p1/os-extra_specs",
            json!({"extra_specs": {"bad/key": "x"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = m
        .post(
            "/v2.1/flavors/p1/os-extra_specs",
            json!({"extra_specs": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 403);
    // 2.61 shows extra specs in flavor bodies.
    let r = m.at("2.61").get("/v2.1/flavors/p1").await;
    assert_eq!(r.body["flavor"]["extra_specs"]["hw:cpu_policy"], "shared");
    let r = a
        .delete("/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy")
        .await;
    assert_eq!(r.status, 200);
    let r = a
        .delete("/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy")
        .await;
    assert_eq!(r.status, 404);
    let r = a.get("/v2.1/flavors/nope/os-extra_specs").await;
    assert_eq!(r.status, 404);

    // The private flavor is invisible to the member's project until granted.
    assert_eq!(m.get("/v2.1/flavors/x1").await.status, 404);
    assert!(!ids(&m.get("/v2.1/flavors").await.body, "flavors").contains(&"x1".to_string()));
    // Admins see private flavors only when asking for them.
    assert!(!ids(&a.get("/v2.1/flavors").await.body, "flavors").contains(&"x1".to_string()));
    assert!(
        ids(&a.get("/v2.1/flavors?is_public=none").await.body, "flavors")
            .contains(&"x1".to_string())
    );
    assert_eq!(
        ids(
            &a.get("/v2.1/flavors?is_public=false").await.body,
            "flavors"
        ),
        vec!["x1"]
    );

    let r = a
        .post(
            "/v2.1/flavors/x1/action",
            json!({"addTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"flavor_access": [{"flavor_id": "x1", "tenant_id": project}]})
    );
    assert_eq!(m.get("/v2.1/flavors/x1").await.status, 200);
    assert!(ids(&m.get("/v2.1/flavors").await.body, "flavors").contains(&"x1".to_string()));
    let r = a.get("/v2.1/flavors/x1/os-flavor-access").await;
    assert_eq!(r.body["flavor_access"][0]["tenant_id"], json!(project));
    assert_eq!(m.get("/v2.1/flavors/x1/os-flavor-access").await.status, 403);
    let r = a
        .post(
            "/v2.1/flavors/x1/action",
            json!({"addTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault("conflictingRequest"),
        format!("Flavor access already exists for flavor x1 and project {project} combination.")
    );
    let r = a.get("/v2.1/flavors/p1/os-flavor-access").await;
    assert_eq!(
        r.fault("itemNotFound"),
        "Access list not available for public flavors."
    );
    let r = a
        .at("2.7")
        .post(
            "/v2.1/flavors/p1/action",
            json!({"addTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(
        r.fault("conflictingRequest"),
        "Can not add access to a public flavor."
    );
    let r = a
        .post(
            "/v2.1/flavors/x1/action",
            json!({"addTenantAccess": {"tenant": "no-such-project"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault("badRequest"),
        "Project ID no-such-project is not a valid project."
    );
    let r = a
        .post("/v2.1/flavors/x1/action", json!({"shrink": {}}))
        .await;
    assert_eq!(r.fault("badRequest"), "There is no such action: shrink");
    let r = a
        .post("/v2.1/flavors/x1/action", json!({"addTenantAccess": {}}))
        .await;
    assert_eq!(r.status, 400);

    let r = a
        .post(
            "/v2.1/flavors/x1/action",
            json!({"removeTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"flavor_access": []}));
    assert_eq!(m.get("/v2.1/flavors/x1").await.status, 404);
    let r = a
        .post(
            "/v2.1/flavors/x1/action",
            json!({"removeTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(
        r.fault("itemNotFound"),
        format!("Flavor access not found for x1 / {project} combination.")
    );
}

/// An ed25519 public key line (key bytes all 9s).
fn ed25519_key() -> String {
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ test@ferrostack"
        .to_string()
}

#[tokio::test]
async fn keypairs_generate_import_list_show_delete() {
    let c = TestCloud::start().await;
    let (m, _, uid) = member(&c, "alpha", "amy").await;
    // Before 2.92 Nova generates an RSA pair and hands out the private key once.
    let r = m
        .post("/v2.1/os-keypairs", json!({"keypair": {"name": "gen"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let k = &r.body["keypair"];
    assert!(
        k["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert!(k["public_key"].as_str().unwrap().starts_with("ssh-rsa "));
    assert_eq!(k["user_id"], json!(uid));
    assert_eq!(k["fingerprint"].as_str().unwrap().split(':').count(), 16);
    assert!(k.get("type").is_none());
    // From 2.92 a public key is required; importing answers 201 without a private key.
    let r = m
        .at("2.92")
        .post("/v2.1/os-keypairs", json!({"keypair": {"name": "gen2"}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault("badRequest"),
        "Invalid input for field/attribute keypair. Value: {'name': 'gen2'}. 'public_key' is a required property"
    );
    let key = ed25519_key();
    let r = m
        .at("2.92")
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "me@laptop.one", "public_key": key}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["keypair"]["type"], "ssh");
    assert!(r.body["keypair"].get("private_key").is_none());
    let fingerprint = r.body["keypair"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    // Names with @ and . are refused before 2.92.
    let r = m
        .at("2.91")
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "a@b", "public_key": key}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = m
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "bad", "public_key": "ssh-rsa notakey"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fault("badRequest"),
        "Keypair data is invalid: failed to generate fingerprint"
    );
    let r = m
        .at("2.2")
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "cert", "type": "x509", "public_key": "not a cert"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.fault("badRequest")
            .starts_with("Keypair data is invalid: failed to generate X509 fingerprint.")
    );
    let r = m
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "gen", "public_key": key}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault("conflictingRequest"),
        "Key pair 'gen' already exists."
    );

    let r = m.get("/v2.1/os-keypairs").await;
    let names: Vec<&str> = r.body["keypairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keypair"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["gen", "me@laptop.one"]);
    let r = m.at("2.2").get("/v2.1/os-keypairs/me@laptop.one").await;
    assert_eq!(r.status, 200);
    let k = &r.body["keypair"];
    assert_eq!(k["fingerprint"], json!(fingerprint));
    assert_eq!(k["type"], "ssh");
    assert_eq!(k["deleted"], false);
    assert!(k["id"].is_i64());
    assert_eq!(k["public_key"], json!(key));
    // Paging from 2.35.
    let r = m.at("2.35").get("/v2.1/os-keypairs?limit=1").await;
    assert_eq!(r.body["keypairs"].as_array().unwrap().len(), 1);
    let next = r.body["keypairs_links"][0]["href"].as_str().unwrap();
    assert!(
        next.ends_with("/v2.1/os-keypairs?limit=1&marker=gen"),
        "{next}"
    );
    let r = m.at("2.35").get("/v2.1/os-keypairs?marker=gen").await;
    assert_eq!(r.body["keypairs"][0]["keypair"]["name"], "me@laptop.one");
    let r = m.at("2.35").get("/v2.1/os-keypairs?marker=nope").await;
    assert_eq!(r.fault("badRequest"), "Marker nope could not be found.");

    // Another user's key pairs need an admin (2.10+).
    let a = admin(&c);
    let r = a
        .at("2.10")
        .get(&format!("/v2.1/os-keypairs?user_id={uid}"))
        .await;
    assert_eq!(r.body["keypairs"].as_array().unwrap().len(), 2);
    let (other, _, other_uid) = member(&c, "beta", "bob").await;
    let r = other
        .at("2.10")
        .get(&format!("/v2.1/os-keypairs?user_id={uid}"))
        .await;
    assert_eq!(r.status, 403);
    let r = a
        .at("2.10")
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "given", "public_key": key, "user_id": other_uid}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["keypair"]["user_id"], json!(other_uid));
    assert_eq!(other.get("/v2.1/os-keypairs/given").await.status, 200);

    let r = m.delete("/v2.1/os-keypairs/gen").await;
    assert_eq!(r.status, 202);
    let r = m.at("2.2").delete("/v2.1/os-keypairs/me@laptop.one").await;
    assert_eq!(r.status, 204);
    let r = m.get("/v2.1/os-keypairs/gen").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.fault("itemNotFound"),
        format!("Keypair gen not found for user {uid}")
    );
}

#[tokio::test]
async fn quotas_limits_and_the_key_pair_quota() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let (m, project, _) = member(&c, "alpha", "amy").await;
    let r = m.get(&format!("/v2.1/os-quota-sets/{project}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let q = &r.body["quota_set"];
    assert_eq!(q["id"], json!(project));
    for (k, v) in [
        ("instances", 10),
        ("cores", 20),
        ("ram", 51200),
        ("key_pairs", 100),
        ("server_groups", 10),
        ("server_group_members", 10),
        ("metadata_items", 128),
        ("injected_files", 5),
        ("injected_file_content_bytes", 10240),
        ("injected_file_path_bytes", 255),
        ("floating_ips", -1),
        ("security_groups", -1),
    ] {
        assert_eq!(q[k], json!(v), "{k}");
    }
    let r = m
        .at("2.36")
        .get(&format!("/v2.1/os-quota-sets/{project}"))
        .await;
    assert!(r.body["quota_set"].get("floating_ips").is_none());
    assert_eq!(r.body["quota_set"]["injected_files"], 5);
    let r = m
        .at("2.57")
        .get(&format!("/v2.1/os-quota-sets/{project}"))
        .await;
    assert!(r.body["quota_set"].get("injected_files").is_none());
    let r = m
        .get(&format!("/v2.1/os-quota-sets/{project}/detail"))
        .await;
    assert_eq!(
        r.body["quota_set"]["instances"],
        json!({"in_use": 0, "limit": 10, "reserved": 0})
    );
    let r = m
        .get(&format!("/v2.1/os-quota-sets/{project}/defaults"))
        .await;
    assert_eq!(r.body["quota_set"]["cores"], 20);
    // Another project's quotas are not a member's to read; updates are admin only.
    let admin_project = admin_project(&c);
    assert_eq!(
        m.get(&format!("/v2.1/os-quota-sets/{admin_project}"))
            .await
            .status,
        403
    );
    let r = m
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"instances": 50}}),
        )
        .await;
    assert_eq!(r.status, 403);

    let r = a
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"instances": 5, "cores": "8"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_set"]["instances"], 5);
    assert_eq!(r.body["quota_set"]["cores"], 8);
    assert!(r.body["quota_set"].get("id").is_none());
    assert_eq!(
        m.get(&format!("/v2.1/os-quota-sets/{project}")).await.body["quota_set"]["instances"],
        5
    );
    let r = a
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"instances": -2}}),
        )
        .await;
    assert_eq!(
        r.fault("badRequest"),
        "Invalid input for field/attribute instances. Value: -2. -2 is less than the minimum of -1"
    );
    let r = a
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"networks": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .at("2.36")
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"floating_ips": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .put(
            "/v2.1/os-quota-sets/no-such-project",
            json!({"quota_set": {"instances": 1}}),
        )
        .await;
    assert_eq!(
        r.fault("badRequest"),
        "Project ID no-such-project is not a valid project."
    );

    // Limits reflect the project's quotas and usage.
    let r = m.get("/v2.1/limits").await;
    assert_eq!(r.status, 200);
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(abs["maxTotalInstances"], 5);
    assert_eq!(abs["maxTotalCores"], 8);
    assert_eq!(abs["maxTotalRAMSize"], 51200);
    assert_eq!(abs["maxTotalKeypairs"], 100);
    assert_eq!(abs["maxImageMeta"], 128);
    assert_eq!(abs["totalInstancesUsed"], 0);
    assert_eq!(abs["totalFloatingIpsUsed"], 0);
    assert_eq!(r.body["limits"]["rate"], json!([]));
    let r = m.at("2.57").get("/v2.1/limits").await;
    let abs = &r.body["limits"]["absolute"];
    assert!(abs.get("maxImageMeta").is_none() && abs.get("maxPersonality").is_none());
    assert!(abs.get("totalFloatingIpsUsed").is_none());
    assert_eq!(abs["maxServerMeta"], 128);
    let r = m
        .get(&format!("/v2.1/limits?tenant_id={admin_project}"))
        .await;
    assert_eq!(r.status, 403);
    let r = a.get(&format!("/v2.1/limits?tenant_id={project}")).await;
    assert_eq!(r.body["limits"]["absolute"]["maxTotalInstances"], 5);

    // The key pair quota is enforced per user, atomically with the create.
    let r = a
        .put(
            &format!("/v2.1/os-quota-sets/{project}"),
            json!({"quota_set": {"key_pairs": 1}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let key = ed25519_key();
    let r = m
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "one", "public_key": key}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = m
        .post(
            "/v2.1/os-keypairs",
            json!({"keypair": {"name": "two", "public_key": key}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.fault("forbidden"), "Quota exceeded, too many key pairs.");

    // Delete reverts to the defaults; quota classes move the defaults.
    assert_eq!(
        a.delete(&format!("/v2.1/os-quota-sets/{project}"))
            .await
            .status,
        202
    );
    let r = m.get(&format!("/v2.1/os-quota-sets/{project}")).await;
    assert_eq!(r.body["quota_set"]["instances"], 10);
    assert_eq!(m.get("/v2.1/os-quota-class-sets/default").await.status, 403);
    let r = a.get("/v2.1/os-quota-class-sets/default").await;
    assert_eq!(r.body["quota_class_set"]["id"], "default");
    assert!(r.body["quota_class_set"].get("server_groups").is_none());
    let r = a
        .at("2.50")
        .put(
            "/v2.1/os-quota-class-sets/default",
            json!({"quota_class_set": {"instances": 20}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_class_set"]["instances"], 20);
    assert_eq!(r.body["quota_class_set"]["server_groups"], 10);
    assert!(r.body["quota_class_set"].get("fixed_ips").is_none());
    let r = m
        .get(&format!("/v2.1/os-quota-sets/{project}/defaults"))
        .await;
    assert_eq!(r.body["quota_set"]["instances"], 20);
    let r = m.get(&format!("/v2.1/os-quota-sets/{project}")).await;
    assert_eq!(r.body["quota_set"]["instances"], 20);
    let r = a
        .at("2.50")
        .put(
            "/v2.1/os-quota-class-sets/default",
            json!({"quota_class_set": {"floating_ips": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn availability_zones_and_services_come_from_registered_services() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let (m, _, _) = member(&c, "alpha", "amy").await;
    // Nothing but the API runs yet: no zone, no service (API services are not listed).
    let r = m.get("/v2.1/os-availability-zone").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"availabilityZoneInfo": []}));
    assert_eq!(
        a.get("/v2.1/os-services").await.body,
        json!({"services": []})
    );
    assert_eq!(m.get("/v2.1/os-availability-zone/detail").await.status, 403);
    assert_eq!(m.get("/v2.1/os-services").await.status, 403);

    // A compute agent and a conductor report in.
    let compute = c
        .cloud
        .compute
        .service_report("host1", "nova-compute", "compute")
        .await
        .unwrap();
    c.cloud
        .compute
        .service_report("ctl", "nova-conductor", "conductor")
        .await
        .unwrap();
    let again = c
        .cloud
        .compute
        .service_report("host1", "nova-compute", "compute")
        .await
        .unwrap();
    assert_eq!(again.id, compute.id);
    assert_eq!(again.report_count, 2);

    let r = m.get("/v2.1/os-availability-zone").await;
    assert_eq!(
        r.body,
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]})
    );
    let r = a.get("/v2.1/os-availability-zone/detail").await;
    let zones = r.body["availabilityZoneInfo"].as_array().unwrap();
    let names: Vec<&str> = zones
        .iter()
        .map(|z| z["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["internal", "nova"]);
    let host = &zones[1]["hosts"]["host1"]["nova-compute"];
    assert_eq!(host["available"], true);
    assert_eq!(host["active"], true);

    let r = a.get("/v2.1/os-services").await;
    let list = r.body["services"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let nc = list.iter().find(|s| s["binary"] == "nova-compute").unwrap();
    assert_eq!(nc["host"], "host1");
    assert_eq!(nc["zone"], "nova");
    assert_eq!(nc["status"], "enabled");
    assert_eq!(nc["state"], "up");
    assert!(nc["id"].is_i64());
    assert!(nc.get("forced_down").is_none());
    let r = a
        .at("2.53")
        .get("/v2.1/os-services?binary=nova-conductor")
        .await;
    let list = r.body["services"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["zone"], "internal");
    assert!(list[0]["id"].is_string());
    assert_eq!(list[0]["forced_down"], false);
    let r = a.at("2.75").get("/v2.1/os-services?colour=red").await;
    assert_eq!(r.status, 400);
}
