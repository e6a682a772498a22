//! dashboards/provisioning/influxdb2/create-dbrp.sh, which maps the
//! InfluxQL database the dashboards query to the InfluxDB 2.x bucket, run
//! against a stand-in of the InfluxDB 2.x HTTP API on loopback that answers
//! as the v2 API documents (organisations, buckets, DBRP mappings). No 2.x
//! server runs in this suite, so this checks the script's requests and its
//! decisions, not InfluxDB itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ORG_ID: &str = "0123456789abcdef";
const BUCKET_ID: &str = "fedcba9876543210";
const TOKEN: &str = "test-token-0123456789abcdef";

#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    authorization: String,
    body: String,
}

/// Answers like InfluxDB 2.x; `existing` is the `content` of GET /api/v2/dbrps.
fn answer(req: &Request, existing: &str) -> (u16, String) {
    let path = req.target.split('?').next().unwrap();
    let query = req.target.split_once('?').map_or("", |(_, q)| q);
    match (req.method.as_str(), path) {
        ("GET", "/api/v2/orgs") if query == "org=wastewatch" => (
            200,
            format!(
                r#"{{"links":{{"self":"/api/v2/orgs"}},"orgs":[{{"links":{{"buckets":"/api/v2/buckets?org=wastewatch"}},"id":"{ORG_ID}","name":"wastewatch"}}]}}"#
            ),
        ),
        ("GET", "/api/v2/buckets") if query == format!("orgID={ORG_ID}&name=wastewatch") => (
            200,
            format!(
                r#"{{"links":{{"self":"/api/v2/buckets"}},"buckets":[{{"id":"{BUCKET_ID}","orgID":"{ORG_ID}","type":"user","name":"wastewatch","retentionRules":[],"labels":[]}}]}}"#
            ),
        ),
        ("GET", "/api/v2/dbrps") if query == format!("orgID={ORG_ID}&db=wastewatch&rp=autogen") => {
            (200, format!(r#"{{"content":[{existing}]}}"#))
        }
        ("POST", "/api/v2/dbrps") => (
            201,
            format!(
                r#"{{"id":"1111222233334444",{}}}"#,
                &req.body[1..req.body.len() - 1]
            ),
        ),
        _ => (
            404,
            r#"{"code":"not found","message":"path not found"}"#.into(),
        ),
    }
}

/// Runs the script against the stand-in; returns its outcome and the requests.
fn run_script(existing: &'static str) -> (Output, Vec<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, target) = (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            );
            let (mut length, mut authorization) = (0usize, String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap(),
                    "authorization" => authorization = v.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let req = Request {
                method,
                target,
                authorization,
                body: String::from_utf8(body).unwrap(),
            };
            let (code, text) = answer(&req, existing);
            let mut out = stream;
            write!(
                out,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .unwrap();
            seen.push(req);
        }
        seen
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards/provisioning/influxdb2/create-dbrp.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--org", "wastewatch", "--bucket", "wastewatch"])
        .env("INFLUX_URL", &url)
        .env("INFLUX_TOKEN", TOKEN)
        .output()
        .expect("bash");
    done.store(true, Ordering::Relaxed);
    (out, server.join().unwrap())
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_dbrp_script_maps_the_dashboards_database_to_the_bucket_when_no_mapping_exists() {
    let (out, reqs) = run_script("");
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("created"), "{}", said(&out));
    assert!(
        reqs.iter()
            .all(|r| r.authorization == format!("Token {TOKEN}")),
        "{reqs:?}"
    );
    let posts: Vec<&Request> = reqs.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{reqs:?}");
    let body: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "orgID": ORG_ID,
            "bucketID": BUCKET_ID,
            "database": "wastewatch",
            "retention_policy": "autogen",
            "default": true
        })
    );
}

#[test]
fn the_dbrp_script_leaves_an_existing_mapping_to_the_same_bucket_alone() {
    let existing = r#"{"id":"1111222233334444","orgID":"0123456789abcdef","bucketID":"fedcba9876543210","database":"wastewatch","retention_policy":"autogen","default":true}"#;
    let (out, reqs) = run_script(existing);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("already exists"), "{}", said(&out));
    assert!(reqs.iter().all(|r| r.method == "GET"), "{reqs:?}");
}

#[test]
fn the_dbrp_script_refuses_to_remap_a_database_mapped_to_another_bucket() {
    let existing = r#"{"id":"1111222233334444","orgID":"0123456789abcdef","bucketID":"aaaabbbbccccdddd","database":"wastewatch","retention_policy":"autogen","default":true}"#;
    let (out, reqs) = run_script(existing);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("another bucket"), "{}", said(&out));
    assert!(reqs.iter().all(|r| r.method == "GET"), "{reqs:?}");
}
