//! `wastewatch check-config` prints every config and registry error at once
//! and exits non-zero; a good config passes.

use std::process::Command;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wastewatch"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_example_config_with_the_shipped_zone_passes() {
    let (code, text) = run(
        &["check-config", "--config", "config/wastewatch.example.toml"],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("config OK"));
}

#[test]
fn every_error_is_listed_at_once() {
    let (code, text) = run(
        &["check-config", "--config", "config/wastewatch.example.toml"],
        &[
            ("WASTEWATCH__MQTT__PORT", "0"),
            ("WASTEWATCH__TSDB__KIND", "mongodb"),
            ("WASTEWATCH__LOG__COMMIT_MAX_RECORDS", "0"),
        ],
    );
    assert_eq!(code, 2, "{text}");
    for want in [
        "3 error(s)",
        "mqtt.port is 0",
        "\"mongodb\"",
        "log.commit_max_records is 0",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
}

#[test]
fn a_broken_registry_is_reported_with_file_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["sites.json", "permits.json"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("zone")
                .join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("devices.json"), r#"[{"id":"bin-x","kind":"bin","site_id":"no-such-site","expected_interval_s":60,"bin":{"medical":false,"volume_l":240}}]"#).unwrap();
    let d = dir.path().display().to_string();
    let (code, text) = run(
        &["check-config"],
        &[("WASTEWATCH__DECODE__REGISTRY_DIR", &d)],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("devices.json") && text.contains("bin-x") && text.contains("no-such-site"),
        "{text}"
    );
}
