//! Glance's metadata definitions API as Tempest and clients drive it: namespaces and their
//! objects, properties, tags and resource type associations, schemas, policy and bad input.

use ferro_testkit::TestCloud;
use ferro_testkit::ferro_client::{Client, Response};
use serde_json::{Value, json};

const NS: &str = "/v2/metadefs/namespaces";

/// The cloud admin, aimed at the image API.
fn admin(c: &TestCloud) -> Client {
    c.admin.clone_with_base(&c.image_url)
}

/// A user with `role` in a fresh project, aimed at the image API; also the project's id.
async fn user(c: &TestCloud, project: &str, name: &str, role: &str) -> (Client, String) {
    let (pid, _) = c.project_user(project, name, "pw", role).await;
    let (client, _) = c.login(name, "pw", Some(project)).await.unwrap();
    (client.clone_with_base(&c.image_url), pid)
}

async fn post(client: &Client, path: &str, body: Value) -> Response {
    client.post(path, &body).await.unwrap()
}

async fn put(client: &Client, path: &str, body: Value) -> Response {
    client.put(path, Some(&body)).await.unwrap()
}

async fn get(client: &Client, path: &str) -> Response {
    client.get(path).await.unwrap()
}

async fn delete(client: &Client, path: &str) -> Response {
    client.delete(path).await.unwrap()
}

/// A request with raw headers and body (no body at all when `body` is `None`).
async fn raw(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", client.base))
        .header("X-Auth-Token", client.token.clone().unwrap());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create_namespace(client: &Client, body: Value) -> Value {
    let r = post(client, NS, body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|i| i[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A Glance fault's message without webob's trailing markup.
fn message(body: &Value) -> String {
    body["message"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches("<br /><br />\n\n\n")
        .to_string()
}

#[tokio::test]
async fn schemas_are_named_as_tempest_expects() {
    let c = TestCloud::start().await;
    let (reader, _) = user(&c, "readers", "rita", "reader").await;
    for (path, name) in [
        ("namespace", "namespace"),
        ("namespaces", "namespaces"),
        ("resource_type", "resource_type_association"),
        ("resource_types", "resource_type_associations"),
        ("property", "property"),
        ("properties", "properties"),
        ("object", "object"),
        ("objects", "objects"),
        ("tag", "tag"),
        ("tags", "tags"),
    ] {
        let r = get(&reader, &format!("/v2/schemas/metadefs/{path}")).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(r.body["name"], name, "{path}");
    }
    assert_eq!(
        get(&reader, "/v2/schemas/metadefs/namespace").await.body["required"],
        json!(["namespace"])
    );
    assert_eq!(
        get(&reader, "/v2/schemas/metadefs/widgets").await.status,
        404
    );
    let anon = Client::new(&c.image_url);
    assert_eq!(
        anon.get("/v2/schemas/metadefs/tag").await.unwrap().status,
        401
    );
}

/// Tempest's `test_basic_metadata_definition_namespaces`.
#[tokio::test]
async fn namespace_lifecycle_with_protection() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let types = get(&a, "/v2/metadefs/resource_types").await;
    assert_eq!(types.status, 200, "{:?}", types.body);
    let type_names = names(&types.body, "resource_types", "name");
    for seeded in [
        "OS::Glance::Image",
        "OS::Cinder::Volume",
        "OS::Nova::Flavor",
        "OS::Nova::Aggregate",
        "OS::Nova::Server",
        "OS::Trove::Instance",
    ] {
        assert!(type_names.contains(&seeded.to_string()), "{type_names:?}");
    }
    assert!(types.body["resource_types"][0]["created_at"].is_string());
    let rt = type_names[0].clone();

    let r = post(
        &a,
        NS,
        json!({"namespace": "tempest-ns", "visibility": "public", "description": "Tempest",
               "display_name": "tempest-ns", "protected": true,
               "resource_type_associations": [{"name": rt}]}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.header("location"),
        Some("/v2/metadefs/namespaces/tempest-ns")
    );
    assert_eq!(r.body["self"], "/v2/metadefs/namespaces/tempest-ns");
    assert_eq!(r.body["schema"], "/v2/schemas/metadefs/namespace");
    assert_eq!(r.body["resource_type_associations"], json!([{"name": rt}]));
    assert_eq!(r.body["protected"], true);
    assert!(r.body["owner"].is_string() && r.body["created_at"].is_string());

    let list = get(&a, NS).await;
    assert_eq!(list.status, 200);
    assert!(names(&list.body, "namespaces", "namespace").contains(&"tempest-ns".to_string()));
    assert_eq!(list.body["first"], NS);
    assert_eq!(list.body["schema"], "/v2/schemas/metadefs/namespaces");
    let listed = list.body["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "tempest-ns")
        .cloned()
        .unwrap();
    assert_eq!(listed["resource_type_associations"][0]["name"], json!(rt));

    let shown = get(&a, &format!("{NS}/tempest-ns")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["namespace"], "tempest-ns");
    assert_eq!(shown.body["visibility"], "public");
    assert!(shown.body["resource_type_associations"][0]["created_at"].is_string());

    let r = delete(&a, &format!("{NS}/tempest-ns")).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(
        message(&r.body),
        "Metadata definition namespace tempest-ns is protected and cannot be deleted."
    );

    let r = put(
        &a,
        &format!("{NS}/tempest-ns"),
        json!({"namespace": "tempest-ns", "description": "Tempest", "visibility": "private",
               "display_name": "tempest-ns", "protected": false}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["visibility"], "private");
    assert_eq!(r.body["protected"], false);

    assert_eq!(delete(&a, &format!("{NS}/tempest-ns")).await.status, 204);
    let gone = get(&a, &format!("{NS}/tempest-ns")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        message(&gone.body),
        "Metadata definition namespace=tempest-ns was not found."
    );
    // Its association went with it; the resource type stays.
    assert!(
        names(
            &get(&a, "/v2/metadefs/resource_types").await.body,
            "resource_types",
            "name"
        )
        .contains(&rt)
    );
}

/// Tempest's namespace object tests, plus duplicates and missing objects.
#[tokio::test]
async fn objects_create_update_show_list_delete() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    create_namespace(&a, json!({"namespace": "objs", "visibility": "public"})).await;
    let r = post(
        &a,
        &format!("{NS}/objs/objects"),
        json!({"name": "cpu-limits", "description": "d", "required": ["period"],
               "properties": {"period": {"title": "Period", "type": "integer", "minimum": 1000}}}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["self"],
        "/v2/metadefs/namespaces/objs/objects/cpu-limits"
    );
    assert_eq!(r.body["schema"], "/v2/schemas/metadefs/object");
    assert_eq!(r.body["properties"]["period"]["minimum"], 1000);

    let dup = post(
        &a,
        &format!("{NS}/objs/objects"),
        json!({"name": "cpu-limits"}),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        message(&dup.body),
        "A metadata definition object with name=cpu-limits already exists in namespace=objs."
    );

    let up = put(
        &a,
        &format!("{NS}/objs/objects/cpu-limits"),
        json!({"name": "update-object"}),
    )
    .await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.body["name"], "update-object");
    // An update replaces the object: what the body omits is cleared.
    let shown = get(&a, &format!("{NS}/objs/objects/update-object")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["required"], json!([]));
    assert_eq!(shown.body["properties"], json!({}));
    assert!(shown.body.get("description").is_none());
    assert_eq!(
        get(&a, &format!("{NS}/objs/objects/cpu-limits"))
            .await
            .status,
        404
    );

    post(&a, &format!("{NS}/objs/objects"), json!({"name": "other"})).await;
    let list = get(&a, &format!("{NS}/objs/objects")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["schema"], "v2/schemas/metadefs/objects");
    assert_eq!(
        names(&list.body, "objects", "name"),
        ["update-object", "other"]
    );

    assert_eq!(
        delete(&a, &format!("{NS}/objs/objects/update-object"))
            .await
            .status,
        204
    );
    let r = delete(&a, &format!("{NS}/objs/objects/update-object")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        message(&r.body),
        "Could not find metadata object update-object"
    );
    let list = get(&a, &format!("{NS}/objs/objects")).await;
    assert_eq!(names(&list.body, "objects", "name"), ["other"]);

    assert_eq!(delete(&a, &format!("{NS}/objs/objects")).await.status, 204);
    assert!(
        get(&a, &format!("{NS}/objs/objects")).await.body["objects"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = get(&a, &format!("{NS}/nowhere/objects")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        message(&r.body),
        "Metadata definition namespace=nowhere was not found."
    );
}

/// Tempest's `test_basic_meta_def_namespace_property`, and the resource type prefix.
#[tokio::test]
async fn properties_and_resource_type_prefixes() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let types = get(&a, "/v2/metadefs/resource_types").await;
    let rt = names(&types.body, "resource_types", "name")[0].clone();
    create_namespace(&a, json!({"namespace": "props"})).await;
    let r = post(
        &a,
        &format!("{NS}/props/resource_types"),
        json!({"name": rt}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let enumv = json!(["xen", "qemu", "kvm", "lxc", "uml", "vmware", "hyperv"]);
    let r = post(
        &a,
        &format!("{NS}/props/properties"),
        json!({"name": rt, "title": "property", "type": "string", "enum": enumv}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["title"], "property");
    let shown = get(&a, &format!("{NS}/props/properties/{rt}")).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["name"], json!(rt));
    assert_eq!(shown.body["enum"], enumv);
    let up = put(
        &a,
        &format!("{NS}/props/properties/{rt}"),
        json!({"name": rt, "title": "update-property", "type": "string", "enum": enumv}),
    )
    .await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.body["title"], "update-property");
    let dup = post(
        &a,
        &format!("{NS}/props/properties"),
        json!({"name": rt, "title": "again", "type": "string"}),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        delete(&a, &format!("{NS}/props/properties/{rt}"))
            .await
            .status,
        204
    );
    let list = get(&a, &format!("{NS}/props/properties")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["properties"], json!({}));
    assert_eq!(
        get(&a, &format!("{NS}/props/properties/{rt}")).await.status,
        404
    );

    // A namespace for Glance images with the `hw_` prefix, as etc/metadefs declares them.
    create_namespace(
        &a,
        json!({"namespace": "OS::Compute::Test", "visibility": "public",
               "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"},
                                              {"name": "OS::Nova::Flavor", "prefix": "hw:"}],
               "properties": {"cpu_policy": {"title": "CPU", "type": "string"}},
               "objects": [{"name": "pinning", "required": ["cpu_policy"],
                            "properties": {"cpu_policy": {"title": "CPU", "type": "string"}}}]}),
    )
    .await;
    let path = format!("{NS}/OS::Compute::Test");
    let r = get(&a, &format!("{path}?resource_type=OS::Nova::Flavor")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["properties"]["hw:cpu_policy"].is_object(),
        "{}",
        r.body
    );
    assert_eq!(r.body["objects"][0]["required"], json!(["hw:cpu_policy"]));
    assert!(r.body["objects"][0]["properties"]["hw:cpu_policy"].is_object());
    let plain = get(&a, &path).await;
    assert!(plain.body["properties"]["cpu_policy"].is_object());
    let p = get(
        &a,
        &format!("{path}/properties/hw_cpu_policy?resource_type=OS::Glance::Image"),
    )
    .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["name"], "cpu_policy");
    let p = get(
        &a,
        &format!("{path}/properties/cpu_policy?resource_type=OS::Glance::Image"),
    )
    .await;
    assert_eq!(p.status, 404);
    assert_eq!(
        message(&p.body),
        "Property cpu_policy does not start with the expected resource type association \
         prefix of 'hw_'."
    );
    let p = get(
        &a,
        &format!("{path}/properties/hw_cpu_policy?resource_type=OS::Cinder::Volume"),
    )
    .await;
    assert_eq!(p.status, 404);
    // Listing by resource type finds the namespace through either association.
    let l = get(
        &a,
        &format!("{NS}?resource_types=OS::Nova::Flavor,OS::Trove::Instance"),
    )
    .await;
    assert_eq!(
        names(&l.body, "namespaces", "namespace"),
        ["OS::Compute::Test"]
    );
}

/// Tempest's tag tests, plus the append header, case-insensitive duplicates and paging.
#[tokio::test]
async fn tags_one_many_append_and_delete_all() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    create_namespace(&a, json!({"namespace": "tagged"})).await;
    let tags = json!({"tags": [{"name": "sample-tag1"}, {"name": "sample-tag2"},
                               {"name": "sample-tag3"}]});
    let r = post(&a, &format!("{NS}/tagged/tags"), tags).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        names(&r.body, "tags", "name"),
        ["sample-tag1", "sample-tag2", "sample-tag3"]
    );
    let list = get(&a, &format!("{NS}/tagged/tags")).await;
    assert_eq!(list.body["tags"].as_array().unwrap().len(), 3);

    // Tempest posts a single tag with no body at all.
    let (status, body) = raw(
        &a,
        reqwest::Method::POST,
        &format!("{NS}/tagged/tags/tag_name"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(body["name"], "tag_name");
    assert!(body["created_at"].is_string());
    let shown = get(&a, &format!("{NS}/tagged/tags/tag_name")).await;
    assert_eq!(shown.body["name"], "tag_name");
    let (status, body) = raw(
        &a,
        reqwest::Method::POST,
        &format!("{NS}/tagged/tags/TAG_NAME"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 409, "{body:?}");
    assert!(message(&body).contains("case insensitive"), "{body}");
    let up = put(
        &a,
        &format!("{NS}/tagged/tags/tag_name"),
        json!({"name": "update-tag"}),
    )
    .await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.body["name"], "update-tag");
    assert_eq!(
        delete(&a, &format!("{NS}/tagged/tags/update-tag"))
            .await
            .status,
        204
    );
    assert_eq!(
        get(&a, &format!("{NS}/tagged/tags/update-tag"))
            .await
            .status,
        404
    );

    // Paging by name.
    let page = get(
        &a,
        &format!("{NS}/tagged/tags?sort_key=name&sort_dir=asc&limit=2"),
    )
    .await;
    assert_eq!(
        names(&page.body, "tags", "name"),
        ["sample-tag1", "sample-tag2"]
    );
    let page = get(
        &a,
        &format!("{NS}/tagged/tags?sort_key=name&sort_dir=asc&marker=sample-tag2"),
    )
    .await;
    assert_eq!(names(&page.body, "tags", "name"), ["sample-tag3"]);

    // With the append header the list adds; without it, it replaces.
    let (status, body) = raw(
        &a,
        reqwest::Method::POST,
        &format!("{NS}/tagged/tags"),
        &[("X-Openstack-Append", "True")],
        Some(r#"{"tags": [{"name": "extra"}]}"#),
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(
        get(&a, &format!("{NS}/tagged/tags")).await.body["tags"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let r = post(
        &a,
        &format!("{NS}/tagged/tags"),
        json!({"tags": [{"name": "only"}]}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        names(
            &get(&a, &format!("{NS}/tagged/tags")).await.body,
            "tags",
            "name"
        ),
        ["only"]
    );
    let dup = post(
        &a,
        &format!("{NS}/tagged/tags"),
        json!({"tags": [{"name": "x"}, {"name": "X"}]}),
    )
    .await;
    assert_eq!(dup.status, 409);
    // A refused batch changes nothing.
    assert_eq!(
        names(
            &get(&a, &format!("{NS}/tagged/tags")).await.body,
            "tags",
            "name"
        ),
        ["only"]
    );

    assert_eq!(delete(&a, &format!("{NS}/tagged/tags")).await.status, 204);
    assert!(
        get(&a, &format!("{NS}/tagged/tags")).await.body["tags"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = get(&a, &format!("{NS}/missing/tags")).await;
    assert_eq!(r.status, 404);
    assert_eq!(message(&r.body), "Namespace missing not found");
}

/// Tempest's `test_basic_meta_def_resource_type_association`, and a type made on first use.
#[tokio::test]
async fn resource_type_associations_create_list_delete() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    create_namespace(&a, json!({"namespace": "assoc"})).await;
    let path = format!("{NS}/assoc/resource_types");
    let r = post(
        &a,
        &path,
        json!({"name": "OS::Glance::Image", "prefix": "hw_", "properties_target": "image"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], "OS::Glance::Image");
    assert_eq!(r.body["prefix"], "hw_");
    assert_eq!(r.body["properties_target"], "image");
    assert!(r.body["created_at"].is_string());
    let dup = post(&a, &path, json!({"name": "OS::Glance::Image"})).await;
    assert_eq!(dup.status, 409);
    let r = post(&a, &path, json!({"name": "OS::Ferro::Widget"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let types = get(&a, "/v2/metadefs/resource_types").await;
    assert!(names(&types.body, "resource_types", "name").contains(&"OS::Ferro::Widget".into()));
    let list = get(&a, &path).await;
    assert_eq!(
        names(&list.body, "resource_type_associations", "name"),
        ["OS::Glance::Image", "OS::Ferro::Widget"]
    );
    assert_eq!(
        delete(&a, &format!("{path}/OS::Glance::Image"))
            .await
            .status,
        204
    );
    let list = get(&a, &path).await;
    assert_eq!(
        names(&list.body, "resource_type_associations", "name"),
        ["OS::Ferro::Widget"]
    );
    let r = delete(&a, &format!("{path}/OS::Glance::Image")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        message(&r.body),
        "Failed to find resource type OS::Glance::Image to delete"
    );
    let r = post(&a, &path, json!({"prefix": "x"})).await;
    assert_eq!(r.status, 400);
}

/// Readers see public namespaces and their own project's; only admins change anything.
#[tokio::test]
async fn visibility_and_admin_only_changes() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let (alice, alpha) = user(&c, "alpha", "alice", "member").await;
    let (bob, _) = user(&c, "beta", "bob", "member").await;
    create_namespace(&a, json!({"namespace": "open", "visibility": "public"})).await;
    create_namespace(
        &a,
        json!({"namespace": "alphas", "visibility": "private", "owner": alpha}),
    )
    .await;
    create_namespace(&a, json!({"namespace": "admins"})).await;

    let seen = |body: &Value| {
        let mut n = names(body, "namespaces", "namespace");
        n.sort();
        n
    };
    assert_eq!(seen(&get(&alice, NS).await.body), ["alphas", "open"]);
    assert_eq!(seen(&get(&bob, NS).await.body), ["open"]);
    assert_eq!(seen(&get(&a, NS).await.body), ["admins", "alphas", "open"]);
    assert_eq!(
        seen(&get(&a, &format!("{NS}?visibility=private")).await.body),
        ["admins", "alphas"]
    );

    assert_eq!(get(&alice, &format!("{NS}/alphas")).await.status, 200);
    let hidden = get(&bob, &format!("{NS}/alphas")).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(message(&hidden.body), "The resource could not be found.");
    assert_eq!(get(&bob, &format!("{NS}/alphas/objects")).await.status, 404);
    assert_eq!(get(&bob, &format!("{NS}/alphas/tags")).await.status, 404);

    let r = post(&alice, NS, json!({"namespace": "mine"})).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(
        message(&r.body),
        "You are not authorized to complete add_metadef_namespace action."
    );
    // Visible but not theirs to change: 403; hidden: 404.
    let r = post(&bob, &format!("{NS}/open/objects"), json!({"name": "o"})).await;
    assert_eq!(r.status, 403);
    let r = post(&bob, &format!("{NS}/alphas/objects"), json!({"name": "o"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(delete(&alice, &format!("{NS}/alphas")).await.status, 403);
    assert_eq!(
        put(&bob, &format!("{NS}/open"), json!({"namespace": "open"}))
            .await
            .status,
        403
    );
    assert_eq!(delete(&bob, &format!("{NS}/open/tags")).await.status, 403);
    // Readers still list resource types.
    assert_eq!(get(&bob, "/v2/metadefs/resource_types").await.status, 200);
}

/// Lists page with `limit`/`marker` and a `next` link; sorting is checked.
#[tokio::test]
async fn namespace_list_pages_and_sorts() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    for n in ["ns-b", "ns-c", "ns-a"] {
        create_namespace(&a, json!({"namespace": n, "visibility": "public"})).await;
    }
    let r = get(&a, &format!("{NS}?limit=2&sort_key=namespace&sort_dir=asc")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(names(&r.body, "namespaces", "namespace"), ["ns-a", "ns-b"]);
    assert_eq!(
        r.body["first"],
        "/v2/metadefs/namespaces?limit=2&sort_key=namespace&sort_dir=asc"
    );
    let next = r.body["next"].as_str().unwrap().to_string();
    assert_eq!(
        next,
        "/v2/metadefs/namespaces?limit=2&sort_key=namespace&sort_dir=asc&marker=ns-b"
    );
    let r = get(&a, &next).await;
    assert_eq!(names(&r.body, "namespaces", "namespace"), ["ns-c"]);
    assert!(r.body.get("next").is_none());
    // Newest first by default.
    let r = get(&a, NS).await;
    assert_eq!(
        names(&r.body, "namespaces", "namespace"),
        ["ns-a", "ns-c", "ns-b"]
    );
    let r = get(&a, &format!("{NS}?marker=ns-zzz")).await;
    assert_eq!(r.status, 404);
    for bad in [
        "limit=-1",
        "limit=many",
        "sort_dir=sideways",
        "visibility=shared",
        "sort_key=colour",
    ] {
        let r = get(&a, &format!("{NS}?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
}

/// Bad bodies are 400 (or 403 for read-only attributes), never 500, and a refused create
/// leaves nothing behind.
#[tokio::test]
async fn bad_input_is_refused_cleanly() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    let (status, _) = raw(&a, reqwest::Method::POST, NS, &[], Some("{not json")).await;
    assert_eq!(status, 400);
    for (body, want) in [
        (json!({"display_name": "no name"}), 400),
        (json!({"namespace": "x", "visibility": "shared"}), 400),
        (json!({"namespace": "x", "protected": "yes"}), 400),
        (json!({"namespace": "x", "colour": "red"}), 400),
        (json!({"namespace": "x".repeat(81)}), 400),
        (
            json!({"namespace": "x", "created_at": "2020-01-01T00:00:00Z"}),
            403,
        ),
        (json!({"namespace": "x", "self": "/v2/x"}), 403),
        (
            json!({"namespace": "x", "properties": {"p": {"type": "string"}}}),
            400,
        ),
        (
            json!({"namespace": "x", "objects": [{"description": "no name"}]}),
            400,
        ),
        (
            json!({"namespace": "x", "tags": [{"name": "t", "colour": 1}]}),
            400,
        ),
        (
            json!({"namespace": "x", "display_name": "smile \u{1F600}"}),
            400,
        ),
        (json!(["namespace"]), 400),
    ] {
        let r = post(&a, NS, body.clone()).await;
        assert_eq!(r.status, want, "{body}: {:?}", r.body);
        assert_eq!(
            r.body["code"].as_str().unwrap_or_default()[..3],
            want.to_string()
        );
    }
    assert_eq!(get(&a, &format!("{NS}/x")).await.status, 404);

    // Duplicates inside one create undo the whole namespace.
    let r = post(
        &a,
        NS,
        json!({"namespace": "dups", "objects": [{"name": "o"}, {"name": "O"}]}),
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(get(&a, &format!("{NS}/dups")).await.status, 404);

    create_namespace(
        &a,
        json!({"namespace": "kept", "protected": true,
        "objects": [{"name": "o"}], "tags": [{"name": "t"}],
        "properties": {"p": {"title": "P", "type": "string"}}}),
    )
    .await;
    let r = post(&a, NS, json!({"namespace": "KEPT"})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        message(&r.body),
        "The metadata definition namespace=KEPT already exists."
    );
    // Nothing inside a protected namespace may be deleted.
    for path in [
        "objects/o",
        "tags/t",
        "properties/p",
        "objects",
        "tags",
        "properties",
    ] {
        let r = delete(&a, &format!("{NS}/kept/{path}")).await;
        assert_eq!(r.status, 403, "{path}: {:?}", r.body);
    }
    for (path, body) in [
        (
            "objects",
            json!({"name": "o2", "properties": {"p": {"title": "P"}}}),
        ),
        ("objects", json!({"name": "o2", "schema": "x"})),
        ("properties", json!({"title": "no name", "type": "string"})),
        (
            "properties",
            json!({"name": "q", "title": "Q", "type": "string", "confidential": true}),
        ),
        (
            "resource_types",
            json!({"name": "OS::X", "created_at": "now"}),
        ),
        ("tags", json!({"tags": [{"nom": "t"}]})),
    ] {
        let r = post(&a, &format!("{NS}/kept/{path}"), body.clone()).await;
        assert!(
            r.status == 400 || r.status == 403,
            "{path} {body}: {:?}",
            r.body
        );
    }
    let (status, _) = raw(
        &a,
        reqwest::Method::POST,
        &format!("{NS}/kept/tags/{}", "t".repeat(81)),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 400);
    let r = put(
        &a,
        &format!("{NS}/kept/tags/t"),
        json!({"name": "t", "updated_at": "x"}),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get(&a, &format!("{NS}/kept/objects?limit=0")).await;
    assert_eq!(r.status, 400);
    let r = put(&a, &format!("{NS}/ghost"), json!({"namespace": "ghost"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(message(&r.body), "Namespace ghost not found");
}

/// A cloud restart keeps metadefs and does not seed resource types twice.
#[tokio::test]
async fn metadefs_survive_a_restart() {
    let c = TestCloud::start().await;
    let a = admin(&c);
    create_namespace(&a, json!({"namespace": "durable", "tags": [{"name": "t"}]})).await;
    let before = get(&a, "/v2/metadefs/resource_types").await.body;
    let c = c.restart().await.unwrap();
    let a = admin(&c);
    assert_eq!(
        get(&a, &format!("{NS}/durable")).await.body["tags"],
        json!([{"name": "t"}])
    );
    assert_eq!(get(&a, "/v2/metadefs/resource_types").await.body, before);
}
