//! Loading: `LoadOptions` (what `load` needs from the outside world), the layers (defaults ←
//! config/calibrated.toml ← `--config` ← `MM__*` environment ← `--set` flags), merging
//! them with the layer that set each key remembered, and stage one (each layer checked on
//! its own against the schema).
//!
//! Never prints or panics on bad input: every problem is a `ConfigError` naming the layer.
//! Runs at start-up only.

use super::*;

/// What `load` needs from the outside world, gathered by `main` so that tests can pass their
/// own.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Folder that holds `config/` (the working directory in normal use).
    pub root: PathBuf,
    /// `--config=PATH`, if given.
    pub config_path: Option<PathBuf>,
    /// Environment variables (only those starting with `MM__` are used).
    pub env: Vec<(String, String)>,
    /// Names (lossy) of `MM__` variables whose name or value is not UTF-8: `load` refuses
    /// them by name. Other non-UTF-8 variables are none of mm's business and are ignored.
    pub env_not_utf8: Vec<String>,
    /// `--symbol`, if given.
    pub symbol: Option<String>,
    /// `--log-level`, if given.
    pub log_level: Option<String>,
    /// `--endpoint`, if given: the WebSocket base URL; the REST URL is derived from it.
    pub endpoint: Option<String>,
    /// `--ca`, if given.
    pub ca_file: Option<String>,
    /// `--set key=value` flags, in order (each one a layer named after the flag).
    pub sets: Vec<String>,
}

impl LoadOptions {
    /// Options for a normal run: the working directory and this process's environment.
    pub fn from_process(config_path: Option<PathBuf>) -> LoadOptions {
        LoadOptions {
            root: PathBuf::from("."),
            config_path,
            env: Vec::new(),
            env_not_utf8: Vec::new(),
            symbol: None,
            log_level: None,
            endpoint: None,
            ca_file: None,
            sets: Vec::new(),
        }
        .with_env(std::env::vars_os())
    }

    /// Keeps the `MM__` variables of `vars` (`std::env::vars_os()` in normal use): as text
    /// in `env`, or by name in `env_not_utf8` when not UTF-8. Never panics on any bytes.
    pub fn with_env(
        mut self,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> LoadOptions {
        for (name, value) in vars {
            if !name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
                continue;
            }
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => self.env.push((name, value)),
                (Ok(name), Err(_)) => self.env_not_utf8.push(name),
                (Err(name), _) => self.env_not_utf8.push(name.to_string_lossy().into_owned()),
            }
        }
        self
    }
}

/// The cores this process may run on (its affinity mask; empty if unknown).
pub fn online_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect()
}

/// `core` is one of [`online_cores`].
pub fn core_is_online(core: usize) -> bool {
    online_cores().contains(&core)
}

/// Reads, merges and validates every layer.
pub fn load(options: &LoadOptions) -> Result<Config, ConfigError> {
    let base = BaseLayers::read(options)?;
    let config = match &options.config_path {
        None => None,
        Some(path) => Some(config_file_layer(path)?),
    };
    load_layers(options, &base, config)
}

/// The `--config` file's layer.
fn config_file_layer(path: &Path) -> Result<Layer, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError {
            source: format!("--config={}", path.display()),
            key: String::new(),
            problem: "the file does not exist".to_string(),
            fix: "give the path of a TOML file (see config/default.toml for the keys)".to_string(),
        });
    }
    Layer::from_file(path)
}

/// [`load`] with the `--config` layer given as its bytes (`name` stands for the file in
/// errors) instead of read from `options.config_path`, which is ignored, and the layers
/// under it (`base`, from [`BaseLayers::read`] with the same options) read once by the
/// caller: the same parsing, merging and validation as `load` — only the file reads differ.
/// For the config fuzz harness (tests/fuzz.rs), which runs millions of inputs without a
/// file each.
pub fn load_with_config_bytes(
    options: &LoadOptions,
    base: &BaseLayers,
    name: &str,
    bytes: &[u8],
) -> Result<Config, ConfigError> {
    let config = Layer::from_bytes(name.to_string(), bytes)?;
    load_layers(options, base, Some(config))
}

/// The layers under `--config`: the defaults (the file, or the built-in copy) and
/// config/calibrated.toml when present, each read and checked on its own.
pub struct BaseLayers(Vec<Layer>);

impl BaseLayers {
    /// Reads them from `options.root`.
    pub fn read(options: &LoadOptions) -> Result<BaseLayers, ConfigError> {
        base_layers(options).map(BaseLayers)
    }
}

fn base_layers(options: &LoadOptions) -> Result<Vec<Layer>, ConfigError> {
    let mut layers: Vec<Layer> = Vec::new();

    let default_path = options.root.join(DEFAULT_PATH);
    if default_path.is_file() {
        layers.push(Layer::from_file(&default_path)?);
    } else {
        layers.push(Layer::from_text(
            "built-in defaults (config/default.toml not found)".to_string(),
            DEFAULT_TOML,
        )?);
    }
    let calibrated_path = options.root.join(CALIBRATED_PATH);
    if calibrated_path.is_file() {
        layers.push(Layer::from_file(&calibrated_path)?);
    }
    Ok(layers)
}

/// `base`, the `--config` layer and the layers over it (environment, flags), then the
/// merge and both stages.
fn load_layers(
    options: &LoadOptions,
    base: &BaseLayers,
    config: Option<Layer>,
) -> Result<Config, ConfigError> {
    let mut layers: Vec<Layer> = config.into_iter().collect();
    if let Some(name) = options.env_not_utf8.first() {
        return Err(ConfigError {
            source: format!("environment variable {name}"),
            key: String::new(),
            problem: "its name or value is not UTF-8 text".to_string(),
            fix: format!("set it to UTF-8 text, or unset it (unset '{name}')"),
        });
    }
    let mut env: Vec<&(String, String)> = options
        .env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    for (name, value) in env {
        layers.push(Layer::from_env(name, value)?);
    }
    if let Some(symbol) = &options.symbol {
        layers.push(Layer::single(
            "flag --symbol",
            &["market", "symbol"],
            toml::Value::String(symbol.clone()),
        )?);
    }
    if let Some(level) = &options.log_level {
        layers.push(Layer::single(
            "flag --log-level",
            &["log", "level"],
            toml::Value::String(level.clone()),
        )?);
    }

    if let Some(endpoint) = &options.endpoint {
        let rest = rest_url_for(endpoint).ok_or_else(|| ConfigError {
            source: "flag --endpoint".to_string(),
            key: "market_data.ws_url".to_string(),
            problem: format!("{endpoint:?} is not a ws:// or wss:// URL"),
            fix: "give the WebSocket base URL, e.g. --endpoint=wss://127.0.0.1:9443".to_string(),
        })?;
        layers.push(Layer::single(
            "flag --endpoint",
            &["market_data", "ws_url"],
            toml::Value::String(endpoint.trim_end_matches('/').to_string()),
        )?);
        layers.push(Layer::single(
            "flag --endpoint",
            &["market_data", "rest_url"],
            toml::Value::String(rest),
        )?);
        layers.push(Layer::single(
            "flag --endpoint",
            &["live", "ws_api_url"],
            toml::Value::String(format!("{}/ws-api/v3", endpoint.trim_end_matches('/'))),
        )?);
    }
    if let Some(ca) = &options.ca_file {
        layers.push(Layer::single(
            "flag --ca",
            &["market_data", "ca_file"],
            toml::Value::String(ca.clone()),
        )?);
    }

    for set in &options.sets {
        layers.push(Layer::from_set(set)?);
    }

    let mut merged = toml::Table::new();
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for layer in base.0.iter().chain(&layers) {
        merge_into(&mut merged, &layer.table, "", &layer.name, &mut origins);
    }
    let raw = check_schema("the merged configuration", merged)?;
    let mut names: Vec<String> = base
        .0
        .iter()
        .chain(&layers)
        .map(|l| l.name.clone())
        .collect();
    names.dedup();
    validate(raw, &origins, names)
}

/// One source of settings and its parsed table.
struct Layer {
    name: String,
    table: toml::Table,
}

impl Layer {
    fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            source: name.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
            fix: "check the path and its permissions".to_string(),
        })?;
        Layer::from_bytes(name, &bytes)
    }

    /// A file's bytes: UTF-8 TOML.
    fn from_bytes(name: String, bytes: &[u8]) -> Result<Layer, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError {
            source: name.clone(),
            key: String::new(),
            problem: format!(
                "not UTF-8 text (byte {} is not part of a UTF-8 character)",
                e.valid_up_to()
            ),
            fix: "save the file as UTF-8".to_string(),
        })?;
        Layer::from_text(name, text)
    }

    fn from_text(name: String, text: &str) -> Result<Layer, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            source: name.clone(),
            key: String::new(),
            problem: format!("not valid TOML: {}", one_line(&e.to_string())),
            fix: "correct the syntax at the line shown (strings need quotes, one key per line)"
                .to_string(),
        })?;
        check_schema(&name, table.clone())?;
        Ok(Layer { name, table })
    }

    fn from_env(name: &str, value: &str) -> Result<Layer, ConfigError> {
        let rest = &name[ENV_PREFIX.len()..];
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.len() != 2 || path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError {
                source: format!("environment variable {name}"),
                key: path.join("."),
                problem: "expected the form MM__<SECTION>__<KEY>".to_string(),
                fix: "e.g. MM__MODEL__GAMMA_PER_BPS=0.2, or unset the variable".to_string(),
            });
        }
        // A value is read as a TOML value when it is one (numbers, booleans, quoted
        // strings), otherwise taken as a plain string (MM__MARKET__SYMBOL=ETHUSDT).
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        Layer::single(&format!("environment variable {name}"), &keys, parsed)
    }

    /// A `--set section.key=value` flag: the value is read like an environment override.
    fn from_set(text: &str) -> Result<Layer, ConfigError> {
        let source = format!("flag --set {text}");
        let bad = |problem: &str| ConfigError {
            source: source.clone(),
            key: String::new(),
            problem: problem.to_string(),
            fix: "write --set section.key=value, e.g. --set model.gamma_per_bps=0.2 (keys as \
                  in config/default.toml)"
                .to_string(),
        };
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let keys: Vec<&str> = key.trim().split('.').collect();
        if keys.len() != 2 || keys.iter().any(|k| k.is_empty()) {
            return Err(bad("the key must be section.key"));
        }
        let value = value.trim();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Layer::single(&source, &keys, parsed)
    }

    fn single(source: &str, keys: &[&str], value: toml::Value) -> Result<Layer, ConfigError> {
        let mut leaf = toml::Table::new();
        let (last, sections) = match keys.split_last() {
            Some(split) => split,
            None => {
                return Err(ConfigError {
                    source: source.to_string(),
                    key: String::new(),
                    problem: "empty key".to_string(),
                    fix: "name a key".to_string(),
                })
            }
        };
        leaf.insert((*last).to_string(), value);
        let mut table = leaf;
        for section in sections.iter().rev() {
            let mut outer = toml::Table::new();
            outer.insert((*section).to_string(), toml::Value::Table(table));
            table = outer;
        }
        check_schema(source, table.clone())?;
        Ok(Layer {
            name: source.to_string(),
            table,
        })
    }
}

/// Deep-merges `overlay` into `base`, remembering which layer set each leaf.
fn merge_into(
    base: &mut toml::Table,
    overlay: &toml::Table,
    prefix: &str,
    layer: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in overlay {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => {
                merge_into(inner, over, &path, layer, origins);
            }
            _ => {
                if let toml::Value::Table(over) = value {
                    let mut fresh = toml::Table::new();
                    merge_into(&mut fresh, over, &path, layer, origins);
                    base.insert(key.clone(), toml::Value::Table(fresh));
                } else {
                    origins.insert(path, layer.to_string());
                    base.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// Stage one: keys and types, for one layer or the merge.
fn check_schema(source: &str, table: toml::Table) -> Result<RawConfig, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, RawConfig>(value).map_err(|e| {
        let key = e.path().to_string();
        let inner = one_line(&e.inner().to_string());
        let fix = if inner.contains("unknown field") {
            "remove or rename the key; the valid keys are listed in config/default.toml".to_string()
        } else if inner.contains("invalid type") {
            "give the type shown in config/default.toml (numbers unquoted, decimal amounts \
             and names in quotes)"
                .to_string()
        } else {
            "see config/default.toml for the expected form".to_string()
        };
        ConfigError {
            source: source.to_string(),
            key: if key == "." { String::new() } else { key },
            problem: inner,
            fix,
        }
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
