//! Configuration: built-in defaults, then a TOML file, then environment
//! variables `WASTEWATCH__SECTION__KEY` (double underscore between levels, so
//! keys that contain `_` stay intact). Raw serde structs with
//! `deny_unknown_fields` are converted into validated [`Settings`]; every
//! error is collected, so `wastewatch check-config` reports them all at once.

mod raw;
mod settings;
pub mod typed;

pub use raw::{RawConfig, TsdbKind};
pub use settings::*;

use std::path::Path;

/// Environment prefix.
pub const ENV_PREFIX: &str = "WASTEWATCH";

/// All problems found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// Loads the raw layers: defaults, optional TOML file, environment.
pub fn load_raw(file: Option<&Path>, env: &[(String, String)]) -> Result<RawConfig, ConfigErrors> {
    let mut b = config::Config::builder();
    if let Some(f) = file {
        if !f.exists() {
            return Err(ConfigErrors(vec![format!(
                "config file {} does not exist; pass an existing file with --config or omit it to use defaults",
                f.display()
            )]));
        }
        b = b.add_source(
            config::File::from(f)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    // Environment given explicitly (not read from the process) so tests are
    // hermetic; main passes std::env::vars().
    let env_map: std::collections::HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .cloned()
        .collect();
    b = b.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("mqtt.subscribe")
            .source(Some(env_map)),
    );
    let c = b.build().map_err(|e| ConfigErrors(vec![e.to_string()]))?;
    c.try_deserialize::<RawConfig>()
        .map_err(|e| ConfigErrors(vec![e.to_string()]))
}

/// Environment variable holding API tokens (`name:token`, comma- or
/// newline-separated): a secret, so not a `WASTEWATCH__` config key that
/// could also be written into the config file.
pub const HTTP_TOKENS_ENV: &str = "WASTEWATCH_HTTP_TOKENS";

/// Loads and validates.
pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
    let mut raw = load_raw(file, env)?;
    raw.http.tokens_env = env
        .iter()
        .find(|(k, _)| k == HTTP_TOKENS_ENV)
        .map(|(_, v)| crate::secret::Secret::new(v.clone()));
    raw.validate()
}

#[cfg(test)]
mod tests;
