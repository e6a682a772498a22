//! Config layering and error collection.

use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_alone_are_valid() {
    let s = load(None, &[]).unwrap();
    assert_eq!(s.mqtt.port, 1883);
    assert_eq!(s.tsdb.batch_max_lines.get(), 5000);
}

#[test]
fn an_env_override_reaches_a_nested_key_whose_name_contains_underscores() {
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__TSDB__BATCH_MAX_LINES", "77"),
            ("WASTEWATCH__MQTT__RECEIVE_MAXIMUM", "321"),
        ]),
    )
    .unwrap();
    assert_eq!(s.tsdb.batch_max_lines.get(), 77);
    assert_eq!(s.mqtt.receive_maximum, 321);
}

#[test]
fn env_wins_over_the_file_and_the_file_over_defaults() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "[mqtt]\nport = 1999\nclient_id = \"from-file\"\n[tsdb]\nkind = \"none\""
    )
    .unwrap();
    let s = load(
        Some(f.path()),
        &env(&[("WASTEWATCH__MQTT__CLIENT_ID", "from-env")]),
    )
    .unwrap();
    assert_eq!(s.mqtt.port, 1999);
    assert_eq!(s.mqtt.client_id, "from-env");
    assert!(matches!(s.tsdb.target, TsdbTarget::None));
}

#[test]
fn every_error_is_reported_at_once() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "[mqtt]\nport = 0\nsession_expiry_s = 0\n[tsdb]\nkind = \"influxdb_v3\"\nbatch_max_lines = 0\n[log]\nmax_bytes = 10\n[http]\nlisten = \"nowhere\""
    )
    .unwrap();
    let err = load(Some(f.path()), &[]).unwrap_err();
    let text = err.to_string();
    for want in [
        "mqtt.port is 0",
        "session_expiry_s is 0",
        "\"influxdb_v3\"",
        "tsdb.batch_max_lines is 0",
        "log.max_bytes is 10",
        "http.listen \"nowhere\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 6, "{text}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "[mqtt]\nhots = \"x\"").unwrap();
    let err = load(Some(f.path()), &[]).unwrap_err().to_string();
    assert!(err.contains("hots"), "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    let err = load(Some(std::path::Path::new("/nonexistent/ww.toml")), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ww.toml"), "{err}");
}

#[test]
fn secrets_never_print() {
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__MQTT__USERNAME", "u"),
            ("WASTEWATCH__MQTT__PASSWORD", "hunter2"),
            ("WASTEWATCH__TSDB__KIND", "influxdb_v2"),
            ("WASTEWATCH__TSDB__TOKEN", "tok-secret"),
        ]),
    )
    .unwrap();
    let dbg = format!("{s:?}");
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("tok-secret"),
        "{dbg}"
    );
    assert!(dbg.contains("[redacted]"));
}

#[test]
fn the_shipped_example_config_is_valid_and_matches_the_defaults() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wastewatch.example.toml");
    let from_file = load(Some(&p), &[]).unwrap();
    // The example is the deployment config for the shipped broker config,
    // which refuses anonymous clients: it logs in as the ingest identity
    // under the `ww:` client-id prefix (docs/SECURITY.md). Everything else
    // is the built-in default.
    assert_eq!(from_file.mqtt.client_id, "ww:wastewatch-ingest");
    let defaults = load(
        None,
        &[
            (
                "WASTEWATCH__MQTT__CLIENT_ID".into(),
                "ww:wastewatch-ingest".into(),
            ),
            (
                "WASTEWATCH__MQTT__USERNAME".into(),
                "wastewatch-ingest".into(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
}

#[test]
fn webhooks_are_validated_entry_by_entry_without_echoing_urls_or_secrets() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        r#"[[notify.webhooks]]
name = "chat"
url = "https://oapi.example/robot/send?access_token=GOODTOKEN"
format = "dingtalk"
sign_secret = "SIGNSECRET"

[[notify.webhooks]]
name = "chat"
url = "ftp://files.example/?access_token=BADTOKEN1"
format = "teams"
min_severity = "urgent"
sign_secret = "OTHERSECRET"

[[notify.webhooks]]
name = "alertmanager"
url = "not a url BADTOKEN2"
format = "wecom"
sign_secret = "WECOMSECRET"
"#
    )
    .unwrap();
    let err = load(Some(f.path()), &[]).unwrap_err().to_string();
    for want in [
        "notify.webhooks[1].name \"chat\" must be non-empty, unique",
        "notify.webhooks[1].url must be an http:// or https:// URL",
        "notify.webhooks[1].format \"teams\": unknown variant `teams`, expected one of `json`, `dingtalk`, `wecom`",
        "notify.webhooks[1].min_severity \"urgent\": unknown variant `urgent`, expected one of `info`, `warn`, `major`, `critical`",
        "notify.webhooks[2].sign_secret is used by format = \"json\" (HMAC header) and \"dingtalk\"",
        "notify.webhooks[2].name \"alertmanager\"",
        "notify.webhooks[2].url is not a URL",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("webhooks[0]"), "{err}");
    for secret in [
        "GOODTOKEN",
        "BADTOKEN",
        "SIGNSECRET",
        "OTHERSECRET",
        "WECOMSECRET",
    ] {
        assert!(!err.contains(secret), "{secret} echoed in:\n{err}");
    }

    let mut ok = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        ok,
        "[[notify.webhooks]]\nname = \"chat\"\nurl = \"https://qyapi.example/cgi-bin/webhook/send?key=K3Y\"\nformat = \"wecom\"\nmin_severity = \"warn\""
    )
    .unwrap();
    let s = load(Some(ok.path()), &[]).unwrap();
    let w = &s.alerting.webhooks[0];
    assert_eq!(w.format, crate::notify::webhook::Format::Wecom);
    assert_eq!(w.min_severity, crate::alert::Severity::Warn);
    assert!(!format!("{s:?}").contains("K3Y"));
}

#[test]
fn log_sizes_that_could_deadlock_or_not_free_space_are_refused() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "[log]\nmax_bytes = 8388608\nsegment_bytes = 4194304\ncommit_max_bytes = 4194304"
    )
    .unwrap();
    let text = load(Some(f.path()), &[]).unwrap_err().to_string();
    assert!(
        text.contains("log.segment_bytes (4194304 bytes) is more than a quarter"),
        "{text}"
    );
    assert!(
        text.contains("log.commit_max_bytes (4194304 bytes) + mqtt.max_packet_bytes"),
        "{text}"
    );
}

#[test]
fn the_commit_linger_defaults_to_2_ms_and_a_long_one_is_refused() {
    let s = load(None, &[]).unwrap();
    assert_eq!(s.log.commit_linger, std::time::Duration::from_millis(2));
    let s = load(None, &env(&[("WASTEWATCH__LOG__COMMIT_LINGER_MS", "0")])).unwrap();
    assert!(s.log.commit_linger.is_zero());
    let text = load(None, &env(&[("WASTEWATCH__LOG__COMMIT_LINGER_MS", "5000")]))
        .unwrap_err()
        .to_string();
    assert!(text.contains("log.commit_linger_ms is 5000 ms"), "{text}");
}

#[test]
fn the_read_linger_defaults_to_1_ms_and_a_long_one_is_refused() {
    let s = load(None, &[]).unwrap();
    assert_eq!(s.mqtt.read_linger, std::time::Duration::from_millis(1));
    let s = load(None, &env(&[("WASTEWATCH__MQTT__READ_LINGER_MS", "0")])).unwrap();
    assert!(s.mqtt.read_linger.is_zero());
    let text = load(None, &env(&[("WASTEWATCH__MQTT__READ_LINGER_MS", "101")]))
        .unwrap_err()
        .to_string();
    assert!(text.contains("mqtt.read_linger_ms is 101 ms"), "{text}");
}

#[test]
fn the_decoded_tail_defaults_to_4096_records_and_a_huge_one_is_refused() {
    let s = load(None, &[]).unwrap();
    assert_eq!(s.log.decoded_tail_records, 4096);
    assert_eq!(s.log.options().decoded_tail_records, 4096);
    let s = load(
        None,
        &env(&[("WASTEWATCH__LOG__DECODED_TAIL_RECORDS", "0")]),
    )
    .unwrap();
    assert_eq!(s.log.options().decoded_tail_records, 0);
    let text = load(
        None,
        &env(&[("WASTEWATCH__LOG__DECODED_TAIL_RECORDS", "5000000")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("log.decoded_tail_records is 5000000"),
        "{text}"
    );
}

#[test]
fn log_sizes_left_unset_are_derived_to_fit_a_small_bound() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "[log]\nmax_bytes = 1048576").unwrap();
    let s = load(Some(f.path()), &[]).unwrap();
    let room = 1048576 - s.log.options().reserve_bytes;
    assert!(s.log.segment_bytes <= 1048576 / 4);
    assert!(s.log.commit_max_bytes + 262144 + 4096 <= room / 2);
    assert!(s.log.commit_max_bytes >= 64 << 10);
}

#[test]
fn gzip_is_on_by_default_only_for_a_tsdb_on_another_host() {
    let s = load(
        None,
        &env(&[("WASTEWATCH__TSDB__URL", "http://127.0.0.1:8086")]),
    )
    .unwrap();
    assert!(!s.tsdb.gzip, "loopback: compressing saves nothing");
    let s = load(
        None,
        &env(&[("WASTEWATCH__TSDB__URL", "http://influx.example:8086")]),
    )
    .unwrap();
    assert!(s.tsdb.gzip);
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__TSDB__URL", "http://localhost:8086"),
            ("WASTEWATCH__TSDB__GZIP", "true"),
        ]),
    )
    .unwrap();
    assert!(s.tsdb.gzip, "an explicit setting wins");
}

#[test]
fn a_listener_other_hosts_can_reach_needs_an_api_token() {
    let err = load(None, &env(&[("WASTEWATCH__HTTP__LISTEN", "0.0.0.0:9464")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "http.listen 0.0.0.0:9464 is reachable from other hosts but no API token is configured"
        ),
        "{err}"
    );
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "alice:0123456789abcdef0123456789abcdef\n").unwrap();
    let path = tokens.path().display().to_string();
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__HTTP__LISTEN", "0.0.0.0:9464"),
            ("WASTEWATCH__HTTP__TOKENS_FILE", &path),
        ]),
    )
    .unwrap();
    assert_eq!(s.http_auth.names(), ["alice"]);
    assert!(load(
        None,
        &env(&[("WASTEWATCH__HTTP__LISTEN", "127.0.0.1:9464")])
    )
    .is_ok());
}

#[test]
fn api_tokens_come_from_a_file_and_the_environment_and_never_print() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "alice:FILETOKEN0123456789abcdef0123\n").unwrap();
    let path = tokens.path().display().to_string();
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__HTTP__TOKENS_FILE", &path),
            ("WASTEWATCH__HTTP__PROTECT_READS", "true"),
            (
                "WASTEWATCH_HTTP_TOKENS",
                "bob:ENVTOKEN0123456789abcdef012345",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(s.http_auth.names(), ["alice", "bob"]);
    assert!(s.http_auth.protect_reads);
    let d = format!("{s:?}");
    assert!(!d.contains("FILETOKEN") && !d.contains("ENVTOKEN"), "{d}");
    let err = load(None, &env(&[("WASTEWATCH_HTTP_TOKENS", "bob:WEAKTOKEN")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WASTEWATCH_HTTP_TOKENS: the token of \"bob\" is shorter"),
        "{err}"
    );
    assert!(!err.contains("WEAKTOKEN"), "{err}");
    let err = load(None, &env(&[("WASTEWATCH__HTTP__PROTECT_READS", "true")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http.protect_reads is on but no API token"),
        "{err}"
    );
}

#[test]
fn the_mqtt_password_comes_from_its_file_and_not_from_both_places() {
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), "PASSFROMFILE\n").unwrap();
    let path = pw.path().display().to_string();
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__MQTT__USERNAME", "ingest"),
            ("WASTEWATCH__MQTT__PASSWORD_FILE", &path),
        ]),
    )
    .unwrap();
    let (user, secret) = s.mqtt.credentials.clone().unwrap();
    assert_eq!((user.as_str(), secret.expose()), ("ingest", "PASSFROMFILE"));
    assert!(!format!("{s:?}").contains("PASSFROMFILE"));
    let err = load(
        None,
        &env(&[
            ("WASTEWATCH__MQTT__USERNAME", "ingest"),
            ("WASTEWATCH__MQTT__PASSWORD", "INLINEPASS"),
            ("WASTEWATCH__MQTT__PASSWORD_FILE", &path),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mqtt.password and mqtt.password_file are both set"),
        "{err}"
    );
    assert!(
        !err.contains("INLINEPASS") && !err.contains("PASSFROMFILE"),
        "{err}"
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let err = load(
        None,
        &env(&[("WASTEWATCH__MQTT__CLIENT_CERT_FILE", "/nonexistent/c.pem")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mqtt.client_cert_file and mqtt.client_key_file go together"),
        "{err}"
    );
}

#[test]
fn urls_with_credentials_are_refused_without_printing_them() {
    let err = load(
        None,
        &env(&[
            (
                "WASTEWATCH__TSDB__URL",
                "http://admin:URLPASSWORD@influx.example:8086",
            ),
            (
                "WASTEWATCH__NOTIFY__ALERTMANAGER_URL",
                "http://am:AMPASSWORD@am.example:9093",
            ),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tsdb.url \"http://influx.example:8086/\" (credentials removed) holds a user name or password"), "{err}");
    assert!(err.contains("notify.alertmanager_url"), "{err}");
    assert!(
        !err.contains("URLPASSWORD") && !err.contains("AMPASSWORD") && !err.contains("admin"),
        "{err}"
    );
}

#[test]
fn the_raw_config_never_prints_a_secret() {
    let raw = load_raw(
        None,
        &env(&[
            ("WASTEWATCH__MQTT__PASSWORD", "RAWMQTTPASS"),
            ("WASTEWATCH__TSDB__PASSWORD", "RAWTSDBPASS"),
            ("WASTEWATCH__TSDB__TOKEN", "RAWTSDBTOKEN"),
        ]),
    )
    .unwrap();
    let d = format!("{raw:?}");
    for s in ["RAWMQTTPASS", "RAWTSDBPASS", "RAWTSDBTOKEN"] {
        assert!(!d.contains(s), "{s} in {d}");
    }
}

#[test]
fn typed_values_that_do_not_parse_are_all_reported_with_their_key() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "[decode]\nclock_action = \"sometimes\"\n[tsdb]\nkind = \"graphite\"\n[http]\nlisten = \"everywhere\"\n[jt808]\nlisten = \"port 6808\"\n[[notify.webhooks]]\nname = \"ops\"\nurl = \"https://example.invalid/hook\"\nformat = \"slack\""
    )
    .unwrap();
    let err = load(Some(f.path()), &[]).unwrap_err();
    let text = err.to_string();
    for want in [
        "decode.clock_action \"sometimes\": unknown variant `sometimes`, expected `restamp` or `reject`",
        "tsdb.kind \"graphite\": unknown variant `graphite`, expected one of `influxdb_v1`, `influxdb_v2`, `file`, `none`",
        "http.listen \"everywhere\": ",
        "jt808.listen \"port 6808\": ",
        "notify.webhooks[0].format \"slack\": unknown variant",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 5, "{text}");
}

#[test]
fn an_empty_value_switches_an_optional_setting_off() {
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__HTTP__LISTEN", ""),
            ("WASTEWATCH__NOTIFY__ALERTMANAGER_URL", ""),
            ("WASTEWATCH__MQTT__CA_FILE", ""),
        ]),
    )
    .unwrap();
    assert_eq!(s.http_listen, None);
    assert_eq!(s.alerting.alertmanager, None);
    assert_eq!(s.mqtt.tls, None);
    // And a set one is typed.
    let s = load(
        None,
        &env(&[
            ("WASTEWATCH__HTTP__LISTEN", "127.0.0.1:19464"),
            (
                "WASTEWATCH__NOTIFY__ALERTMANAGER_URL",
                "http://127.0.0.1:9093",
            ),
            ("WASTEWATCH__TSDB__KIND", "file"),
            ("WASTEWATCH__TSDB__FILE_PATH", "/tmp/points.lp"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http_listen, Some(([127, 0, 0, 1], 19464).into()));
    assert_eq!(
        s.alerting.alertmanager.as_ref().map(url::Url::as_str),
        Some("http://127.0.0.1:9093/")
    );
    assert!(
        matches!(&s.tsdb.target, TsdbTarget::File { path } if path == std::path::Path::new("/tmp/points.lp"))
    );
}

#[test]
fn a_file_target_without_a_path_is_an_error() {
    let err = load(
        None,
        &env(&[
            ("WASTEWATCH__TSDB__KIND", "file"),
            ("WASTEWATCH__TSDB__FILE_PATH", ""),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tsdb.file_path is empty"), "{err}");
}

/// Found by the `config` fuzz target: a Sparkplug group or host id with a
/// NUL was accepted, and became a topic filter no broker takes.
#[test]
fn a_sparkplug_id_with_nul_is_refused_with_its_key() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(
        b"[sparkplug]\nenabled = true\nhost_id = \"ww\\u0000x\"\ngroups = [\"plant\\u0000a\"]\n",
    )
    .unwrap();
    let errs = load(Some(f.path()), &[]).unwrap_err();
    assert!(
        errs.0
            .iter()
            .any(|e| e.starts_with("sparkplug.host_id") && e.contains("NUL")),
        "{errs:?}"
    );
    assert!(
        errs.0
            .iter()
            .any(|e| e.starts_with("sparkplug.groups") && e.contains("NUL")),
        "{errs:?}"
    );
}
