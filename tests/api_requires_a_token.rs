//! Who may use the HTTP API: acknowledging an alert needs a bearer token and
//! a JSON body, so a request without a token (401) and a cross-site form
//! POST (4xx) change nothing, while a valid token acknowledges and is
//! recorded as who did it, with the reason, in the alert's history. Reads are
//! open unless `http.protect_reads`, which leaves only the health probes
//! open. `check-config` refuses a listener other hosts can reach without a
//! token.

use std::process::Command;
use std::time::Duration;

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

fn leak(zone: &Zone, seq: u64) -> Msg {
    let mut e = zone.envelope(DeviceKind::Storage, seq, now_ms() - 500);
    if let Some(Body::StorageReading(s)) = e.body.as_mut() {
        s.leak_detected = true;
    }
    Msg::pb(zone, &e)
}

fn alerts(svc: &Service) -> Vec<serde_json::Value> {
    serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap_or_default(),
    )
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_valid_token_with_a_json_body_acknowledges_and_it_is_recorded() {
    let setup = V1Setup::new(
        "apiauth",
        &[("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200")],
    );
    let svc = setup.start();
    assert_eq!(
        publish_all(
            format!("pub-{}", setup.tag),
            vec![leak(&setup.zone, 1)],
            None
        )
        .await,
        1
    );
    assert!(
        eventually(Duration::from_secs(20), || alerts(&svc)
            .iter()
            .any(|a| a["key"]["rule"] == "leak" && a["state"] == "firing")),
        "no firing leak alert; log:\n{}",
        setup.log()
    );
    let id = alerts(&svc)
        .iter()
        .find(|a| a["key"]["rule"] == "leak")
        .and_then(|a| a["id"].as_u64())
        .unwrap();
    let url = format!("http://{}/api/v1/alerts/{id}/ack", svc.http);
    let json = "content-type: application/json";
    let token = format!("authorization: Bearer {}", api_token());

    let (code, body) = http_request("POST", &url, &[json], "{}");
    assert_eq!(code, 401, "no token: {body}");
    let (code, _) = http_request(
        "POST",
        &url,
        &[json, &format!("authorization: Bearer {}x", api_token())],
        "{}",
    );
    assert_eq!(code, 401, "a wrong token");
    // What a hostile web page can make an operator's browser send: a form,
    // no Authorization header.
    let (code, _) = http_request(
        "POST",
        &url,
        &[
            "content-type: application/x-www-form-urlencoded",
            "origin: http://evil.example",
        ],
        "reason=pwned",
    );
    assert!(
        (400..500).contains(&code),
        "cross-site form POST answered {code}"
    );
    // Even with the token, only JSON changes anything.
    let (code, _) = http_request("POST", &url, &["content-type: text/plain", &token], "{}");
    assert_eq!(code, 415);
    let a = alerts(&svc).into_iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(
        a["state"], "firing",
        "a refused request acknowledged the alert: {a}"
    );

    let (code, body) = http_request(
        "POST",
        &url,
        &[json, &token],
        r#"{"reason":"crew sent to the sump"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let a: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["state"], "acknowledged");
    assert_eq!(a["acknowledged_by"], API_TOKEN_NAME);
    assert_eq!(a["history"][0]["event"], "acknowledged");
    assert_eq!(a["history"][0]["by"], API_TOKEN_NAME);
    assert_eq!(a["history"][0]["reason"], "crew sent to the sump");
    // The list shows the same history (reads are open by default).
    let listed = alerts(&svc).into_iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(listed["history"], a["history"]);
    svc.stop();
    assert!(
        !setup.log().contains(api_token()),
        "the API token was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_reads_need_the_token_and_the_health_probes_stay_open() {
    let setup = V1Setup::new("apireads", &[("WASTEWATCH__HTTP__PROTECT_READS", "true")]);
    let svc = setup.start();
    let token = format!("authorization: Bearer {}", api_token());
    for path in ["/metrics", "/api/v1/alerts", "/api/v1/quarantine"] {
        let url = format!("http://{}{path}", svc.http);
        let (code, _) = http_request("GET", &url, &[], "");
        assert_eq!(code, 401, "{path} without a token");
        let (code, body) = http_request("GET", &url, &[&token], "");
        assert_eq!(code, 200, "{path} with the token: {body}");
    }
    for path in ["/healthz", "/readyz"] {
        let (code, _) = http_request("GET", &format!("http://{}{path}", svc.http), &[], "");
        assert_eq!(code, 200, "{path}");
    }
    svc.stop();
}

#[test]
fn check_config_refuses_a_listener_other_hosts_reach_without_a_token() {
    let tag = unique("apiconf");
    let zone = Zone::new(&tag);
    let check = |extra: &[(&str, &str)]| {
        Command::new(wastewatch_bin())
            .arg("check-config")
            .env("WASTEWATCH__DECODE__REGISTRY_DIR", zone.dir.path())
            .env("WASTEWATCH__HTTP__LISTEN", "0.0.0.0:9464")
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "http.listen 0.0.0.0:9464 is reachable from other hosts but no API token is configured"
        ),
        "{err}"
    );
    let tokens = zone.dir.path().join("tokens");
    std::fs::write(&tokens, format!("ops:{}\n", api_token())).unwrap();
    let out = check(&[("WASTEWATCH__HTTP__TOKENS_FILE", tokens.to_str().unwrap())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!printed.contains(api_token()));
}
