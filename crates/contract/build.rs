//! Compiles `proto/` into Rust with `protox` (a pure-Rust protobuf compiler),
//! so a build needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The schema lives at the top of the repository (`proto/`), shared by
    // everything that speaks the contract.
    let dir = PathBuf::from("../../proto");
    let files = [
        "wastewatch/v1/common.proto",
        "wastewatch/v1/envelope.proto",
        "wastewatch/v1/weighbridge.proto",
        "wastewatch/v1/bin.proto",
        "wastewatch/v1/storage.proto",
        "wastewatch/v1/truck.proto",
        "wastewatch/v1/status.proto",
        "wastewatch/v1/internal.proto",
        // Eclipse Sparkplug B payloads (the Sparkplug host and edge nodes).
        "sparkplug_b/sparkplug_b.proto",
    ];
    println!("cargo:rerun-if-changed=../../proto");
    let fds = protox::compile(files, [&dir])?;
    let mut config = prost_build::Config::new();
    // These bodies have no enum fields, so the JSON variant (src/json.rs)
    // uses the generated structs directly: one definition, no drift.
    for msg in ["BinReading", "StorageReading", "MedicalLot", "TruckFix"] {
        config.type_attribute(
            format!(".wastewatch.v1.{msg}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(deny_unknown_fields, default)]",
        );
    }
    // A log record is either a reading (envelope) or an alert or a KPI
    // value; boxed, the two rare ones do not make every reading's record
    // (kept in memory by the log's decoded tail) three times its size.
    config.boxed(".wastewatch.v1.LogRecord.alert");
    config.boxed(".wastewatch.v1.LogRecord.kpi");
    config.compile_fds(fds)?;
    Ok(())
}
