//! Stage two: the merged raw values → a `Config` — required keys, ranges, cross-field rules
//! (each error names the key and the layer that set it), and the value parsers
//! (`parse_duration_ns`, `parse_latency`, `rest_url_for`).
//!
//! Never prints or panics on bad input; never reads files or the environment.

use super::*;

/// Longest `engine.warm_every_us` accepted: a second (a longer quiet spell leaves the
/// caches cold anyway).
const WARM_EVERY_US_MAX: u64 = 1_000_000;
/// Shortest `live.order_connection_max_age_s` accepted (tests rotate within a session).
pub const ORDER_CONNECTION_MAX_AGE_MIN_S: f64 = 10.0;
/// Longest: Binance closes a WebSocket API connection at 24 h.
pub const ORDER_CONNECTION_MAX_AGE_MAX_S: f64 = 86_400.0;

/// Stage two: required keys present, ranges, cross-field rules.
pub(super) fn validate(
    raw: RawConfig,
    origins: &BTreeMap<String, String>,
    layers: Vec<String>,
) -> Result<Config, ConfigError> {
    let v = Validator { origins };
    let market = raw.market.unwrap_or_default();
    let model_raw = raw.model.unwrap_or_default();
    let quoting = raw.quoting.unwrap_or_default();
    let ofi = raw.ofi.unwrap_or_default();
    let log = raw.log.unwrap_or_default();
    let mut warnings = Vec::new();

    let symbol_text = v.required("market.symbol", market.symbol)?;
    let symbol = Symbol::new(&symbol_text).map_err(|e| {
        v.error(
            "market.symbol",
            e.to_string(),
            "use a Binance symbol such as BTCUSDT",
        )
    })?;
    let tick = v.required("market.tick_size", market.tick_size)?.0;
    let step = v.required("market.step_size", market.step_size)?.0;
    let min_notional = v.required("market.min_notional", market.min_notional)?.0;
    let spec = SymbolSpec::from_decimals(symbol, &tick, &step, &min_notional).map_err(|e| {
        let key = match e {
            crate::types::SpecError::TickSize(_) | crate::types::SpecError::Zero => {
                "market.tick_size"
            }
            crate::types::SpecError::StepSize(_) => "market.step_size",
            crate::types::SpecError::MinNotional(_) => "market.min_notional",
        };
        v.error(
            key,
            e.to_string(),
            "write the exchangeInfo value as a positive decimal string, e.g. \"0.01\"",
        )
    })?;

    let gamma = v.required("model.gamma_per_bps", model_raw.gamma_per_bps)?;
    v.positive("model.gamma_per_bps", gamma, "e.g. gamma_per_bps = 0.1")?;
    let sigma_source = match v
        .required("model.sigma_source", model_raw.sigma_source)?
        .as_str()
    {
        "fixed" => SigmaSource::Fixed,
        "estimated" => SigmaSource::Estimated,
        other => {
            return Err(v.error(
                "model.sigma_source",
                format!("unknown source {other:?}"),
                "use \"fixed\" or \"estimated\"",
            ))
        }
    };
    let kind_text = v.required("model.kind", model_raw.kind)?;
    let kind = model::ModelKind::parse(&kind_text).ok_or_else(|| {
        v.error(
            "model.kind",
            format!("unknown model {kind_text:?}"),
            "use \"avellaneda-stoikov\" (finite rolling horizon) or \"glft\" (Guéant–Lehalle–\
             Fernandez-Tapia, infinite horizon)",
        )
    })?;
    let intensity_a = v.required("model.intensity_a_per_s", model_raw.intensity_a_per_s)?;
    v.positive(
        "model.intensity_a_per_s",
        intensity_a,
        "e.g. intensity_a_per_s = 1.0 (calibration measures it)",
    )?;
    let sigma = v.required("model.sigma_bps_per_sqrt_s", model_raw.sigma_bps_per_sqrt_s)?;
    if !sigma.is_finite() || sigma < 0.0 {
        return Err(v.error(
            "model.sigma_bps_per_sqrt_s",
            format!("{sigma} is not a volatility"),
            "give a finite number ≥ 0, in bps per √s (BTCUSDT ≈ 1.25)",
        ));
    }
    let k = v.required("model.k_per_bps", model_raw.k_per_bps)?;
    v.positive("model.k_per_bps", k, "e.g. k_per_bps = 1.5")?;
    let horizon = v.required("model.horizon_s", model_raw.horizon_s)?;
    v.positive("model.horizon_s", horizon, "e.g. horizon_s = 120")?;
    if horizon > HORIZON_S_MAX {
        return Err(v.error(
            "model.horizon_s",
            format!(
                "{horizon} s is longer than {HORIZON_S_MAX} s; a horizon of days was the \
                 \"spread 0.0 bps\" bug (the inventory term explodes and the spread pins at a clamp)"
            ),
            "use a rolling horizon of seconds to minutes (default 120)",
        ));
    }
    if horizon > 600.0 {
        warnings.push(format!(
            "model.horizon_s = {horizon} s is long for a rolling horizon; the inventory skew \
             grows with it (default 120 s)"
        ));
    }

    let spread_min = v.required("quoting.spread_min_bps", quoting.spread_min_bps)?;
    v.positive(
        "quoting.spread_min_bps",
        spread_min,
        "e.g. spread_min_bps = 5",
    )?;
    let spread_max = v.required("quoting.spread_max_bps", quoting.spread_max_bps)?;
    v.positive(
        "quoting.spread_max_bps",
        spread_max,
        "e.g. spread_max_bps = 200",
    )?;
    if spread_min > spread_max {
        return Err(v.error(
            "quoting.spread_min_bps",
            format!("spread_min_bps ({spread_min}) is larger than spread_max_bps ({spread_max})"),
            "make spread_min_bps ≤ spread_max_bps",
        ));
    }
    if spread_max > 10_000.0 {
        return Err(v.error(
            "quoting.spread_max_bps",
            format!("{spread_max} bps is more than 100 % of mid"),
            "use at most 10000 bps",
        ));
    }
    let quote_size = v.size("quoting.quote_size", quoting.quote_size, &spec)?;
    let inventory_max = v.size("quoting.inventory_max", quoting.inventory_max, &spec)?;
    if quote_size > inventory_max {
        return Err(v.error(
            "quoting.quote_size",
            "the quote size is larger than the inventory limit".to_string(),
            "make quote_size ≤ inventory_max",
        ));
    }

    let beta = v.required("ofi.beta", ofi.beta)?;
    if !beta.is_finite() || beta < 0.0 {
        return Err(v.error(
            "ofi.beta",
            format!("{beta} is not a valid coefficient"),
            "give a finite number ≥ 0 (0 turns the tilt off; default 0.3)",
        ));
    }
    let tilt_text = v.required("ofi.tilt", ofi.tilt)?;
    let tilt = model::OfiTilt::parse(&tilt_text).ok_or_else(|| {
        v.error(
            "ofi.tilt",
            format!("unknown tilt {tilt_text:?}"),
            "use \"ticks\" (the seed's ±1 tick) or \"sigma\" (β·OFI·σ bps)",
        )
    })?;
    if tilt == model::OfiTilt::Sigma && beta > model::OFI_SIGMA_BETA_MAX {
        return Err(v.error(
            "ofi.beta",
            format!(
                "{beta} is above {} with tilt = \"sigma\"",
                model::OFI_SIGMA_BETA_MAX
            ),
            "the sigma tilt moves the centre by β·OFI·σ bps: use β ≤ 10",
        ));
    }
    let requote_band = v.fraction(
        "quoting.requote_band",
        quoting.requote_band,
        "give a number in [0, 1], e.g. requote_band = 0.25 (0 = no band)",
    )?;
    let microprice_weight = v.fraction(
        "quoting.microprice_weight",
        quoting.microprice_weight,
        "give a number in [0, 1]: 0 = centre on the mid (default), 1 = on the micro-price",
    )?;
    let window = v.required("ofi.window_s", ofi.window_s)?;
    v.positive("ofi.window_s", window, "e.g. window_s = 1.0")?;
    if window > 60.0 {
        return Err(v.error(
            "ofi.window_s",
            format!("{window} s is longer than 60 s"),
            "OFI is a short-term signal: use a window of 0.1 to 60 s (default 1.0)",
        ));
    }

    let sigma_sample_s = v.required("model.sigma_sample_s", model_raw.sigma_sample_s)?;
    v.seconds(
        "model.sigma_sample_s",
        sigma_sample_s,
        "e.g. sigma_sample_s = 1.0",
    )?;
    let sigma_half_life_s = v.required("model.sigma_half_life_s", model_raw.sigma_half_life_s)?;
    v.seconds(
        "model.sigma_half_life_s",
        sigma_half_life_s,
        "e.g. sigma_half_life_s = 300",
    )?;
    let warmup = v.required("model.sigma_warmup_samples", model_raw.sigma_warmup_samples)?;
    let sigma_warmup_samples = u32::try_from(warmup).map_err(|_| {
        v.error(
            "model.sigma_warmup_samples",
            format!("{warmup} is not a sample count"),
            "give a whole number ≥ 0, e.g. 30",
        )
    })?;

    let md = raw.market_data.unwrap_or_default();
    let ws_url = v.required("market_data.ws_url", md.ws_url)?;
    if rest_url_for(&ws_url).is_none() {
        return Err(v.error(
            "market_data.ws_url",
            format!("{ws_url:?} is not a ws:// or wss:// URL"),
            "e.g. ws_url = \"wss://stream.binance.com:9443\"",
        ));
    }
    let rest_url = v.required("market_data.rest_url", md.rest_url)?;
    if !(rest_url.starts_with("https://") || rest_url.starts_with("http://")) {
        return Err(v.error(
            "market_data.rest_url",
            format!("{rest_url:?} is not an http(s):// URL"),
            "e.g. rest_url = \"https://api.binance.com\"",
        ));
    }
    let ca_text = v.required("market_data.ca_file", md.ca_file)?;
    let ca_file = if ca_text.trim().is_empty() {
        None
    } else {
        let path = PathBuf::from(ca_text.trim());
        if !path.is_file() {
            return Err(v.error(
                "market_data.ca_file",
                format!("{} does not exist", path.display()),
                "give the PEM certificate the local exchange printed at start, or leave it empty",
            ));
        }
        Some(path)
    };
    let stale_after_s = v.required("market_data.stale_after_s", md.stale_after_s)?;
    v.seconds(
        "market_data.stale_after_s",
        stale_after_s,
        "e.g. stale_after_s = 30",
    )?;
    let book_levels = v.required("market_data.book_levels", md.book_levels)?;
    if !(10..=100_000).contains(&book_levels) {
        return Err(v.error(
            "market_data.book_levels",
            format!("{book_levels} levels per side"),
            "use 10 to 100000 (default 1000)",
        ));
    }
    let snapshot_limit = v.required("market_data.snapshot_limit", md.snapshot_limit)?;
    if !(1..=5000).contains(&snapshot_limit) {
        return Err(v.error(
            "market_data.snapshot_limit",
            format!("{snapshot_limit} levels"),
            "Binance serves 1 to 5000 levels (default 1000)",
        ));
    }
    let engine_raw = raw.engine.unwrap_or_default();
    let core = v.required("engine.cpu_core", engine_raw.cpu_core)?;
    let cpu_core = match core {
        -1 => None,
        c if c >= 0 && core_is_online(c as usize) => Some(c as usize),
        c if c >= 0 => {
            let ids: Vec<String> = online_cores().iter().map(|c| c.to_string()).collect();
            return Err(v.error(
                "engine.cpu_core",
                format!("core {c} is not one this process may run on"),
                &format!(
                    "give one of the online cores ({}), or -1 not to pin",
                    ids.join(", ")
                ),
            ));
        }
        c => {
            return Err(v.error(
                "engine.cpu_core",
                format!("{c} is not a core"),
                "give a core number ≥ 0, or -1 not to pin",
            ))
        }
    };

    let warm = v.required("engine.warm_every_us", engine_raw.warm_every_us)?;
    let warm_every_us = match u64::try_from(warm) {
        Ok(us) if us <= WARM_EVERY_US_MAX => us,
        _ => {
            return Err(v.error(
                "engine.warm_every_us",
                format!("{warm} µs is outside 0..={WARM_EVERY_US_MAX}"),
                "give how long the market may be quiet before the hot path is warmed, in \
                 µs (e.g. warm_every_us = 20), or 0 never to warm it",
            ))
        }
    };

    let dir = v.required("log.dir", log.dir)?;
    if dir.trim().is_empty() {
        return Err(v.error(
            "log.dir",
            "empty folder name".to_string(),
            "e.g. dir = \"logs\"",
        ));
    }
    let level_text = v.required("log.level", log.level)?;
    let level = LogLevel::parse(&level_text).ok_or_else(|| {
        v.error(
            "log.level",
            format!("unknown level {level_text:?}"),
            "use error, warn, info, debug or trace",
        )
    })?;

    let orders = validate_orders(&v, raw.orders.unwrap_or_default())?;
    let risk = validate_risk(&v, raw.risk.unwrap_or_default(), inventory_max)?;
    let venue = validate_venue(&v, raw.venue.unwrap_or_default(), &spec)?;
    let kpi = validate_kpi(&v, raw.kpi.unwrap_or_default())?;
    let metrics = validate_metrics(&v, raw.metrics.unwrap_or_default())?;
    let live = validate_live(&v, raw.live.unwrap_or_default())?;
    let calibration = validate_calibration(&v, raw.calibration.unwrap_or_default())?;

    let config = Config {
        spec,
        model: ModelConfig {
            gamma_per_bps: gamma,
            sigma_source,
            sigma_bps_per_sqrt_s: sigma,
            k_per_bps: k,
            horizon_s: horizon,
            sigma_sample_s,
            sigma_half_life_s,
            sigma_warmup_samples,
            kind,
            intensity_a_per_s: intensity_a,
        },
        quoting: QuotingConfig {
            spread_min_bps: spread_min,
            spread_max_bps: spread_max,
            quote_size_lots: quote_size,
            inventory_max_lots: inventory_max,
            requote_band,
            microprice_weight,
        },
        ofi: OfiConfig {
            beta,
            tilt,
            window_s: window,
        },
        market_data: MarketDataConfig {
            ws_url: ws_url.trim_end_matches('/').to_string(),
            rest_url: rest_url.trim_end_matches('/').to_string(),
            ca_file,
            stale_after_s,
            book_levels: book_levels as usize,
            snapshot_limit: snapshot_limit as u32,
        },
        engine: EngineConfig {
            cpu_core,
            warm_every_us,
        },
        log: LogConfig {
            dir: PathBuf::from(dir),
            level,
        },
        orders,
        risk,
        venue,
        kpi,
        metrics,
        live,
        calibration,
        layers,
        warnings,
    };
    config.model_params().validate().map_err(|e| ConfigError {
        source: "the merged configuration".to_string(),
        key: String::new(),
        problem: e.to_string(),
        fix: "see config/default.toml for sensible values".to_string(),
    })?;
    Ok(config)
}

fn validate_orders(v: &Validator<'_>, raw: RawOrders) -> Result<OrderParams, ConfigError> {
    let count = |key: &str, value: Option<i64>, fix: &str| -> Result<i64, ConfigError> {
        let value = v.required(key, value)?;
        if value < 0 {
            return Err(v.error(key, format!("{value} is negative"), fix));
        }
        Ok(value)
    };
    let params = OrderParams {
        orders_per_side_max: count(
            "orders.orders_per_side_max",
            raw.orders_per_side_max,
            "e.g. orders_per_side_max = 1",
        )? as usize,
        price_tolerance_ticks: count(
            "orders.price_tolerance_ticks",
            raw.price_tolerance_ticks,
            "e.g. price_tolerance_ticks = 2",
        )?,
        behind_band_factor: u32::try_from(count(
            "orders.behind_band_factor",
            raw.behind_band_factor,
            "e.g. behind_band_factor = 1 (symmetric band)",
        )?)
        .unwrap_or(u32::MAX),
        min_rest_ms: count(
            "orders.min_rest_ms",
            raw.min_rest_ms,
            "e.g. min_rest_ms = 500",
        )? as u64,
        orders_per_s_max: u32::try_from(count(
            "orders.orders_per_s_max",
            raw.orders_per_s_max,
            "e.g. orders_per_s_max = 10",
        )?)
        .unwrap_or(u32::MAX),
        orders_per_10s_max: u32::try_from(count(
            "orders.orders_per_10s_max",
            raw.orders_per_10s_max,
            "e.g. orders_per_10s_max = 100",
        )?)
        .unwrap_or(u32::MAX),
    };
    params.validate().map_err(|e| {
        let key = match e {
            OrderParamsError::OrdersPerSide => "orders.orders_per_side_max",
            OrderParamsError::Tolerance => "orders.price_tolerance_ticks",
            OrderParamsError::BehindBandFactor => "orders.behind_band_factor",
            OrderParamsError::PerSecond => "orders.orders_per_s_max",
            OrderParamsError::PerTenSeconds => "orders.orders_per_10s_max",
        };
        v.error(key, e.to_string(), "see the range in config/default.toml")
    })?;
    Ok(params)
}

fn validate_risk(
    v: &Validator<'_>,
    raw: RawRisk,
    inventory_max: Qty,
) -> Result<RiskLimits, ConfigError> {
    let quote_amount = |key: &str, value: Option<DecimalText>| -> Result<i64, ConfigError> {
        let text = v.required(key, value)?.0;
        let atoms = parse_atoms(text.trim().as_bytes()).map_err(|e| {
            v.error(
                key,
                format!("{text:?}: {e}"),
                "write a positive amount of the quote currency, e.g. \"500\"",
            )
        })?;
        if atoms <= 0 {
            return Err(v.error(
                key,
                format!("{text:?} must be greater than 0"),
                "write a positive amount of the quote currency, e.g. \"500\"",
            ));
        }
        Ok(atoms)
    };
    let order_notional_max_atoms = quote_amount("risk.order_notional_max", raw.order_notional_max)?;
    let session_loss_max_atoms = quote_amount("risk.session_loss_max", raw.session_loss_max)?;
    let open = v.required("risk.open_orders_max", raw.open_orders_max)?;
    let open_orders_max = u32::try_from(open)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            v.error(
                "risk.open_orders_max",
                format!("{open} is not a count of at least 1"),
                "e.g. open_orders_max = 8",
            )
        })?;
    let stale = v.required("risk.stale_data_ms", raw.stale_data_ms)?;
    let stale_data_ms = u64::try_from(stale)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            v.error(
                "risk.stale_data_ms",
                format!("{stale} is not a duration of at least 1 ms"),
                "e.g. stale_data_ms = 5000",
            )
        })?;
    let limits = RiskLimits {
        inventory_max_lots: inventory_max.0,
        order_notional_max_atoms,
        open_orders_max,
        session_loss_max_atoms,
        stale_data_ms,
    };
    limits.validate().map_err(|e| {
        let key = match e {
            LimitsError::InventoryMax => "quoting.inventory_max",
            LimitsError::OrderNotionalMax => "risk.order_notional_max",
            LimitsError::OpenOrdersMax => "risk.open_orders_max",
            LimitsError::SessionLossMax => "risk.session_loss_max",
            LimitsError::StaleData => "risk.stale_data_ms",
        };
        v.error(key, e.to_string(), "see config/default.toml")
    })?;
    Ok(limits)
}

fn validate_venue(
    v: &Validator<'_>,
    raw: RawVenue,
    spec: &SymbolSpec,
) -> Result<VenueConfig, ConfigError> {
    let fee_bps = v.required("venue.maker_fee_bps", raw.maker_fee_bps)?;
    let centibps = fee_bps * 100.0;
    if !fee_bps.is_finite()
        || fee_bps.abs() > 10_000.0
        || (centibps - centibps.round()).abs() > 1e-6
    {
        return Err(v.error(
            "venue.maker_fee_bps",
            format!("{fee_bps} is not a fee in bps with at most two decimals within ±10000"),
            "e.g. maker_fee_bps = 10 (Binance's regular spot maker fee), 7.5 with BNB; set your \
             own tier; negative = rebate",
        ));
    }
    let latency = |key: &str, value: Option<String>| -> Result<LatencyModel, ConfigError> {
        let text = v.required(key, value)?;
        parse_latency(&text).ok_or_else(|| {
            v.error(
                key,
                format!("{text:?} is not a latency"),
                "write \"5ms\" (constant), \"uniform 2ms 8ms\" or \"lognormal 3ms 0.6 50ms\" \
                 (median, sigma of ln, cap); units ns, us, ms or s",
            )
        })
    };
    let entry_latency = latency("venue.entry_latency", raw.entry_latency)?;
    let ack_latency = latency("venue.ack_latency", raw.ack_latency)?;
    let duration = |key: &str, value: Option<String>| -> Result<u64, ConfigError> {
        let text = v.required(key, value)?;
        parse_duration_ns(&text).ok_or_else(|| {
            v.error(
                key,
                format!("{text:?} is not a duration"),
                "write a number with a unit: ns, us, ms or s, e.g. \"10ms\"",
            )
        })
    };
    let feed_default_ns = duration("venue.feed_latency_default", raw.feed_latency_default)?;
    let feed_text = v.required("venue.feed_latency", raw.feed_latency.clone())?;
    let feed_latency = if feed_text.trim() == "data" {
        FeedLatency::Data {
            default_ns: feed_default_ns,
        }
    } else {
        FeedLatency::Fixed {
            ns: duration("venue.feed_latency", raw.feed_latency)?,
        }
    };
    let seed = v.required("venue.seed", raw.seed)?;
    let seed = u64::try_from(seed).map_err(|_| {
        v.error(
            "venue.seed",
            format!("{seed} is negative"),
            "give a whole number ≥ 0, e.g. seed = 1",
        )
    })?;
    let sim = SimParams {
        entry_latency,
        ack_latency,
        maker_fee_centibps: centibps.round() as i64,
        queue_cancels: v.required("venue.queue_cancels", raw.queue_cancels)?,
        seed,
    };
    crate::venue::sim::SimVenue::new(sim, *spec).map_err(|e| {
        let key = match e {
            SimParamsError::Latency => "venue.entry_latency",
            SimParamsError::Fee => "venue.maker_fee_bps",
        };
        v.error(key, e.to_string(), "see config/default.toml")
    })?;
    Ok(VenueConfig { sim, feed_latency })
}

fn validate_metrics(v: &Validator<'_>, raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let Some(text) = raw.listen.filter(|t| !t.is_empty()) else {
        return Ok(MetricsConfig::default());
    };
    let fix = "give a loopback IP:PORT such as \"127.0.0.1:9184\" (or \"\" for off); \
               expose it beyond the host through a reverse proxy, not here";
    match text.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Ok(MetricsConfig { listen: Some(addr) }),
        Ok(addr) => Err(v.error(
            "metrics.listen",
            format!("{addr} is not a loopback address"),
            fix,
        )),
        Err(_) => Err(v.error("metrics.listen", format!("{text:?} is not IP:PORT"), fix)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

fn validate_kpi(v: &Validator<'_>, raw: RawKpi) -> Result<KpiConfig, ConfigError> {
    let fraction = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !value.is_finite() || value < 0.0 {
            return Err(v.error(
                key,
                format!("{value} is not a fraction"),
                "give a finite number ≥ 0, as a fraction (0.7 = 70 %)",
            ));
        }
        Ok(value)
    };
    let horizon = v.required("kpi.markout_horizon_s", raw.markout_horizon_s)?;
    v.seconds(
        "kpi.markout_horizon_s",
        horizon,
        "e.g. markout_horizon_s = 1.0",
    )?;
    let report_every_s = v.required("kpi.report_every_s", raw.report_every_s)?;
    v.seconds(
        "kpi.report_every_s",
        report_every_s,
        "e.g. report_every_s = 10",
    )?;
    let latency = v.required("kpi.latency_p99_ms_max", raw.latency_p99_ms_max)?;
    v.positive(
        "kpi.latency_p99_ms_max",
        latency,
        "e.g. latency_p99_ms_max = 300",
    )?;
    let pnl_min = v.required("kpi.pnl_min", raw.pnl_min)?;
    if !pnl_min.is_finite() {
        return Err(v.error(
            "kpi.pnl_min",
            format!("{pnl_min} is not an amount"),
            "give a finite amount of the quote currency, e.g. pnl_min = 0",
        ));
    }
    Ok(KpiConfig {
        markout_horizon_s: horizon,
        report_every_s,
        spread_captured_min: fraction("kpi.spread_captured_min", raw.spread_captured_min)?,
        rms_inventory_max: fraction("kpi.rms_inventory_max", raw.rms_inventory_max)?,
        fill_ratio_min: fraction("kpi.fill_ratio_min", raw.fill_ratio_min)?,
        cancel_ratio_max: fraction("kpi.cancel_ratio_max", raw.cancel_ratio_max)?,
        latency_p99_ms_max: latency,
        pnl_min,
    })
}

fn validate_live(v: &Validator<'_>, raw: RawLive) -> Result<LiveConfig, ConfigError> {
    let url = v.required("live.ws_api_url", raw.ws_api_url)?;
    if !(url.starts_with("wss://") || url.starts_with("ws://")) {
        return Err(v.error(
            "live.ws_api_url",
            format!("{url:?} is not a ws:// or wss:// URL"),
            "e.g. ws_api_url = \"wss://ws-api.binance.com:443/ws-api/v3\"",
        ));
    }
    let base_target = match raw.base_target.map(|d| d.0) {
        None => None,
        Some(text) if text.trim().is_empty() => None,
        Some(text) => {
            crate::types::parse_atoms(text.trim().as_bytes()).map_err(|e| {
                v.error(
                    "live.base_target",
                    format!("{text:?}: {e}"),
                    "write an amount of the base asset, e.g. base_target = \"0.5\"",
                )
            })?;
            Some(text.trim().to_string())
        }
    };
    let recv_window = v.required("live.recv_window_ms", raw.recv_window_ms)?;
    if !(1..=60_000).contains(&recv_window) {
        return Err(v.error(
            "live.recv_window_ms",
            format!("{recv_window} is outside 1..=60000"),
            "Binance accepts at most 60000 ms; 5000 is its default",
        ));
    }
    let headroom = v.required("live.rate_headroom", raw.rate_headroom)?;
    if !(0..=1000).contains(&headroom) {
        return Err(v.error(
            "live.rate_headroom",
            format!("{headroom} is outside 0..=1000"),
            "e.g. rate_headroom = 5",
        ));
    }
    let wait = v.required("live.shutdown_wait_s", raw.shutdown_wait_s)?;
    v.positive("live.shutdown_wait_s", wait, "e.g. shutdown_wait_s = 5")?;
    if wait > 60.0 {
        return Err(v.error(
            "live.shutdown_wait_s",
            format!("{wait} s is too long to wait at Ctrl+C"),
            "at most 60 s, e.g. shutdown_wait_s = 5",
        ));
    }
    let max_age = v.required(
        "live.order_connection_max_age_s",
        raw.order_connection_max_age_s,
    )?;
    if !(ORDER_CONNECTION_MAX_AGE_MIN_S..=ORDER_CONNECTION_MAX_AGE_MAX_S).contains(&max_age) {
        return Err(v.error(
            "live.order_connection_max_age_s",
            format!(
                "{max_age} s is outside {ORDER_CONNECTION_MAX_AGE_MIN_S}..={ORDER_CONNECTION_MAX_AGE_MAX_S}"
            ),
            "Binance closes a WebSocket API connection at 24 h (86400 s); the order \
             connection rotates make-before-break from 60 s before this age, e.g. \
             order_connection_max_age_s = 82800 (23 h, the default)",
        ));
    }
    Ok(LiveConfig {
        ws_api_url: url.trim_end_matches('/').to_string(),
        i_understand_live_trading: v.required(
            "live.i_understand_live_trading",
            raw.i_understand_live_trading,
        )?,
        base_target,
        cancel_open_orders_on_start: v.required(
            "live.cancel_open_orders_on_start",
            raw.cancel_open_orders_on_start,
        )?,
        recv_window_ms: recv_window as u32,
        rate_headroom: headroom as u32,
        shutdown_wait_s: wait,
        order_connection_max_age_s: max_age,
    })
}

fn validate_calibration(
    v: &Validator<'_>,
    raw: RawCalibration,
) -> Result<CalibrationConfig, ConfigError> {
    let fraction = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !(value > 0.0 && value < 1.0) {
            return Err(v.error(
                key,
                format!("{value} is not a fraction strictly between 0 and 1"),
                "e.g. fit_fraction = 0.5, choose_fraction = 0.25 (the rest is held out)",
            ));
        }
        Ok(value)
    };
    let fit_fraction = fraction("calibration.fit_fraction", raw.fit_fraction)?;
    let choose_fraction = fraction("calibration.choose_fraction", raw.choose_fraction)?;
    if fit_fraction + choose_fraction > 0.95 {
        return Err(v.error(
            "calibration.choose_fraction",
            format!(
                "fit_fraction + choose_fraction = {} leaves less than 5 % of the data held out",
                fit_fraction + choose_fraction
            ),
            "keep fit_fraction + choose_fraction ≤ 0.95 (default 0.5 + 0.25)",
        ));
    }
    let min_span_s = v.required("calibration.min_span_s", raw.min_span_s)?;
    v.seconds(
        "calibration.min_span_s",
        min_span_s,
        "e.g. min_span_s = 120",
    )?;
    let interval = v.required("calibration.intensity_interval_s", raw.intensity_interval_s)?;
    v.seconds(
        "calibration.intensity_interval_s",
        interval,
        "e.g. intensity_interval_s = 1.0",
    )?;
    let objective = match v.required("calibration.objective", raw.objective)?.as_str() {
        "spread" => CalibrationObjective::Spread,
        "penalised" | "penalized" => CalibrationObjective::Penalised,
        "pnl" => CalibrationObjective::Pnl,
        "targets" => CalibrationObjective::Targets,
        other => {
            return Err(v.error(
                "calibration.objective",
                format!("unknown objective {other:?}"),
                "use \"spread\" (the default), \"penalised\", \"pnl\" or \"targets\"",
            ))
        }
    };
    let penalty = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !value.is_finite() || value < 0.0 {
            return Err(v.error(
                key,
                format!("{value} is not a penalty"),
                "give a finite amount ≥ 0 of the quote currency (0 turns it off)",
            ));
        }
        Ok(value)
    };
    let grid = |key: &str,
                value: Option<Vec<f64>>,
                ok: &dyn Fn(f64) -> bool,
                fix: &str|
     -> Result<Vec<f64>, ConfigError> {
        let values = v.required(key, value)?;
        if values.is_empty() || values.len() > 64 {
            return Err(v.error(key, "needs 1 to 64 values".to_string(), fix));
        }
        if let Some(bad) = values.iter().find(|x| !ok(**x)) {
            return Err(v.error(key, format!("{bad} is out of range"), fix));
        }
        Ok(values)
    };
    Ok(CalibrationConfig {
        fit_fraction,
        choose_fraction,
        min_span_s,
        intensity_interval_s: interval,
        objective,
        kpi_miss_penalty: penalty("calibration.kpi_miss_penalty", raw.kpi_miss_penalty)?,
        rms_inventory_penalty: penalty(
            "calibration.rms_inventory_penalty",
            raw.rms_inventory_penalty,
        )?,
        grid_gamma_per_bps: grid(
            "calibration.grid_gamma_per_bps",
            raw.grid_gamma_per_bps,
            &|x| x.is_finite() && x > 0.0 && x <= model::GAMMA_PER_BPS_MAX,
            "a list of γ > 0 in 1/bps, e.g. grid_gamma_per_bps = [0.05, 0.1, 0.2]",
        )?,
        grid_ofi_beta: grid(
            "calibration.grid_ofi_beta",
            raw.grid_ofi_beta,
            &|x| x.is_finite() && x >= 0.0,
            "a list of β ≥ 0, e.g. grid_ofi_beta = [0, 0.3, 1]",
        )?,
        grid_horizon_s: grid(
            "calibration.grid_horizon_s",
            raw.grid_horizon_s,
            &|x| x.is_finite() && x > 0.0 && x <= HORIZON_S_MAX,
            "a list of horizons in seconds, each in (0, 3600], e.g. grid_horizon_s = [30, 120]",
        )?,
    })
}

/// `"5ms"`, `"250us"`, `"1.5s"`, `"800ns"` → nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e9)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    let ns = value * scale;
    (ns.is_finite() && (0.0..1e15).contains(&ns)).then(|| ns.round() as u64)
}

/// `"5ms"` (constant), `"uniform 2ms 8ms"`, `"lognormal 3ms 0.6 50ms"` (median, σ of ln,
/// cap) → a latency model.
pub fn parse_latency(text: &str) -> Option<LatencyModel> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [one] => Some(LatencyModel::Constant {
            ns: parse_duration_ns(one)?,
        }),
        ["uniform", min, max] => {
            let (min_ns, max_ns) = (parse_duration_ns(min)?, parse_duration_ns(max)?);
            (min_ns <= max_ns).then_some(LatencyModel::Uniform { min_ns, max_ns })
        }
        ["lognormal", median, sigma, max] => {
            let (median_ns, max_ns) = (parse_duration_ns(median)?, parse_duration_ns(max)?);
            let sigma: f64 = sigma.parse().ok()?;
            let sigma_milli = (sigma * 1000.0).round();
            ((0.0..=10_000.0).contains(&sigma_milli) && median_ns <= max_ns).then_some(
                LatencyModel::LogNormal {
                    median_ns,
                    sigma_milli: sigma_milli as u32,
                    max_ns,
                },
            )
        }
        _ => None,
    }
}

/// Builds errors that name the layer that set a key.
struct Validator<'a> {
    pub(super) origins: &'a BTreeMap<String, String>,
}

impl Validator<'_> {
    pub(super) fn error(&self, key: &str, problem: String, fix: &str) -> ConfigError {
        ConfigError {
            source: self
                .origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| "the merged configuration".to_string()),
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        }
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError {
            source: "the merged configuration".to_string(),
            key: key.to_string(),
            problem: "missing".to_string(),
            fix: format!("set it in {DEFAULT_PATH} or an overlay (see the built-in defaults)"),
        })
    }

    fn positive(&self, key: &str, value: f64, example: &str) -> Result<(), ConfigError> {
        if value.is_finite() && value > 0.0 {
            return Ok(());
        }
        Err(self.error(
            key,
            format!("{value} must be a finite number greater than 0"),
            example,
        ))
    }

    /// A required number in [0, 1] (NaN refused).
    fn fraction(&self, key: &str, value: Option<f64>, fix: &str) -> Result<f64, ConfigError> {
        let value = self.required(key, value)?;
        if (0.0..=1.0).contains(&value) {
            return Ok(value);
        }
        Err(self.error(key, format!("{value} is not a fraction in [0, 1]"), fix))
    }

    /// A duration in seconds: finite and in (0, `DURATION_S_MAX`].
    fn seconds(&self, key: &str, value: f64, example: &str) -> Result<(), ConfigError> {
        if value.is_finite() && value > 0.0 && value <= DURATION_S_MAX {
            return Ok(());
        }
        Err(self.error(
            key,
            format!("{value} s is outside the allowed range (0, {DURATION_S_MAX}] s"),
            example,
        ))
    }

    fn size(
        &self,
        key: &str,
        value: Option<DecimalText>,
        spec: &SymbolSpec,
    ) -> Result<Qty, ConfigError> {
        let text = self.required(key, value)?.0;
        let qty = spec.parse_qty(text.as_bytes()).map_err(|e| {
            self.error(
                key,
                format!("{text:?}: {e}"),
                "write a positive amount of the base asset that is a multiple of \
                 market.step_size, e.g. \"0.001\"",
            )
        })?;
        if qty.0 <= 0 {
            return Err(self.error(
                key,
                format!("{text:?} must be greater than 0"),
                "write a positive amount of the base asset, e.g. \"0.001\"",
            ));
        }
        Ok(qty)
    }
}

/// The REST base URL that goes with a WebSocket base URL: same host and port, `wss` →
/// `https`, `ws` → `http`, path dropped. `None` if it is not a WebSocket URL.
pub fn rest_url_for(ws_url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = ws_url.strip_prefix("wss://") {
        ("https://", rest)
    } else if let Some(rest) = ws_url.strip_prefix("ws://") {
        ("http://", rest)
    } else {
        return None;
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}{host}"))
}
