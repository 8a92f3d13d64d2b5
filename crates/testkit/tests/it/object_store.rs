//! Object storage (Swift) as a client sees it: the catalog endpoint, containers, objects,
//! listings, metadata, ranges, copies, Keystone auth and ACLs, Swift's error statuses, and
//! writes that survive a device being down.

use ferro_testkit::TestCloud;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A raw Swift client for one account.
struct Swift {
    http: reqwest::Client,
    /// `http://host:port/v1/AUTH_<project>`.
    account: String,
    token: Option<String>,
}

impl Swift {
    fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let url = if path.is_empty() {
            self.account.clone()
        } else {
            format!("{}/{path}", self.account)
        };
        let r = self
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), url);
        match &self.token {
            Some(t) => r.header("X-Auth-Token", t),
            None => r,
        }
    }

    async fn send(&self, method: &str, path: &str) -> reqwest::Response {
        self.req(method, path).send().await.unwrap()
    }

    async fn put(&self, path: &str, body: &'static [u8]) -> reqwest::Response {
        self.req("PUT", path).body(body).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.send("GET", path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

fn project_of(token: &Value) -> String {
    token["token"]["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The admin's account, found through the token's catalog as clients do.
fn admin_swift(c: &TestCloud) -> Swift {
    let catalog = c.admin_token["token"]["catalog"].as_array().unwrap();
    let entry = catalog
        .iter()
        .find(|s| s["type"] == "object-store")
        .expect("object-store in the catalog");
    assert_eq!(entry["name"], "swift");
    let url = entry["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == "public")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        url,
        format!("{}/v1/AUTH_{}", c.object_url, project_of(&c.admin_token))
    );
    Swift {
        http: reqwest::Client::new(),
        account: url,
        token: c.admin.token.clone(),
    }
}

fn h<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Counts `.data` files under the cloud's object devices.
fn data_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += data_files(&p);
            } else if p.extension().is_some_and(|x| x == "data") {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn containers_and_objects_round_trip_as_swift_answers() {
    let c = TestCloud::start().await;
    let s = admin_swift(&c);

    let info: Value = reqwest::get(format!("{}/info", c.object_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["swift"]["container_listing_limit"], 10000);
    assert_eq!(info["slo"]["max_manifest_segments"], 1000);
    assert!(info["tempurl"]["allowed_digests"].as_array().unwrap().len() == 3);

    // An account nobody wrote to lists nothing.
    let r = s.send("HEAD", "").await;
    assert_eq!(r.status(), 204);
    assert_eq!(h(&r, "x-account-container-count"), "0");
    assert!(h(&r, "x-trans-id").starts_with("tx"));

    assert_eq!(s.send("PUT", "photos").await.status(), 201);
    assert_eq!(s.send("PUT", "photos").await.status(), 202);
    let r = s
        .req("PUT", "photos/a/cat.txt")
        .header("X-Object-Meta-Color", "blue")
        .header("ETag", "0cc175b9c0f1b6a831c399e269772661")
        .body("a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(h(&r, "etag"), "0cc175b9c0f1b6a831c399e269772661");
    assert_eq!(s.put("photos/a/dog.txt", b"woof").await.status(), 201);
    let r = s
        .req("PUT", "photos/a/dog.txt")
        .header("If-None-Match", "*")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412, "create-only PUT over an existing object");
    assert_eq!(s.put("photos/b.bin", b"0123456789").await.status(), 201);

    let r = s.send("GET", "photos/a/cat.txt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-type"), "text/plain");
    assert_eq!(h(&r, "x-object-meta-color"), "blue");
    assert_eq!(h(&r, "content-length"), "1");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"a");

    // Listings: json fields, plain, xml, prefix, delimiter, markers, reverse.
    let list = s.json("photos?format=json").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a/cat.txt", "a/dog.txt", "b.bin"]);
    let first = &list[0];
    assert_eq!(first["hash"], "0cc175b9c0f1b6a831c399e269772661");
    assert_eq!(first["bytes"], 1);
    assert_eq!(first["content_type"], "text/plain");
    assert!(first["last_modified"].as_str().unwrap().contains('T'));
    let plain = s
        .send("GET", "photos?delimiter=/")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(plain, "a/\nb.bin\n");
    let rev = s
        .send("GET", "photos?reverse=true&limit=2")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rev, "b.bin\na/dog.txt\n");
    let page = s
        .send("GET", "photos?marker=a/cat.txt&end_marker=b.bin")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page, "a/dog.txt\n");
    let sub = s.json("photos?prefix=a/&delimiter=/&format=json").await;
    assert_eq!(sub.as_array().unwrap().len(), 2);
    let xml = s
        .send("GET", "photos?format=xml")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        xml.contains("<container name=\"photos\"><object><name>a/cat.txt</name>"),
        "{xml}"
    );
    assert_eq!(s.send("GET", "photos?prefix=zzz").await.status(), 204);

    // Container and account totals.
    let r = s.send("HEAD", "photos").await;
    assert_eq!(r.status(), 204);
    assert_eq!(h(&r, "x-container-object-count"), "3");
    assert_eq!(h(&r, "x-container-bytes-used"), "15");
    let r = s.send("HEAD", "").await;
    assert_eq!(h(&r, "x-account-container-count"), "1");
    assert_eq!(h(&r, "x-account-object-count"), "3");
    assert_eq!(h(&r, "x-account-bytes-used"), "15");
    let accounts = s.json("?format=json").await;
    assert_eq!(accounts[0]["name"], "photos");
    assert_eq!(accounts[0]["count"], 3);

    // Metadata by POST on account, container and object.
    let r = s
        .req("POST", "")
        .header("X-Account-Meta-Owner", "ops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(h(&s.send("HEAD", "").await, "x-account-meta-owner"), "ops");
    let r = s
        .req("POST", "photos")
        .header("X-Container-Meta-Tag", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        h(&s.send("HEAD", "photos").await, "x-container-meta-tag"),
        "x"
    );
    let r = s
        .req("POST", "photos/b.bin")
        .header("X-Object-Meta-Shape", "round")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s.send("HEAD", "photos/b.bin").await;
    assert_eq!(h(&r, "x-object-meta-shape"), "round");
    assert_eq!(h(&r, "content-length"), "10");

    // Ranges and conditional GETs.
    let r = s
        .req("GET", "photos/b.bin")
        .header("Range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(h(&r, "content-range"), "bytes 2-4/10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"234");
    let r = s
        .req("GET", "photos/b.bin")
        .header("Range", "bytes=-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"89");
    let r = s
        .req("GET", "photos/b.bin")
        .header("Range", "bytes=0-0,8-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(h(&r, "content-type").starts_with("multipart/byteranges;boundary="));
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n"),
        "{body}"
    );
    let r = s
        .req("GET", "photos/b.bin")
        .header("Range", "bytes=50-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let etag = "781e5e245d69b566979b86e28d23f2c7";
    let r = s
        .req("GET", "photos/b.bin")
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s
        .req("GET", "photos/b.bin")
        .header("If-Match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);

    // Server-side copies keep the data and metadata.
    let r = s
        .req("PUT", "photos/copy1")
        .header("X-Copy-From", "/photos/a/cat.txt")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(h(&r, "x-copied-from"), "photos/a/cat.txt");
    let r = s.send("GET", "photos/copy1").await;
    assert_eq!(h(&r, "x-object-meta-color"), "blue");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"a");
    let r = s
        .req("COPY", "photos/b.bin")
        .header("Destination", "photos/copy2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        s.send("GET", "photos/copy2")
            .await
            .bytes()
            .await
            .unwrap()
            .len(),
        10
    );

    // Temporary URLs: signed with the account's key, one method, until they expire.
    let r = s
        .req("POST", "")
        .header("X-Account-Meta-Temp-URL-Key", "sekrit")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let path = format!(
        "{}/photos/b.bin",
        &s.account[s.account.find("/v1/").unwrap()..]
    );
    let path = path.as_str();
    let expires = chrono_now() + 300;
    let sig = ferro_object_store::tempurl::sign_sha256("sekrit", "GET", expires, path);
    let url = format!(
        "{}{path}?temp_url_sig={sig}&temp_url_expires={expires}",
        c.object_url
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        h(&r, "content-disposition"),
        "attachment; filename=\"b.bin\"; filename*=UTF-8''b.bin"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"0123456789");
    let r = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "HEAD with a GET signature");
    let r = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "the signature is for GET only");
    let bad = url.replace(&sig, &"0".repeat(64));
    assert_eq!(reqwest::get(&bad).await.unwrap().status(), 401);
    let old_sig = ferro_object_store::tempurl::sign_sha256("sekrit", "GET", 1000, path);
    let expired = format!(
        "{}{path}?temp_url_sig={old_sig}&temp_url_expires=1000",
        c.object_url
    );
    assert_eq!(reqwest::get(&expired).await.unwrap().status(), 401);

    // A container with objects cannot go; deleting objects empties it.
    assert_eq!(s.send("DELETE", "photos").await.status(), 409);
    for o in ["a/cat.txt", "a/dog.txt", "b.bin", "copy1", "copy2"] {
        assert_eq!(
            s.send("DELETE", &format!("photos/{o}")).await.status(),
            204,
            "{o}"
        );
    }
    let r = s.send("GET", "photos/b.bin").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.unwrap(),
        "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
    );
    assert_eq!(s.send("DELETE", "photos/b.bin").await.status(), 404);
    assert_eq!(s.send("DELETE", "photos").await.status(), 204);
    assert_eq!(s.send("HEAD", "photos").await.status(), 404);
    let r = s.send("HEAD", "").await;
    assert_eq!(h(&r, "x-account-container-count"), "0");
    assert_eq!(s.send("PUT", "photos").await.status(), 201);

    // Versioning, stack mode: overwrites go to the archive; a DELETE brings back the last.
    assert_eq!(s.send("PUT", "archive").await.status(), 201);
    let r = s
        .req("PUT", "docs")
        .header("X-Versions-Location", "archive")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        h(&s.send("HEAD", "docs").await, "x-versions-location"),
        "archive"
    );
    for body in [&b"v1"[..], b"v2", b"v3"] {
        let r = s.req("PUT", "docs/readme").body(body).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let versions = s.send("GET", "archive").await.text().await.unwrap();
    assert_eq!(versions.lines().count(), 2, "{versions}");
    assert!(versions.starts_with("006readme/"), "{versions}");
    assert_eq!(s.send("DELETE", "docs/readme").await.status(), 204);
    assert_eq!(
        s.send("GET", "docs/readme").await.text().await.unwrap(),
        "v2"
    );
    assert_eq!(s.send("DELETE", "docs/readme").await.status(), 204);
    assert_eq!(
        s.send("GET", "docs/readme").await.text().await.unwrap(),
        "v1"
    );
    assert_eq!(s.send("DELETE", "docs/readme").await.status(), 204);
    assert_eq!(s.send("GET", "docs/readme").await.status(), 404);
    assert_eq!(
        s.send("GET", "archive").await.status(),
        204,
        "the archive is empty"
    );

    // History mode: a DELETE archives the current version too.
    let r = s
        .req("POST", "docs")
        .header("X-History-Location", "archive")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s.send("HEAD", "docs").await;
    assert_eq!(h(&r, "x-history-location"), "archive");
    assert_eq!(h(&r, "x-versions-location"), "");
    assert_eq!(s.put("docs/log", b"a").await.status(), 201);
    assert_eq!(s.put("docs/log", b"b").await.status(), 201);
    assert_eq!(s.send("DELETE", "docs/log").await.status(), 204);
    assert_eq!(s.send("GET", "docs/log").await.status(), 404);
    let versions = s
        .send("GET", "archive?prefix=003log/")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(versions.lines().count(), 2, "{versions}");
    let r = s
        .req("PUT", "both")
        .header("X-History-Location", "archive")
        .header("X-Versions-Location", "archive")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bad_input_and_strangers_get_swift_statuses() {
    let c = TestCloud::start().await;
    let s = admin_swift(&c);
    assert_eq!(s.send("PUT", "c").await.status(), 201);

    // ETag mismatch: 422, and nothing is stored or listed.
    let r = s
        .req("PUT", "c/o")
        .header("ETag", "00000000000000000000000000000000")
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.send("GET", "c/o").await.status(), 404);
    assert_eq!(s.send("GET", "c").await.status(), 204);
    assert_eq!(data_files(&c.config.state_dir.join("object-devices")), 0);

    // A body shorter than its Content-Length: nothing is stored.
    let addr = c.object_url.trim_start_matches("http://").to_string();
    let path = format!("{}/c/short", s.account.split_once(&addr).unwrap().1);
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::AsyncWriteExt as _;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {}\r\nContent-Length: 100\r\n\r\nonly-a-bit",
        s.token.clone().unwrap()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.send("GET", "c/short").await.status(), 404);
    let tmp_left: usize = ["d1", "d2", "d3"]
        .iter()
        .map(|d| {
            std::fs::read_dir(
                c.config
                    .state_dir
                    .join("object-devices")
                    .join(d)
                    .join("tmp"),
            )
            .map(|e| e.count())
            .unwrap_or(0)
        })
        .sum();
    assert_eq!(tmp_left, 0, "no half-written files");

    // Names and limits.
    assert_eq!(s.send("GET", "c?limit=10001").await.status(), 412);
    assert_eq!(s.put("c/a%00b", b"x").await.status(), 412);
    let long = "x".repeat(1025);
    assert_eq!(
        s.req("PUT", &format!("c/{long}"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(s.put("missing/o", b"x").await.status(), 404);
    assert_eq!(s.send("PUT", "").await.status(), 405);
    // Neither Content-Length nor chunked: 411.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "PUT {}/c/nolength HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
        s.account.split_once(&addr).unwrap().1,
        s.token.clone().unwrap()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    use tokio::io::AsyncReadExt as _;
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    let r = s
        .req("PUT", "c/meta")
        .header(format!("X-Object-Meta-{}", "k".repeat(129)), "v")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // No token: 401; a bad token: 401; another project's member: 403; a reader: 403.
    let anon = Swift {
        http: reqwest::Client::new(),
        account: s.account.clone(),
        token: None,
    };
    assert_eq!(anon.send("GET", "c").await.status(), 401);
    let bad = Swift {
        token: Some("garbage".into()),
        http: reqwest::Client::new(),
        account: s.account.clone(),
    };
    assert_eq!(bad.send("GET", "c").await.status(), 401);
    c.project_user("other", "stranger", "pw", "member").await;
    let (stranger, _) = c.login("stranger", "pw", Some("other")).await.unwrap();
    let st = Swift {
        http: reqwest::Client::new(),
        account: s.account.clone(),
        token: stranger.token.clone(),
    };
    assert_eq!(st.send("GET", "c").await.status(), 403);
    assert_eq!(st.put("c/x", b"x").await.status(), 403);
    c.project_user("p3", "reader1", "pw", "reader").await;
    let (reader, rtoken) = c.login("reader1", "pw", Some("p3")).await.unwrap();
    let own = Swift {
        http: reqwest::Client::new(),
        account: format!("{}/v1/AUTH_{}", c.object_url, project_of(&rtoken)),
        token: reader.token.clone(),
    };
    assert_eq!(own.send("PUT", "mine").await.status(), 403);

    // Container ACLs: a public read ACL lets anyone read objects; .rlistings lists too;
    // a write ACL naming the other project lets its members write.
    assert_eq!(s.put("c/pub", b"hello").await.status(), 201);
    let r = s
        .req("POST", "c")
        .header("X-Container-Read", ".r:*")
        .header("X-Container-Write", "*:stranger")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = anon.send("GET", "c/pub").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello");
    assert_eq!(anon.send("GET", "c").await.status(), 401);
    assert_eq!(st.put("c/from-stranger", b"x").await.status(), 201);
    assert_eq!(st.send("DELETE", "c").await.status(), 403);
    let r = s.send("HEAD", "c").await;
    assert_eq!(h(&r, "x-container-read"), ".r:*");

    // Container quotas: bytes and count; a quota must be a number.
    let r = s
        .req("PUT", "q")
        .header("X-Container-Meta-Quota-Bytes", "5")
        .header("X-Container-Meta-Quota-Count", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.put("q/big", b"123456").await.status(), 413);
    assert_eq!(s.put("q/a", b"12").await.status(), 201);
    assert_eq!(s.put("q/b", b"34").await.status(), 201);
    let r = s.put("q/c", b"5").await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.text().await.unwrap(), "Upload exceeds quota.");
    let r = s
        .req("POST", "q")
        .header("X-Container-Meta-Quota-Bytes", "lots")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Account quotas: only a reseller admin sets them; uploads beyond get 413.
    let r = s
        .req("POST", "")
        .header("X-Account-Meta-Quota-Bytes", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let role = c
        .admin
        .post(
            "/v3/roles",
            &serde_json::json!({"role": {"name": "ResellerAdmin"}}),
        )
        .await
        .unwrap();
    assert_eq!(role.status, 201);
    c.project_user("resellers", "reseller", "pw", "ResellerAdmin")
        .await;
    let (reseller, _) = c.login("reseller", "pw", Some("resellers")).await.unwrap();
    let rs = Swift {
        http: reqwest::Client::new(),
        account: s.account.clone(),
        token: reseller.token.clone(),
    };
    let used: u64 = h(&s.send("HEAD", "").await, "x-account-bytes-used")
        .parse()
        .unwrap();
    let r = rs
        .req("POST", "")
        .header("X-Account-Meta-Quota-Bytes", (used + 3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.put("c/fits", b"123").await.status(), 201);
    assert_eq!(s.put("c/over", b"4").await.status(), 413);
    // Swift 2.34's object-count quota (`X-Account-Quota-Count`), also reseller-only.
    let r = s
        .req("POST", "")
        .header("X-Account-Quota-Count", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for (name, value) in [
        ("X-Remove-Account-Meta-Quota-Bytes", "x"),
        ("X-Account-Quota-Count", "0"),
    ] {
        let r = rs.req("POST", "").header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 204, "{name}");
    }
    assert_eq!(s.put("c/counted", b"4").await.status(), 413);
    let r = rs
        .req("POST", "")
        .header("X-Account-Quota-Count", "many")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn writes_succeed_on_a_quorum_and_use_a_handoff_when_a_device_is_down() {
    // Four devices, three replicas: one device is always a handoff.
    let c = TestCloud::start_with(|cfg| {
        cfg.object.devices = vec!["d1".into(), "d2".into(), "d3".into(), "d4".into()];
    })
    .await
    .unwrap();
    let s = admin_swift(&c);
    let devices = c.config.state_dir.join("object-devices");
    assert_eq!(s.send("PUT", "c").await.status(), 201);
    assert_eq!(s.put("c/one", b"1").await.status(), 201);
    assert_eq!(data_files(&devices), 3, "three replicas");

    // Take one device away: a write still lands three copies (two primaries, one handoff)
    // and reads find it.
    let left = data_files(&devices) - data_files(&devices.join("d2"));
    std::fs::rename(devices.join("d2"), c.config.state_dir.join("d2-away")).unwrap();
    for i in 0..8 {
        let r = s.put(&format!("c/obj{i}"), b"payload").await;
        assert_eq!(r.status(), 201, "obj{i}");
    }
    for i in 0..8 {
        let r = s.send("GET", &format!("c/obj{i}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"payload");
    }
    assert_eq!(
        data_files(&devices),
        left + 8 * 3,
        "every write kept three copies"
    );

    // Three of four devices away: no write reaches a quorum.
    std::fs::rename(devices.join("d3"), c.config.state_dir.join("d3-away")).unwrap();
    std::fs::rename(devices.join("d4"), c.config.state_dir.join("d4-away")).unwrap();
    let r = s.put("c/three-down", b"x").await;
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn large_objects_read_as_their_segments() {
    let c = TestCloud::start().await;
    let s = admin_swift(&c);
    assert_eq!(s.send("PUT", "segs").await.status(), 201);
    assert_eq!(s.send("PUT", "big").await.status(), 201);
    assert_eq!(s.put("segs/part/000", b"hello ").await.status(), 201);
    assert_eq!(s.put("segs/part/001", b"large ").await.status(), 201);
    assert_eq!(s.put("segs/part/002", b"world").await.status(), 201);
    let etag = |b: &[u8]| format!("{:x}", md5_of(b));

    // Static: a manifest naming the segments with their etags and sizes.
    let manifest = serde_json::json!([
        {"path": "/segs/part/000", "etag": etag(b"hello "), "size_bytes": 6},
        {"path": "/segs/part/001", "etag": null, "size_bytes": null},
        {"path": "/segs/part/002"},
    ]);
    let r = s
        .req("PUT", "big/slo?multipart-manifest=put")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.send("GET", "big/slo").await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-length"), "17");
    assert_eq!(h(&r, "x-static-large-object"), "True");
    assert_eq!(r.text().await.unwrap(), "hello large world");
    let r = s
        .req("GET", "big/slo")
        .header("Range", "bytes=4-8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.unwrap(), "o lar");
    let listed = s.json("big?format=json").await;
    assert_eq!(listed[0]["bytes"], 17);
    let got = s.json("big/slo?multipart-manifest=get").await;
    assert_eq!(got[1]["name"], "/segs/part/001");
    assert_eq!(got[1]["bytes"], 6);
    // A copy of a large object is a plain object with all its bytes.
    let r = s
        .req("COPY", "big/slo")
        .header("Destination", "big/flat")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.send("GET", "big/flat").await;
    assert_eq!(h(&r, "x-static-large-object"), "");
    assert_eq!(r.text().await.unwrap(), "hello large world");

    // A bad manifest: a missing segment or a wrong etag, and nothing is stored.
    let bad = serde_json::json!([
        {"path": "/segs/part/000", "etag": "0123"},
        {"path": "/segs/nope"},
    ]);
    let r = s
        .req("PUT", "big/bad?multipart-manifest=put")
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("/segs/part/000, Etag Mismatch"), "{text}");
    assert!(text.contains("/segs/nope, 404 Not Found"), "{text}");
    assert_eq!(s.send("GET", "big/bad").await.status(), 404);
    let r = s
        .req("PUT", "big/bad?multipart-manifest=put")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Dynamic: every object under a prefix, in name order.
    let r = s
        .req("PUT", "big/dlo")
        .header("X-Object-Manifest", "segs/part/")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.send("GET", "big/dlo").await;
    assert_eq!(h(&r, "content-length"), "17");
    assert_eq!(h(&r, "x-object-manifest"), "segs/part/");
    assert_eq!(r.text().await.unwrap(), "hello large world");

    // Deleting the static manifest with its segments.
    let r = s
        .req("DELETE", "big/slo?multipart-manifest=delete")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["Number Deleted"], 4);
    assert_eq!(s.send("GET", "segs/part/000").await.status(), 404);
    assert_eq!(s.send("GET", "big/slo").await.status(), 404);
    // The dynamic manifest now reads as nothing.
    assert_eq!(s.send("GET", "big/dlo").await.text().await.unwrap(), "");

    // Expiring objects: gone for readers at their time, then from the listing (the
    // expirer); a POST without a delete time keeps the object.
    let put_expiring = |name: &'static str| {
        s.req("PUT", name)
            .header("X-Delete-After", "1")
            .body("bye")
            .send()
    };
    assert_eq!(put_expiring("big/soon").await.unwrap().status(), 201);
    let r = s
        .req("PUT", "big/kept")
        .header("X-Delete-After", "3600")
        .body("stay")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.send("HEAD", "big/kept").await;
    assert!(h(&r, "x-delete-at").parse::<i64>().unwrap() > chrono_now() + 3000);
    let r = s
        .req("POST", "big/kept")
        .header("X-Object-Meta-Keep", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s.send("HEAD", "big/kept").await;
    assert_eq!(
        h(&r, "x-delete-at"),
        "",
        "a POST without a delete time clears it"
    );
    let r = s
        .req("PUT", "big/past")
        .header("X-Delete-At", "1000")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .req("PUT", "big/nan")
        .header("X-Delete-After", "soon")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .req("PUT", "big/huge")
        .header("X-Delete-After", i64::MAX.to_string())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "an overflowing delete time is refused, not a panic"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    assert_eq!(s.send("GET", "big/soon").await.status(), 404);
    assert_eq!(s.send("GET", "big/kept").await.status(), 200);
    let mut listed = String::new();
    for _ in 0..30 {
        listed = s.send("GET", "big").await.text().await.unwrap();
        if !listed.contains("soon") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!listed.contains("soon"), "the expirer removed it: {listed}");
    assert!(listed.contains("kept"));

    // Bulk delete: objects, then their emptied containers; a missing one is counted.
    let r = s
        .req("POST", "?bulk-delete")
        .header("Accept", "application/json")
        .header("Content-Type", "text/plain")
        .body("/big/kept\n/big/flat\n/big/dlo\n/big/missing\n/segs\n/big\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["Number Deleted"], 5, "{summary}");
    assert_eq!(summary["Number Not Found"], 1, "{summary}");
    assert_eq!(summary["Response Status"], "200 OK");
    assert_eq!(s.send("HEAD", "big").await.status(), 404);
    let r = s.req("POST", "?bulk-delete").body("").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// md5 of `b`, as a number for hex formatting.
fn md5_of(b: &[u8]) -> u128 {
    use md5::Digest as _;
    u128::from_be_bytes(md5::Md5::digest(b).into())
}

#[tokio::test]
async fn tempest_object_storage_edges_answer_as_swift_does() {
    // The expirer stays away so that an expired object is still listed when deleted.
    let c = TestCloud::start_with(|cfg| cfg.object.expirer_interval = 3600)
        .await
        .unwrap();
    let s = admin_swift(&c);
    assert_eq!(s.send("PUT", "e").await.status(), 201);

    // healthcheck: no token, any client.
    let r = reqwest::get(format!("{}/healthcheck", c.object_url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");

    // An object keeps an empty X-Object-Meta-* value, on PUT and on POST.
    let r = s
        .req("PUT", "e/m")
        .header("X-Object-Meta-Empty", "")
        .header("X-Object-Meta-Src", "v")
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.send("HEAD", "e/m").await;
    assert_eq!(r.headers().get("x-object-meta-empty").unwrap(), "");
    let r = s
        .req("POST", "e/m")
        .header("X-Object-Meta-Posted", "")
        .header("X-Object-Meta-Src", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s.send("HEAD", "e/m").await;
    assert_eq!(r.headers().get("x-object-meta-posted").unwrap(), "");
    assert!(
        r.headers().get("x-object-meta-empty").is_none(),
        "POST replaces"
    );

    // A copy answers with the new object's metadata: the source's plus its own.
    let r = s
        .req("COPY", "e/m")
        .header("Destination", "e/m2")
        .header("X-Object-Meta-New", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(h(&r, "x-object-meta-src"), "v");
    assert_eq!(r.headers().get("x-object-meta-new").unwrap(), "");
    assert_eq!(h(&r, "x-copied-from"), "e/m");
    let r = s.send("HEAD", "e/m2").await;
    assert_eq!(r.headers().get("x-object-meta-new").unwrap(), "");

    // Temporary URLs: `inline` asks for inline disposition; a URL's own verdict stands even
    // when the request also carries a valid token.
    let r = s
        .req("POST", "")
        .header("X-Account-Meta-Temp-URL-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let path = format!("{}/e/m", &s.account[s.account.find("/v1/").unwrap()..]);
    let expires = chrono_now() + 300;
    let sig = ferro_object_store::tempurl::sign_sha256("k", "GET", expires, &path);
    let url = format!(
        "{}{path}?temp_url_sig={sig}&temp_url_expires={expires}",
        c.object_url
    );
    let r = reqwest::get(format!("{url}&inline")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-disposition"), "inline");
    let r = reqwest::get(format!("{url}&inline&filename=x.txt"))
        .await
        .unwrap();
    assert_eq!(
        h(&r, "content-disposition"),
        "inline; filename=\"x.txt\"; filename*=UTF-8''x.txt"
    );
    let old = chrono_now() - 1;
    let old_sig = ferro_object_store::tempurl::sign_sha256("k", "GET", old, &path);
    let r = s
        .req(
            "GET",
            &format!("e/m?temp_url_sig={old_sig}&temp_url_expires={old}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "expired URL, valid token");

    // Deleting an object past its X-Delete-At that the expirer has not reached: 404, and the
    // container forgets it, so the container can be deleted.
    let r = s.req("PUT", "x").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .req("PUT", "x/soon")
        .header("X-Delete-After", "1")
        .body("bye")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(s.send("GET", "x/soon").await.status(), 404);
    assert_eq!(s.json("x?format=json").await.as_array().unwrap().len(), 1);
    assert_eq!(s.send("DELETE", "x/soon").await.status(), 404);
    assert_eq!(s.json("x?format=json").await.as_array().unwrap().len(), 0);
    assert_eq!(s.send("DELETE", "x").await.status(), 204);

    // Archive extraction: a real tar of `dir/a.txt` and `dir/sub/b.txt` makes container `dir`.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("dir/sub")).unwrap();
    std::fs::write(work.path().join("dir/a.txt"), "aaa").unwrap();
    std::fs::write(work.path().join("dir/sub/b.txt"), "bbbb").unwrap();
    std::fs::write(work.path().join("top.txt"), "ignored").unwrap();
    let tar = work.path().join("t.tar");
    let ok = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(work.path())
        .args(["dir", "top.txt"])
        .status()
        .unwrap();
    assert!(ok.success());
    let r = s
        .req("PUT", "?extract-archive=tar")
        .header("Accept", "application/json")
        .body(std::fs::read(&tar).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["Number Files Created"], 2, "{summary}");
    assert_eq!(summary["Response Status"], "201 Created");
    assert_eq!(
        s.send("GET", "dir/sub/b.txt").await.text().await.unwrap(),
        "bbbb"
    );
    let names: Vec<String> = s
        .json("dir?format=json")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.txt", "sub/b.txt"]);
    // Into a container given in the path; junk is a 400 in the summary, nothing stored.
    let r = s
        .req("PUT", "e?extract-archive=tar")
        .body(std::fs::read(&tar).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("Number Files Created: 3"), "{text}");
    assert_eq!(
        s.send("GET", "e/top.txt").await.text().await.unwrap(),
        "ignored"
    );
    let r = s
        .req("PUT", "?extract-archive=tar")
        .header("Accept", "application/json")
        .body("no tar here")
        .send()
        .await
        .unwrap();
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["Response Status"], "400 Bad Request", "{summary}");
    let r = s
        .req("PUT", "?extract-archive=tar.gz")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// Flips one byte of the first `.data` file in `dir` (same length: only a checksum notices).
fn corrupt_data(dir: &std::path::Path) {
    let data = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "data"))
        .expect("a .data file");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
}

fn has_data(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "data"))
    })
}

#[tokio::test]
async fn replication_and_auditing_restore_missing_and_corrupt_copies() {
    // Four devices, three replicas; the background passes stay away: the test runs them.
    let c = TestCloud::start_with(|cfg| {
        cfg.object.devices = vec!["d1".into(), "d2".into(), "d3".into(), "d4".into()];
        cfg.object.replicator_interval = 3600;
        cfg.object.auditor_interval = 3600;
        cfg.object.auditor_bytes_per_second = 0;
    })
    .await
    .unwrap();
    let store = c.cloud.object_store.clone();
    let s = admin_swift(&c);
    let account = format!("AUTH_{}", project_of(&c.admin_token));
    let devices = c.config.state_dir.join("object-devices");
    assert_eq!(s.send("PUT", "c").await.status(), 201);

    // d2 is down while 40 objects are written: its share lands on handoffs.
    std::fs::rename(devices.join("d2"), c.config.state_dir.join("d2-away")).unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("o{i}")).collect();
    for n in &names {
        let r = s
            .req("PUT", &format!("c/{n}"))
            .body(format!("payload of {n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    std::fs::rename(c.config.state_dir.join("d2-away"), devices.join("d2")).unwrap();
    let on_primaries = |n: &str| {
        let (primaries, handoffs, rel) = store.object_nodes(&account, "c", n);
        (
            primaries.iter().filter(|d| has_data(&d.join(&rel))).count(),
            handoffs.iter().filter(|d| has_data(&d.join(&rel))).count(),
        )
    };
    let moved = names.iter().filter(|n| on_primaries(n).1 > 0).count();
    assert!(moved > 0, "some objects had d2 as a primary");

    // Within two passes every object has three copies on its primaries and none elsewhere.
    for _ in 0..2 {
        store.replicate_once().await.unwrap();
    }
    for n in &names {
        assert_eq!(on_primaries(n), (3, 0), "{n}");
    }
    let quiet = store.replicate_once().await.unwrap();
    assert_eq!(quiet.files_pushed, 0, "a converged cluster pushes nothing");

    // A corrupt copy read by a GET: the client gets the right bytes, the copy is
    // quarantined, and the replicator restores it.
    let (primaries, _, rel) = store.object_nodes(&account, "c", "o0");
    corrupt_data(&primaries[0].join(&rel));
    for _ in 0..3 {
        let r = s.send("GET", "c/o0").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "payload of o0");
    }
    assert!(!has_data(&primaries[0].join(&rel)), "quarantined");
    assert!(
        devices
            .join(primaries[0].file_name().unwrap())
            .join("quarantined/objects")
            .is_dir()
    );
    store.replicate_once().await.unwrap();
    assert_eq!(on_primaries("o0"), (3, 0));

    // A corrupt copy nobody reads: the auditor finds it, the replicator replaces it.
    let (primaries, _, rel) = store.object_nodes(&account, "c", "o1");
    corrupt_data(&primaries[1].join(&rel));
    let audit = store.audit_once().await.unwrap();
    assert_eq!(audit.quarantined, 1, "{audit:?}");
    assert_eq!(audit.objects_checked, 40 * 3);
    assert!(!has_data(&primaries[1].join(&rel)));
    store.replicate_once().await.unwrap();
    assert_eq!(on_primaries("o1"), (3, 0));
    assert_eq!(
        store.audit_once().await.unwrap().quarantined,
        0,
        "all sound again"
    );

    // A large object's corrupt copy: the stream is cut short rather than completed with
    // wrong bytes; the next GET reads a good copy.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let r = s
        .req("PUT", "c/big")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (primaries, _, rel) = store.object_nodes(&account, "c", "big");
    corrupt_data(&primaries[0].join(&rel));
    let first = s.send("GET", "c/big").await;
    // Either cut short (an error) or the right bytes; never a whole body of wrong ones.
    if let Ok(body) = first.bytes().await {
        assert_eq!(body.as_ref(), big.as_slice(), "never the corrupt bytes");
    }
    let r = s.send("GET", "c/big").await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), big.as_slice());
    store.replicate_once().await.unwrap();
    assert_eq!(on_primaries("big"), (3, 0));
}

/// Object PUTs read the container's and account's records through a short-lived cache:
/// a change made meanwhile (a quota set, the container deleted or re-created) applies to
/// the very next PUT, as it does without the cache.
#[tokio::test]
async fn object_puts_see_container_changes_at_once() {
    let c = TestCloud::start().await;
    let s = admin_swift(&c);
    assert_eq!(s.send("PUT", "c").await.status(), 201);
    for name in ["c/a", "c/b"] {
        assert_eq!(s.put(name, b"12").await.status(), 201);
    }
    // A quota set after the record was read: the next PUT counts against it.
    let r = s
        .req("POST", "c")
        .header("X-Container-Meta-Quota-Count", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.put("c/c", b"3").await.status(), 201);
    assert_eq!(s.put("c/d", b"4").await.status(), 413);
    for name in ["c/a", "c/b", "c/c"] {
        assert_eq!(s.send("DELETE", name).await.status(), 204);
    }
    // A deleted container takes no more objects; re-created, it takes them again.
    assert_eq!(s.send("DELETE", "c").await.status(), 204);
    assert_eq!(s.put("c/e", b"5").await.status(), 404);
    assert_eq!(s.send("PUT", "c").await.status(), 201);
    assert_eq!(s.put("c/e", b"5").await.status(), 201);
    // Re-created without the quota: no longer limited.
    assert_eq!(s.put("c/f", b"6").await.status(), 201);
    assert_eq!(s.put("c/g", b"7").await.status(), 201);
    assert_eq!(s.put("c/h", b"8").await.status(), 201);
}
