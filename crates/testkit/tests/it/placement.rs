//! Placement as its clients (nova's report client, osc-placement) see it: version
//! negotiation, providers, inventories, allocations, usages, candidates, faults and policy.

use ferro_testkit::TestCloud;
use serde_json::{Value, json};

/// A placement client speaking one microversion.
#[derive(Clone)]
struct Api {
    base: String,
    token: Option<String>,
    version: Option<String>,
    http: reqwest::Client,
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first fault's `code`.
    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    fn new(c: &TestCloud, version: &str) -> Api {
        Api {
            base: c.placement_url.clone(),
            token: c.admin.token.clone(),
            version: Some(version.to_string()),
            http: reqwest::Client::new(),
        }
    }

    fn at(&self, version: &str) -> Api {
        Api {
            version: Some(version.to_string()),
            ..self.clone()
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(v) = &self.version {
            req = req.header("OpenStack-API-Version", format!("placement {v}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("placement answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(&body)).await
    }
    async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PUT, path, Some(&body)).await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a provider (1.20+ answers it) and returns its uuid.
    async fn provider(&self, name: &str, parent: Option<&str>) -> String {
        let mut body = json!({"name": name});
        if let Some(p) = parent {
            body["parent_provider_uuid"] = json!(p);
        }
        let r = self.post("/resource_providers", body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["uuid"].as_str().unwrap().to_string()
    }

    /// Sets `inventories` on a provider at generation `gen`; returns the new generation.
    async fn inventory(&self, rp: &str, generation: i64, inventories: Value) -> i64 {
        let r = self
            .put(
                &format!("/resource_providers/{rp}/inventories"),
                json!({"resource_provider_generation": generation, "inventories": inventories}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["resource_provider_generation"].as_i64().unwrap()
    }
}

fn uuid() -> String {
    let h = ferro_common::new_hex_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn claim(rp: &str, resources: Value, generation: Value) -> Value {
    json!({
        "allocations": {rp: {"resources": resources}},
        "project_id": "p1",
        "user_id": "u1",
        "consumer_generation": generation,
        "consumer_type": "INSTANCE",
    })
}

#[tokio::test]
async fn version_document_and_microversion_negotiation() {
    let c = TestCloud::start().await;
    let anon = Api {
        token: None,
        version: None,
        ..Api::new(&c, "1.0")
    };
    let r = anon.get("/").await;
    assert_eq!(r.status, 200);
    let v = &r.body["versions"][0];
    assert_eq!(v["id"], "v1.0");
    assert_eq!(v["min_version"], "1.0");
    assert_eq!(v["max_version"], "1.39");
    assert_eq!(v["status"], "CURRENT");
    assert_eq!(r.header("openstack-api-version"), Some("placement 1.0"));
    assert_eq!(r.header("vary"), Some("openstack-api-version"));

    // Everything else needs a token: keystonemiddleware answers before negotiation.
    let r = anon.get("/resource_providers").await;
    assert_eq!(r.status, 401);

    let api = Api::new(&c, "latest");
    let r = api.get("/resource_providers").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("openstack-api-version"), Some("placement 1.39"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.header("last-modified").is_some());

    let r = api.at("1.a").get("/resource_providers").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Invalid microversion")
    );
    let r = api.at("1.99").get("/resource_providers").await;
    assert_eq!(r.status, 406);
    assert_eq!(r.body["errors"][0]["max_version"], "1.39");
    assert_eq!(r.body["errors"][0]["min_version"], "1.0");
    assert!(
        r.body["errors"][0]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req-")
    );

    // Routes newer than the asked version are absent, as upstream's version_handler.
    assert_eq!(api.at("1.5").get("/traits").await.status, 404);
    assert_eq!(api.at("1.6").get("/traits").await.status, 200);
    let r = api
        .at("1.4")
        .delete(&format!("/resource_providers/{}/inventories", uuid()))
        .await;
    assert_eq!(r.status, 405);
    // Error codes appear from 1.23.
    let missing = format!("/resource_providers/{}", uuid());
    assert!(
        api.at("1.22").get(&missing).await.body["errors"][0]
            .get("code")
            .is_none()
    );
    assert_eq!(api.at("1.23").get(&missing).await.status, 404);
    assert_eq!(
        api.at("1.23").get(&missing).await.code(),
        "placement.resource_provider.not_found"
    );
}

#[tokio::test]
async fn provider_crud_trees_and_duplicates() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let root = api.provider("cn1", None).await;
    let child = api.provider("cn1_numa0", Some(&root)).await;

    let r = api.get(&format!("/resource_providers/{child}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["parent_provider_uuid"], json!(root));
    assert_eq!(r.body["root_provider_uuid"], json!(root));
    assert_eq!(r.body["generation"], 0);
    let rels: Vec<&str> = r.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(
        rels,
        [
            "self",
            "inventories",
            "usages",
            "aggregates",
            "traits",
            "allocations"
        ]
    );
    // Before 1.14 the tree is not shown; before 1.20 create answers 201 with no body.
    let r = api
        .at("1.13")
        .get(&format!("/resource_providers/{child}"))
        .await;
    assert!(r.body.get("root_provider_uuid").is_none());
    let r = api
        .at("1.19")
        .post("/resource_providers", json!({"name": "old"}))
        .await;
    assert_eq!(r.status, 201);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/resource_providers/")
    );

    let r = api
        .post("/resource_providers", json!({"name": "cn1"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "placement.duplicate_name");
    let r = api
        .post("/resource_providers", json!({"name": "x", "bogus": 1}))
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            "/resource_providers",
            json!({"name": "y", "parent_provider_uuid": uuid()}),
        )
        .await;
    assert_eq!(r.status, 400);

    let r = api
        .get(&format!("/resource_providers?in_tree={child}"))
        .await;
    assert_eq!(r.body["resource_providers"].as_array().unwrap().len(), 2);
    let r = api.get("/resource_providers?name=cn1").await;
    assert_eq!(r.body["resource_providers"][0]["uuid"], json!(root));
    let r = api.get("/resource_providers?uuid=not-a-uuid").await;
    assert_eq!(r.status, 400);

    let r = api
        .put(
            &format!("/resource_providers/{root}"),
            json!({"name": "cn1-renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "cn1-renamed");

    // Un-parenting needs 1.37.
    let unparent = json!({"name": "cn1_numa0", "parent_provider_uuid": null});
    let path = format!("/resource_providers/{child}");
    assert_eq!(
        api.at("1.36").put(&path, unparent.clone()).await.status,
        400
    );

    let r = api.delete(&format!("/resource_providers/{root}")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "placement.resource_provider.cannot_delete_parent");
    let r = api.put(&path, unparent).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["root_provider_uuid"], json!(child));
    assert_eq!(
        api.delete(&format!("/resource_providers/{root}"))
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&format!("/resource_providers/{root}")).await.status,
        404
    );
}

#[tokio::test]
async fn inventory_generations_and_in_use_conflicts() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let rp = api.provider("cn", None).await;
    let inv_path = format!("/resource_providers/{rp}/inventories");
    let g = api
        .inventory(
            &rp,
            0,
            json!({"VCPU": {"total": 8, "allocation_ratio": 2.0}, "DISK_GB": {"total": 100}}),
        )
        .await;
    assert_eq!(g, 1);
    let r = api.get(&inv_path).await;
    assert_eq!(r.body["inventories"]["VCPU"]["max_unit"], 2147483647);
    assert_eq!(r.body["inventories"]["VCPU"]["allocation_ratio"], 2.0);

    // A stale generation is refused.
    let r = api
        .put(
            &inv_path,
            json!({"resource_provider_generation": 0, "inventories": {}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "placement.concurrent_update");
    // reserved == total needs 1.26.
    let full = json!({"resource_provider_generation": 1,
        "inventories": {"VCPU": {"total": 8, "reserved": 8}}});
    assert_eq!(
        api.at("1.25").put(&inv_path, full.clone()).await.status,
        400
    );
    // Unknown classes and bad values are 400s.
    let r = api
        .put(
            &inv_path,
            json!({"resource_provider_generation": 1, "inventories": {"NOPE": {"total": 1}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .put(
            &inv_path,
            json!({"resource_provider_generation": 1, "inventories": {"VCPU": {"total": 0}}}),
        )
        .await;
    assert_eq!(r.status, 400);

    // Allocate, then try to remove the inventory in use.
    let consumer = uuid();
    let r = api
        .put(
            &format!("/allocations/{consumer}"),
            claim(&rp, json!({"VCPU": 4}), Value::Null),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = api
        .put(
            &inv_path,
            json!({"resource_provider_generation": 2, "inventories": {"DISK_GB": {"total": 100}}}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.code(), "placement.inventory.inuse");
    let r = api.delete(&inv_path).await;
    assert_eq!(r.code(), "placement.inventory.inuse");
    let r = api.delete(&format!("{inv_path}/VCPU")).await;
    assert_eq!(r.status, 409);
    let r = api.delete(&format!("{inv_path}/DISK_GB")).await;
    assert_eq!(r.status, 204);
    let r = api.delete(&format!("/resource_providers/{rp}")).await;
    assert_eq!(r.code(), "placement.resource_provider.inuse");

    // One inventory by class.
    let r = api
        .put(
            &format!("{inv_path}/VCPU"),
            json!({"resource_provider_generation": 3, "total": 16}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["total"], 16);
    assert_eq!(r.body["resource_provider_generation"], 4);
}

#[tokio::test]
async fn allocations_respect_capacity_and_consumer_generations() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let rp = api.provider("cn", None).await;
    api.inventory(
        &rp,
        0,
        json!({"VCPU": {"total": 4, "reserved": 1, "allocation_ratio": 2.0},
               "MEMORY_MB": {"total": 1024, "step_size": 256, "max_unit": 512}}),
    )
    .await;
    let c1 = uuid();
    let path = format!("/allocations/{c1}");
    // (4 - 1) * 2 = 6 VCPUs.
    let r = api
        .put(&path, claim(&rp, json!({"VCPU": 7}), Value::Null))
        .await;
    assert_eq!(r.status, 409);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("exceed the capacity")
    );
    let r = api
        .put(&path, claim(&rp, json!({"MEMORY_MB": 300}), Value::Null))
        .await;
    assert_eq!(r.status, 409, "step_size");
    let r = api
        .put(&path, claim(&rp, json!({"MEMORY_MB": 768}), Value::Null))
        .await;
    assert_eq!(r.status, 409, "max_unit");
    let r = api
        .put(
            &path,
            claim(&rp, json!({"VCPU": 6, "MEMORY_MB": 512}), Value::Null),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let r = api.get(&path).await;
    assert_eq!(r.body["allocations"][&rp]["resources"]["VCPU"], 6);
    assert_eq!(r.body["consumer_generation"], 1);
    assert_eq!(r.body["project_id"], "p1");
    assert_eq!(r.body["consumer_type"], "INSTANCE");
    // A writer that thinks the consumer is new, or has a stale generation, loses.
    let r = api
        .put(&path, claim(&rp, json!({"VCPU": 1}), Value::Null))
        .await;
    assert_eq!(r.code(), "placement.concurrent_update");
    let r = api
        .put(&path, claim(&rp, json!({"VCPU": 1}), json!(0)))
        .await;
    assert_eq!(r.code(), "placement.concurrent_update");
    // Another consumer finds no room.
    let r = api
        .put(
            &format!("/allocations/{}", uuid()),
            claim(&rp, json!({"VCPU": 1}), Value::Null),
        )
        .await;
    assert_eq!(r.status, 409);
    // Shrinking with the right generation works.
    let r = api
        .put(&path, claim(&rp, json!({"VCPU": 2}), json!(1)))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let r = api.get(&format!("/resource_providers/{rp}/usages")).await;
    assert_eq!(r.body["usages"], json!({"VCPU": 2, "MEMORY_MB": 0}));
    let r = api.get("/usages?project_id=p1").await;
    assert_eq!(
        r.body["usages"],
        json!({"INSTANCE": {"VCPU": 2, "consumer_count": 1}})
    );
    let r = api.at("1.9").get("/usages?project_id=p1&user_id=u1").await;
    assert_eq!(r.body["usages"], json!({"VCPU": 2}));
    let r = api
        .get(&format!("/resource_providers/{rp}/allocations"))
        .await;
    assert_eq!(r.body["allocations"][&c1]["resources"]["VCPU"], 2);
    assert_eq!(r.body["allocations"][&c1]["consumer_generation"], 2);

    // The 1.0 list form still works for old clients.
    let old = uuid();
    let r = api
        .at("1.0")
        .put(
            &format!("/allocations/{old}"),
            json!({"allocations": [{"resource_provider": {"uuid": rp}, "resources": {"VCPU": 1}}]}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    // POST /allocations moves resources between consumers atomically.
    let c2 = uuid();
    let r = api
        .post(
            "/allocations",
            json!({
                c1.clone(): {"allocations": {}, "project_id": "p1", "user_id": "u1",
                             "consumer_generation": 2, "consumer_type": "INSTANCE"},
                c2.clone(): {"allocations": {rp.clone(): {"resources": {"VCPU": 3}}},
                             "project_id": "p1", "user_id": "u1",
                             "consumer_generation": null, "consumer_type": "MIGRATION"},
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(api.get(&path).await.body["allocations"], json!({}));
    assert_eq!(api.delete(&path).await.status, 404);
    assert_eq!(api.delete(&format!("/allocations/{c2}")).await.status, 204);
    let r = api
        .put(
            &format!("/allocations/{}", uuid()),
            claim(&uuid(), json!({"VCPU": 1}), Value::Null),
        )
        .await;
    assert_eq!(r.status, 400, "unknown provider");
    let r = api
        .put(
            "/allocations/not-a-uuid",
            claim(&rp, json!({"VCPU": 1}), Value::Null),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn concurrent_claims_never_overcommit() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let rp = api.provider("cn", None).await;
    api.inventory(&rp, 0, json!({"VCPU": {"total": 10}})).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = api.clone();
        let rp = rp.clone();
        tasks.push(tokio::spawn(async move {
            api.put(
                &format!("/allocations/{}", uuid()),
                claim(&rp, json!({"VCPU": 1}), Value::Null),
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            204 => ok += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 10);
    let r = api.get(&format!("/resource_providers/{rp}/usages")).await;
    assert_eq!(r.body["usages"]["VCPU"], 10);
    let r = api.get(&format!("/resource_providers/{rp}")).await;
    assert_eq!(
        r.body["generation"], 11,
        "one bump per inventory write and claim"
    );
}

#[tokio::test]
async fn allocation_candidates_filter_by_capacity_traits_and_aggregates() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let small = api.provider("small", None).await;
    let big = api.provider("big", None).await;
    api.inventory(
        &small,
        0,
        json!({"VCPU": {"total": 2}, "MEMORY_MB": {"total": 2048}}),
    )
    .await;
    api.inventory(
        &big,
        0,
        json!({"VCPU": {"total": 16}, "MEMORY_MB": {"total": 32768}}),
    )
    .await;
    let r = api.put("/traits/CUSTOM_FAST", json!(null)).await;
    assert_eq!(r.status, 201);
    let r = api
        .put(
            &format!("/resource_providers/{big}/traits"),
            json!({"traits": ["CUSTOM_FAST", "HW_CPU_X86_AVX2"], "resource_provider_generation": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .put(
            &format!("/resource_providers/{big}/traits"),
            json!({"traits": [], "resource_provider_generation": 1}),
        )
        .await;
    assert_eq!(r.code(), "placement.concurrent_update");
    let agg = uuid();
    let r = api
        .put(
            &format!("/resource_providers/{small}/aggregates"),
            json!({"aggregates": [agg], "resource_provider_generation": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let r = api
        .get("/allocation_candidates?resources=VCPU:1,MEMORY_MB:1024")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["allocation_requests"].as_array().unwrap().len(), 2);
    let r = api.get("/allocation_candidates?resources=VCPU:4").await;
    let areqs = r.body["allocation_requests"].as_array().unwrap();
    assert_eq!(areqs.len(), 1);
    assert_eq!(areqs[0]["allocations"][&big]["resources"]["VCPU"], 4);
    assert_eq!(areqs[0]["mappings"][""], json!([big]));
    let sum = &r.body["provider_summaries"][&big];
    assert_eq!(sum["resources"]["VCPU"], json!({"capacity": 16, "used": 0}));
    assert_eq!(
        sum["resources"]["MEMORY_MB"]["capacity"], 32768,
        "1.27: every class"
    );
    assert_eq!(sum["root_provider_uuid"], json!(big));
    assert!(
        sum["traits"]
            .as_array()
            .unwrap()
            .contains(&json!("CUSTOM_FAST"))
    );

    let r = api
        .get("/allocation_candidates?resources=VCPU:1&required=CUSTOM_FAST")
        .await;
    let areqs = r.body["allocation_requests"].as_array().unwrap();
    assert_eq!(areqs.len(), 1);
    assert!(areqs[0]["allocations"].get(&big).is_some());
    let r = api
        .get("/allocation_candidates?resources=VCPU:1&required=!CUSTOM_FAST")
        .await;
    assert!(
        r.body["allocation_requests"][0]["allocations"]
            .get(&small)
            .is_some()
    );
    let r = api
        .get(&format!(
            "/allocation_candidates?resources=VCPU:1&member_of={agg}"
        ))
        .await;
    let areqs = r.body["allocation_requests"].as_array().unwrap();
    assert_eq!(areqs.len(), 1);
    assert!(areqs[0]["allocations"].get(&small).is_some());
    let r = api
        .get("/allocation_candidates?resources=VCPU:1&limit=1")
        .await;
    assert_eq!(r.body["allocation_requests"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["provider_summaries"].as_object().unwrap().len(), 1);
    // Granular groups.
    let r = api
        .get("/allocation_candidates?resources1=VCPU:1&resources2=MEMORY_MB:512&group_policy=none")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["allocation_requests"].as_array().unwrap().len(), 2);
    let r = api
        .get("/allocation_candidates?resources1=VCPU:1&resources2=MEMORY_MB:512")
        .await;
    assert_eq!(r.status, 400, "group_policy is required");
    // The 1.10 shape: allocations as a list.
    let r = api
        .at("1.10")
        .get("/allocation_candidates?resources=VCPU:4")
        .await;
    assert_eq!(
        r.body["allocation_requests"][0]["allocations"][0]["resource_provider"]["uuid"],
        json!(big)
    );
    assert!(
        r.body["provider_summaries"][&big]["resources"]
            .get("MEMORY_MB")
            .is_none()
    );
    // Bad input is a 400, never a 500.
    for q in [
        "resources=NOPE:1",
        "resources=VCPU",
        "resources=VCPU:1&required=CUSTOM_MISSING",
        "resources=VCPU:1&limit=0",
        "resources=VCPU:1&member_of=x",
        "resources=VCPU:1&bogus=1",
        "",
    ] {
        let r = api.get(&format!("/allocation_candidates?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {:?}", r.body);
    }
}

#[tokio::test]
async fn resource_classes_and_traits() {
    let c = TestCloud::start().await;
    let api = Api::new(&c, "1.39");
    let r = api.get("/resource_classes").await;
    let names: Vec<&str> = r.body["resource_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rc| rc["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"VCPU") && names.contains(&"PCPU"));
    assert_eq!(
        api.put("/resource_classes/CUSTOM_GPU", json!(null))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put("/resource_classes/CUSTOM_GPU", json!(null))
            .await
            .status,
        204
    );
    assert_eq!(
        api.put("/resource_classes/GPU", json!(null)).await.status,
        400
    );
    let r = api
        .post("/resource_classes", json!({"name": "CUSTOM_GPU"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(api.delete("/resource_classes/VCPU").await.status, 400);
    assert_eq!(api.delete("/resource_classes/CUSTOM_GPU").await.status, 204);
    assert_eq!(api.get("/resource_classes/CUSTOM_GPU").await.status, 404);

    let r = api.get("/traits?name=startswith:COMPUTE_STATUS").await;
    assert!(
        r.body["traits"]
            .as_array()
            .unwrap()
            .contains(&json!("COMPUTE_STATUS_DISABLED"))
    );
    assert_eq!(api.get("/traits/HW_CPU_X86_AVX2").await.status, 204);
    assert_eq!(api.get("/traits/CUSTOM_NOPE").await.status, 404);
    assert_eq!(api.delete("/traits/HW_CPU_X86_AVX2").await.status, 400);
    let rp = api.provider("cn", None).await;
    assert_eq!(api.put("/traits/CUSTOM_A", json!(null)).await.status, 201);
    let r = api
        .put(
            &format!("/resource_providers/{rp}/traits"),
            json!({"traits": ["CUSTOM_A"], "resource_provider_generation": 0}),
        )
        .await;
    assert_eq!(r.body["resource_provider_generation"], 1);
    assert_eq!(api.delete("/traits/CUSTOM_A").await.status, 409);
    let r = api.get("/traits?associated=true").await;
    assert_eq!(r.body["traits"], json!(["CUSTOM_A"]));
    let r = api
        .put(
            &format!("/resource_providers/{rp}/traits"),
            json!({"traits": ["CUSTOM_MISSING"], "resource_provider_generation": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api.get("/resource_providers?required=CUSTOM_A").await;
    assert_eq!(r.body["resource_providers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn members_are_refused_and_readers_see_their_own_usages() {
    let c = TestCloud::start().await;
    let (pid, _) = c.project_user("plproj", "pluser", "pw", "member").await;
    let (member, _) = c.login("pluser", "pw", Some("plproj")).await.unwrap();
    let api = Api::new(&c, "1.39");
    let m = Api {
        token: member.token.clone(),
        ..api.clone()
    };
    let r = m.get("/resource_providers").await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Policy does not allow")
    );
    let r = m.post("/resource_providers", json!({"name": "x"})).await;
    assert_eq!(r.status, 403);
    // GET /usages: a project's readers (member implies reader) see their own project only.
    assert_eq!(
        m.get(&format!("/usages?project_id={pid}")).await.status,
        200
    );
    assert_eq!(m.get("/usages?project_id=other").await.status, 403);
    let bad = Api {
        token: Some("garbage".into()),
        ..api
    };
    assert_eq!(bad.get("/resource_providers").await.status, 401);
}

/// Every route, as `(method, path)`; bodies are irrelevant: policy refuses first.
fn every_route(rp: &str, consumer: &str) -> Vec<(reqwest::Method, String)> {
    use reqwest::Method as M;
    let rpp = format!("/resource_providers/{rp}");
    vec![
        (M::GET, "/resource_classes".into()),
        (M::POST, "/resource_classes".into()),
        (M::GET, "/resource_classes/VCPU".into()),
        (M::PUT, "/resource_classes/CUSTOM_X".into()),
        (M::DELETE, "/resource_classes/CUSTOM_X".into()),
        (M::GET, "/resource_providers".into()),
        (M::POST, "/resource_providers".into()),
        (M::GET, rpp.clone()),
        (M::PUT, rpp.clone()),
        (M::DELETE, rpp.clone()),
        (M::GET, format!("{rpp}/inventories")),
        (M::POST, format!("{rpp}/inventories")),
        (M::PUT, format!("{rpp}/inventories")),
        (M::DELETE, format!("{rpp}/inventories")),
        (M::GET, format!("{rpp}/inventories/VCPU")),
        (M::PUT, format!("{rpp}/inventories/VCPU")),
        (M::DELETE, format!("{rpp}/inventories/VCPU")),
        (M::GET, format!("{rpp}/usages")),
        (M::GET, format!("{rpp}/aggregates")),
        (M::PUT, format!("{rpp}/aggregates")),
        (M::GET, format!("{rpp}/allocations")),
        (M::GET, format!("{rpp}/traits")),
        (M::PUT, format!("{rpp}/traits")),
        (M::DELETE, format!("{rpp}/traits")),
        (M::POST, "/allocations".into()),
        (M::GET, format!("/allocations/{consumer}")),
        (M::PUT, format!("/allocations/{consumer}")),
        (M::DELETE, format!("/allocations/{consumer}")),
        (M::GET, "/allocation_candidates?resources=VCPU:1".into()),
        (M::GET, "/traits".into()),
        (M::GET, "/traits/HW_CPU_X86_AVX2".into()),
        (M::PUT, "/traits/CUSTOM_X".into()),
        (M::DELETE, "/traits/CUSTOM_X".into()),
        (M::GET, "/usages?project_id=someone-else".into()),
    ]
}

#[tokio::test]
async fn unauthorised_sweep_is_401_or_403_never_500() {
    let c = TestCloud::start().await;
    c.project_user("plsweep", "plsweeper", "pw", "reader").await;
    let (reader, _) = c.login("plsweeper", "pw", Some("plsweep")).await.unwrap();
    let admin = Api::new(&c, "latest");
    let rp = admin.provider("sweep", None).await;
    let anon = Api {
        token: None,
        ..admin.clone()
    };
    let reader = Api {
        token: reader.token.clone(),
        ..admin.clone()
    };
    let body = json!({});
    for (method, path) in every_route(&rp, &uuid()) {
        let with_body = method == reqwest::Method::PUT || method == reqwest::Method::POST;
        let b = with_body.then_some(&body);
        let r = anon.send(method.clone(), &path, b).await;
        assert_eq!(r.status, 401, "anonymous {method} {path}: {:?}", r.body);
        let r = reader.send(method.clone(), &path, b).await;
        assert_eq!(r.status, 403, "reader {method} {path}: {:?}", r.body);
        assert_eq!(r.code(), "placement.undefined_code", "{method} {path}");
    }
    // Garbage an admin may send is a 4xx in placement's shape, never a 500.
    for (method, path, raw) in [
        (
            reqwest::Method::POST,
            "/resource_providers".to_string(),
            "{not json",
        ),
        (
            reqwest::Method::POST,
            "/resource_providers".to_string(),
            "[]",
        ),
        (
            reqwest::Method::PUT,
            format!("/resource_providers/{rp}/inventories"),
            "{\"inventories\": 3}",
        ),
        (
            reqwest::Method::PUT,
            format!("/resource_providers/{rp}/traits"),
            "{\"traits\": [1], \"resource_provider_generation\": 0}",
        ),
        (
            reqwest::Method::PUT,
            format!("/allocations/{}", uuid()),
            "{\"allocations\": {\"x\": 1}}",
        ),
        (reqwest::Method::POST, "/allocations".to_string(), "{}"),
        (
            reqwest::Method::PATCH,
            "/resource_providers".to_string(),
            "{}",
        ),
        (reqwest::Method::GET, "/no/such/route".to_string(), ""),
    ] {
        let r = admin
            .http
            .request(method.clone(), format!("{}{path}", admin.base))
            .header("X-Auth-Token", admin.token.clone().unwrap())
            .header("OpenStack-API-Version", "placement latest")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {body:?}"
        );
        assert_eq!(
            body["errors"][0]["status"], status,
            "{method} {path}: {body:?}"
        );
    }
    // Without a content type a body is refused; with another one it is a 415.
    let r = admin
        .http
        .post(format!("{}/resource_providers", admin.base))
        .header("X-Auth-Token", admin.token.clone().unwrap())
        .header("content-type", "text/plain")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}
