//! The dashboards are valid Grafana dashboards: dashboards/schema/check.mjs
//! type-checks every file against Grafana's published dashboard and panel
//! types (@grafana/schema, pinned in dashboards/schema/package-lock.json,
//! installed into target/ by dashboards/schema/install.sh, which
//! scripts/test.sh runs), and the JSON is exactly what the generator
//! dashboards/src/build.mjs makes. Node.js and the installed packages are
//! required: without them these tests fail, they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node(args: &[&str]) -> Output {
    Command::new("node")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("node (Node.js) is needed for the dashboard checks: scripts/test.sh installs what they need (dashboards/schema/install.sh)")
}

fn check(dir: &Path) -> Output {
    node(&["dashboards/schema/check.mjs", dir.to_str().unwrap()])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_dashboard_matches_grafanas_published_dashboard_schema() {
    let out = check(&repo().join("dashboards"));
    assert!(
        out.status.success(),
        "dashboards/schema/check.mjs failed (exit {:?}):\n{}",
        out.status.code(),
        text(&out)
    );
    let said = text(&out);
    assert!(said.contains("8 dashboards match"), "{said}");
}

/// A change that makes a dashboard invalid.
type Mutation = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn the_schema_check_rejects_unknown_properties_missing_options_and_bad_enum_values() {
    let src: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/zone-overview.json")).unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "layer style with a misspelt key",
            Box::new(|d| {
                d["panels"][0]["options"]["layers"][3]["config"]["style"]["colour"] =
                    serde_json::json!({"fixed": "red"})
            }),
            "colour",
        ),
        (
            "tooltip mode outside its enum",
            Box::new(|d| d["panels"][0]["options"]["tooltip"]["mode"] = "everything".into()),
            "everything",
        ),
        (
            "table without its required frameIndex",
            Box::new(|d| {
                d["panels"][1]["options"]
                    .as_object_mut()
                    .unwrap()
                    .remove("frameIndex");
            }),
            "frameIndex",
        ),
        (
            "variable with a property Grafana does not have",
            Box::new(|d| d["templating"]["list"][0]["definition"] = "x".into()),
            "definition",
        ),
        (
            "query target in an unknown result format",
            Box::new(|d| d["panels"][1]["targets"][0]["resultFormat"] = "csv".into()),
            "csv",
        ),
    ];
    for (what, mutate, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut d = src.clone();
        mutate(&mut d);
        std::fs::write(dir.path().join("zone.json"), d.to_string()).unwrap();
        let out = check(dir.path());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: the check must fail:\n{}",
            text(&out)
        );
        assert!(text(&out).contains(needle), "{what}: {}", text(&out));
    }
}

#[test]
fn the_dashboard_json_is_what_the_generator_makes() {
    let out = node(&["dashboards/src/build.mjs", "--check"]);
    assert!(
        out.status.success(),
        "dashboards/*.json differ from dashboards/src/build.mjs: edit the generator and run `node dashboards/src/build.mjs`\n{}",
        text(&out)
    );
}

#[test]
fn the_provisioning_files_load_the_dashboards_and_one_datasource_per_influxdb_version() {
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
    let provider = read("dashboards/provisioning/dashboards/wastewatch.yaml");
    assert!(
        provider.contains("type: file") && provider.contains("path:"),
        "{provider}"
    );
    let v1 = read("dashboards/provisioning/datasources/wastewatch.yaml");
    assert!(
        v1.contains("type: influxdb") && v1.contains("dbName: wastewatch"),
        "{v1}"
    );
    let v2 = read("dashboards/provisioning/influxdb2/datasource.yaml");
    for want in [
        "type: influxdb",
        "version: InfluxQL",
        "dbName: wastewatch",
        "httpHeaderName1: Authorization",
        "httpHeaderValue1: Token ",
    ] {
        assert!(v2.contains(want), "the 2.x datasource has {want}:\n{v2}");
    }
    let dbrp = read("dashboards/provisioning/influxdb2/create-dbrp.sh");
    assert!(dbrp.contains("/api/v2/dbrps"), "{dbrp}");
}
