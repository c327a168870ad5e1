//! Unit tests of configuration loading: layers, precedence, schema errors that name their
//! source, validation rules, value parsers, the banner.

use super::*;

/// A temporary project root holding the given config files.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("mm-config-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join(DEFAULT_PATH), DEFAULT_TOML).unwrap();
        Root(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn options(&self) -> LoadOptions {
        LoadOptions {
            root: self.0.clone(),
            ..LoadOptions::default()
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn defaults_load_with_the_seed_values() {
    let root = Root::new("defaults");
    let c = load(&root.options()).unwrap();
    assert_eq!(c.spec.symbol.as_str(), "BTCUSDT");
    assert_eq!(c.spec.tick_atoms, 1_000_000);
    assert_eq!(c.spec.step_atoms, 1_000);
    assert_eq!(c.spec.min_notional_atoms, 500_000_000);
    assert_eq!(c.model.gamma_per_bps, 0.1);
    assert_eq!(c.model.horizon_s, 120.0);
    assert_eq!(c.quoting.inventory_max_lots, Qty(500));
    assert_eq!(c.quoting.quote_size_lots, Qty(100));
    assert_eq!(
        (c.quoting.spread_min_bps, c.quoting.spread_max_bps),
        (1.0, 200.0)
    );
    assert_eq!(c.quoting.requote_band, 1.0);
    assert_eq!(c.quoting.microprice_weight, 0.0);
    assert_eq!(c.model.kind, model::ModelKind::AvellanedaStoikov);
    assert_eq!(c.ofi.tilt, model::OfiTilt::Ticks);
    // The one fee setting reaches the model.
    assert_eq!(c.model_params().maker_fee_bps, 10.0);
    assert_eq!((c.ofi.beta, c.ofi.window_s), (0.3, 1.0));
    assert_eq!(c.log.level, LogLevel::Info);
    assert!(c.warnings.is_empty());
    assert_eq!(
        c.banner("backtest"),
        "Market Making V1 — mode: backtest — symbol: BTCUSDT\n\
         model avellaneda-stoikov | gamma 0.1 | inventory max 0.005 | spread 1–200 bps | OFI \
         beta 0.3 (ticks), window 1.0 s | horizon 120 s | maker fee 10 bps"
    );
}

#[test]
fn built_in_defaults_are_used_without_the_folder() {
    let dir = std::env::temp_dir().join(format!("mm-config-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = load(&LoadOptions {
        root: dir.clone(),
        ..LoadOptions::default()
    })
    .unwrap();
    assert!(c.layers[0].starts_with("built-in defaults"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn layers_override_in_order() {
    let root = Root::new("layers");
    root.write(
        CALIBRATED_PATH,
        "[model]\ngamma_per_bps = 0.2\nk_per_bps = 2.0\n",
    );
    let user = root.write("mine.toml", "[model]\ngamma_per_bps = 0.3\n");
    let mut options = root.options();
    options.config_path = Some(user.clone());
    options.env = vec![
        ("MM__OFI__BETA".to_string(), "0.5".to_string()),
        ("MM__MARKET__SYMBOL".to_string(), "ethusdt".to_string()),
        ("UNRELATED".to_string(), "x".to_string()),
    ];
    options.log_level = Some("debug".to_string());
    let c = load(&options).unwrap();
    assert_eq!(c.model.gamma_per_bps, 0.3); // --config beats calibrated
    assert_eq!(c.model.k_per_bps, 2.0); // calibrated beats defaults
    assert_eq!(c.ofi.beta, 0.5); // environment
    assert_eq!(c.spec.symbol.as_str(), "ETHUSDT");
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.layers.len(), 6);

    options.symbol = Some("SOLUSDT".to_string());
    assert_eq!(load(&options).unwrap().spec.symbol.as_str(), "SOLUSDT");
}

#[test]
fn unknown_key_names_file_and_key() {
    let root = Root::new("unknown");
    let user = root.write("bad.toml", "[model]\ngama_per_bps = 0.1\n");
    let mut options = root.options();
    options.config_path = Some(user);
    let e = load(&options).unwrap_err();
    assert!(e.source.ends_with("bad.toml"), "{e}");
    assert_eq!(e.key, "model.gama_per_bps", "{e}");
    assert!(e.problem.contains("unknown field"), "{e}");
    let e = {
        let root = Root::new("unknown-section");
        root.write(CALIBRATED_PATH, "[modle]\ngamma_per_bps = 0.1\n");
        load(&root.options()).unwrap_err()
    };
    assert!(e.source.ends_with("calibrated.toml"), "{e}");
    assert_eq!(e.key, "modle");
}

#[test]
fn wrong_type_names_file_and_key() {
    let root = Root::new("type");
    let user = root.write("bad.toml", "[model]\ngamma_per_bps = \"lots\"\n");
    let mut options = root.options();
    options.config_path = Some(user);
    let e = load(&options).unwrap_err();
    assert_eq!(e.key, "model.gamma_per_bps");
    assert!(e.problem.contains("invalid type"), "{e}");
    assert!(e.to_string().contains("fix:"), "{e}");
}

#[test]
fn syntax_error_names_the_file() {
    let root = Root::new("syntax");
    let user = root.write("bad.toml", "[model\ngamma = \n");
    let mut options = root.options();
    options.config_path = Some(user);
    let e = load(&options).unwrap_err();
    assert!(e.source.ends_with("bad.toml"));
    assert!(e.problem.contains("not valid TOML"));
}

#[test]
fn range_errors_name_the_layer_that_set_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[quoting]\nspread_min_bps = 300.0\n",
            "quoting.spread_min_bps",
        ),
        ("[quoting]\nquote_size = \"-1\"\n", "quoting.quote_size"),
        ("[quoting]\nquote_size = \"0\"\n", "quoting.quote_size"),
        (
            "[quoting]\nquote_size = \"0.0000001\"\n",
            "quoting.quote_size",
        ),
        ("[quoting]\nquote_size = \"2.0\"\n", "quoting.quote_size"),
        (
            "[quoting]\ninventory_max = \"1.2.3\"\n",
            "quoting.inventory_max",
        ),
        ("[model]\ngamma_per_bps = -0.1\n", "model.gamma_per_bps"),
        ("[model]\ngamma_per_bps = nan\n", "model.gamma_per_bps"),
        ("[model]\nk_per_bps = 0.0\n", "model.k_per_bps"),
        (
            "[model]\nsigma_bps_per_sqrt_s = -1.0\n",
            "model.sigma_bps_per_sqrt_s",
        ),
        ("[model]\nsigma_source = \"guess\"\n", "model.sigma_source"),
        ("[model]\nhorizon_s = 259200.0\n", "model.horizon_s"),
        ("[ofi]\nwindow_s = 0.0\n", "ofi.window_s"),
        ("[ofi]\nbeta = -1.0\n", "ofi.beta"),
        (
            "[orders]\nbehind_band_factor = 0\n",
            "orders.behind_band_factor",
        ),
        (
            "[orders]\nbehind_band_factor = 17\n",
            "orders.behind_band_factor",
        ),
        (
            "[quoting]\nmicroprice_weight = 1.5\n",
            "quoting.microprice_weight",
        ),
        (
            "[quoting]\nmicroprice_weight = nan\n",
            "quoting.microprice_weight",
        ),
        ("[market]\ntick_size = \"0\"\n", "market.tick_size"),
        ("[market]\nsymbol = \"BTC/USDT\"\n", "market.symbol"),
        ("[log]\nlevel = \"loud\"\n", "log.level"),
        (
            "[market_data]\nbook_levels = 5\n",
            "market_data.book_levels",
        ),
        (
            "[market_data]\nsnapshot_limit = 6000\n",
            "market_data.snapshot_limit",
        ),
        (
            "[market_data]\nws_url = \"http://x\"\n",
            "market_data.ws_url",
        ),
        ("[engine]\ncpu_core = -2\n", "engine.cpu_core"),
        // ≥ 1024 made core_affinity panic (CPU_SET index out of bounds).
        ("[engine]\ncpu_core = 1024\n", "engine.cpu_core"),
        (
            "[engine]\ncpu_core = 9223372036854775807\n",
            "engine.cpu_core",
        ),
        ("[engine]\nwarm_every_us = -1\n", "engine.warm_every_us"),
        (
            "[engine]\nwarm_every_us = 1000001\n",
            "engine.warm_every_us",
        ),
        (
            "[model]\nsigma_warmup_samples = -1\n",
            "model.sigma_warmup_samples",
        ),
    ];
    for (text, key) in cases {
        let root = Root::new("range");
        let user = root.write("bad.toml", text);
        let mut options = root.options();
        options.config_path = Some(user);
        let e = load(&options).unwrap_err();
        assert_eq!(&e.key, key, "{text}: {e}");
        assert!(e.source.ends_with("bad.toml"), "{text}: {e}");
        assert!(!e.fix.is_empty());
    }
}

#[test]
fn the_warm_up_interval_defaults_to_20_us_and_0_turns_it_off() {
    let root = Root::new("warm");
    let mut options = root.options();
    assert_eq!(load(&options).unwrap().engine.warm_every_us, 20);
    for us in [0, 1, 1_000_000] {
        options.sets = vec![format!("engine.warm_every_us={us}")];
        assert_eq!(load(&options).unwrap().engine.warm_every_us, us);
    }
}

#[test]
fn an_online_core_is_accepted() {
    let root = Root::new("core");
    let core = *online_cores().first().expect("some core is online");
    let mut options = root.options();
    options.sets = vec![format!("engine.cpu_core={core}")];
    assert_eq!(load(&options).unwrap().engine.cpu_core, Some(core));
}

#[test]
fn non_utf8_environment_is_ignored_unless_it_is_ours() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let root = Root::new("env-bytes");
    let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
    // Not ours: ignored, whatever its bytes.
    let options = root.options().with_env([
        (bytes(b"LANG_\xff"), bytes(b"x")),
        (bytes(b"SOME_PATH"), bytes(b"/tmp/\xff\xfe")),
        (bytes(b"MM__MODEL__GAMMA_PER_BPS"), bytes(b"0.2")),
    ]);
    let c = load(&options).unwrap();
    assert_eq!(c.model.gamma_per_bps, 0.2);
    // Ours: refused by name.
    for (name, value) in [
        (&b"MM__LOG__DIR"[..], &b"logs-\xff"[..]),
        (b"MM__LOG__\xffDIR", b"logs"),
    ] {
        let options = root.options().with_env([(bytes(name), bytes(value))]);
        let e = load(&options).unwrap_err();
        assert!(
            e.source.starts_with("environment variable MM__LOG__"),
            "{e}"
        );
        assert!(e.problem.contains("not UTF-8"), "{e}");
    }
}

#[test]
fn env_errors_name_the_variable() {
    let root = Root::new("env");
    let mut options = root.options();
    options.env = vec![("MM__MODEL__GAMMA".to_string(), "0.2".to_string())];
    let e = load(&options).unwrap_err();
    assert_eq!(e.source, "environment variable MM__MODEL__GAMMA");
    options.env = vec![("MM__MODEL__HORIZON_S".to_string(), "1e9".to_string())];
    let e = load(&options).unwrap_err();
    assert_eq!(e.source, "environment variable MM__MODEL__HORIZON_S");
    assert_eq!(e.key, "model.horizon_s");
    options.env = vec![("MM__GAMMA".to_string(), "0.2".to_string())];
    assert!(load(&options)
        .unwrap_err()
        .problem
        .contains("MM__<SECTION>__<KEY>"));
}

#[test]
fn long_horizon_is_warned_about() {
    let root = Root::new("warn");
    let mut options = root.options();
    options.env = vec![("MM__MODEL__HORIZON_S".to_string(), "1800".to_string())];
    let c = load(&options).unwrap();
    assert_eq!(c.model.horizon_s, 1800.0);
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn numbers_are_accepted_for_sizes() {
    let root = Root::new("numbers");
    let user = root.write(
        "n.toml",
        "[quoting]\nquote_size = 0.002\ninventory_max = 2\n",
    );
    let mut options = root.options();
    options.config_path = Some(user);
    let c = load(&options).unwrap();
    assert_eq!(c.quoting.quote_size_lots, Qty(200));
    assert_eq!(c.quoting.inventory_max_lots, Qty(200_000));
}

#[test]
fn endpoint_and_ca_flags_set_market_data() {
    let root = Root::new("endpoint");
    let ca = root.write("ca.pem", "not checked here");
    let mut options = root.options();
    options.endpoint = Some("wss://127.0.0.1:9443/".to_string());
    options.ca_file = Some(ca.display().to_string());
    let c = load(&options).unwrap();
    assert_eq!(c.market_data.ws_url, "wss://127.0.0.1:9443");
    assert_eq!(c.market_data.rest_url, "https://127.0.0.1:9443");
    assert_eq!(c.market_data.ca_file, Some(ca));
    options.endpoint = Some("https://x".to_string());
    assert_eq!(load(&options).unwrap_err().source, "flag --endpoint");
    options.endpoint = None;
    options.ca_file = Some("/nonexistent/ca.pem".to_string());
    assert_eq!(load(&options).unwrap_err().key, "market_data.ca_file");
    assert_eq!(
        rest_url_for("ws://h:1/stream?x"),
        Some("http://h:1".to_string())
    );
    assert_eq!(rest_url_for("wss:///"), None);
}

#[test]
fn trading_sections_load_with_their_defaults() {
    let root = Root::new("trading");
    let c = load(&root.options()).unwrap();
    assert_eq!(c.orders, OrderParams::default());
    assert_eq!(
        c.risk,
        RiskLimits {
            inventory_max_lots: c.quoting.inventory_max_lots.0,
            ..RiskLimits::default()
        }
    );
    assert_eq!(c.venue.sim.maker_fee_centibps, 1_000, "10 bps");
    assert_eq!(
        c.venue.sim.entry_latency,
        LatencyModel::Constant { ns: 5_000_000 }
    );
    assert_eq!(
        c.venue.feed_latency,
        FeedLatency::Data {
            default_ns: 10_000_000
        }
    );
    assert_eq!(c.kpi.markout_horizon_s, 1.0);
    assert_eq!(
        (c.kpi.spread_captured_min, c.kpi.rms_inventory_max),
        (0.7, 0.4)
    );
    assert_eq!((c.kpi.fill_ratio_min, c.kpi.cancel_ratio_max), (0.05, 0.7));
    assert_eq!((c.kpi.latency_p99_ms_max, c.kpi.pnl_min), (300.0, 0.0));
}

#[test]
fn set_flags_are_layers_named_after_the_flag() {
    let root = Root::new("set");
    let mut options = root.options();
    options.sets = vec![
        "model.gamma_per_bps=0.2".to_string(),
        "venue.entry_latency=uniform 1ms 3ms".to_string(),
        "venue.ack_latency = lognormal 2ms 0.5 20ms".to_string(),
        "venue.feed_latency=250us".to_string(),
        "risk.session_loss_max=\"12.5\"".to_string(),
        "orders.min_rest_ms=0".to_string(),
        "market.symbol=ethusdt".to_string(),
    ];
    let c = load(&options).unwrap();
    assert_eq!(c.model.gamma_per_bps, 0.2);
    assert_eq!(
        c.venue.sim.entry_latency,
        LatencyModel::Uniform {
            min_ns: 1_000_000,
            max_ns: 3_000_000
        }
    );
    assert_eq!(
        c.venue.sim.ack_latency,
        LatencyModel::LogNormal {
            median_ns: 2_000_000,
            sigma_milli: 500,
            max_ns: 20_000_000
        }
    );
    assert_eq!(c.venue.feed_latency, FeedLatency::Fixed { ns: 250_000 });
    assert_eq!(c.risk.session_loss_max_atoms, 1_250_000_000);
    assert_eq!(c.orders.min_rest_ms, 0);
    assert_eq!(c.spec.symbol.as_str(), "ETHUSDT");
    assert!(c
        .layers
        .contains(&"flag --set model.gamma_per_bps=0.2".to_string()));

    // A later --set wins; a bad one names the flag and the key.
    options.sets = vec!["ofi.beta=0.1".to_string(), "ofi.beta=0.5".to_string()];
    assert_eq!(load(&options).unwrap().ofi.beta, 0.5);
    options.sets = vec!["ofi.beta=-1".to_string()];
    let e = load(&options).unwrap_err();
    assert_eq!(
        (e.source.as_str(), e.key.as_str()),
        ("flag --set ofi.beta=-1", "ofi.beta")
    );
    options.sets = vec!["ofi.bta=1".to_string()];
    assert_eq!(load(&options).unwrap_err().key, "ofi.bta");
    for bad in ["gamma=0.1", "model.gamma_per_bps", "a.b.c=1"] {
        options.sets = vec![bad.to_string()];
        let e = load(&options).unwrap_err();
        assert_eq!(e.source, format!("flag --set {bad}"), "{e}");
        assert!(e.fix.contains("--set section.key=value"), "{e}");
    }
}

#[test]
fn trading_section_errors_name_file_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[orders]\norders_per_side_max = 0\n",
            "orders.orders_per_side_max",
        ),
        (
            "[orders]\nprice_tolerance_ticks = -1\n",
            "orders.price_tolerance_ticks",
        ),
        (
            "[orders]\norders_per_s_max = 0\n",
            "orders.orders_per_s_max",
        ),
        ("[orders]\nmin_rest_ms = -5\n", "orders.min_rest_ms"),
        (
            "[risk]\norder_notional_max = \"0\"\n",
            "risk.order_notional_max",
        ),
        (
            "[risk]\nsession_loss_max = \"-1\"\n",
            "risk.session_loss_max",
        ),
        ("[risk]\nopen_orders_max = 0\n", "risk.open_orders_max"),
        ("[risk]\nstale_data_ms = 0\n", "risk.stale_data_ms"),
        ("[venue]\nmaker_fee_bps = 10.001\n", "venue.maker_fee_bps"),
        ("[venue]\nmaker_fee_bps = 20000.0\n", "venue.maker_fee_bps"),
        ("[venue]\nentry_latency = \"5\"\n", "venue.entry_latency"),
        (
            "[venue]\nack_latency = \"uniform 8ms 2ms\"\n",
            "venue.ack_latency",
        ),
        (
            "[venue]\nentry_latency = \"lognormal 3ms x 50ms\"\n",
            "venue.entry_latency",
        ),
        ("[venue]\nfeed_latency = \"soon\"\n", "venue.feed_latency"),
        (
            "[venue]\nfeed_latency_default = \"-1ms\"\n",
            "venue.feed_latency_default",
        ),
        ("[venue]\nseed = -1\n", "venue.seed"),
        ("[kpi]\nmarkout_horizon_s = 0.0\n", "kpi.markout_horizon_s"),
        ("[kpi]\nreport_every_s = 0.0\n", "kpi.report_every_s"),
        ("[kpi]\nfill_ratio_min = -0.1\n", "kpi.fill_ratio_min"),
        (
            "[kpi]\nlatency_p99_ms_max = nan\n",
            "kpi.latency_p99_ms_max",
        ),
    ];
    for (text, key) in cases {
        let root = Root::new("trading-range");
        let user = root.write("bad.toml", text);
        let mut options = root.options();
        options.config_path = Some(user);
        let e = load(&options).unwrap_err();
        assert_eq!(&e.key, key, "{text}: {e}");
        assert!(e.source.ends_with("bad.toml"), "{text}: {e}");
        assert!(!e.fix.is_empty());
    }
}

#[test]
fn the_order_connection_max_age_defaults_to_23_h_and_is_bounded_by_binances_24_h() {
    let root = Root::new("order-age");
    let c = load(&root.options()).unwrap();
    assert_eq!(c.live.order_connection_max_age_s, 82_800.0);
    let mut options = root.options();
    for bad in ["9.9", "86400.5", "0", "-1", "nan", "inf", "1e300"] {
        options.sets = vec![format!("live.order_connection_max_age_s={bad}")];
        let e = load(&options).unwrap_err();
        assert_eq!(e.key, "live.order_connection_max_age_s", "{bad}: {e}");
        assert!(e.problem.contains("outside 10..=86400"), "{bad}: {e}");
        assert!(e.fix.contains("24 h"), "{e}");
    }
    options.sets = vec!["live.order_connection_max_age_s=10".to_string()];
    assert_eq!(
        load(&options).unwrap().live.order_connection_max_age_s,
        10.0
    );
}

#[test]
fn durations_and_latencies_parse() {
    assert_eq!(parse_duration_ns("5ms"), Some(5_000_000));
    assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_duration_ns("250us"), Some(250_000));
    assert_eq!(parse_duration_ns("7ns"), Some(7));
    assert_eq!(parse_duration_ns("0ms"), Some(0));
    for bad in ["5", "ms", "-1ms", "1e20s", "five ms"] {
        assert_eq!(parse_duration_ns(bad), None, "{bad}");
    }
    assert_eq!(
        parse_latency(" 3ms "),
        Some(LatencyModel::Constant { ns: 3_000_000 })
    );
    assert_eq!(parse_latency("uniform 1ms"), None);
    assert_eq!(parse_latency("gauss 1ms 2ms"), None);
}

#[test]
fn missing_config_file_is_an_error() {
    let root = Root::new("missing");
    let mut options = root.options();
    options.config_path = Some(root.0.join("nope.toml"));
    let e = load(&options).unwrap_err();
    assert!(e.problem.contains("does not exist"));
}

#[test]
fn seconds_keys_are_bounded() {
    // Each reached `as u64` nanoseconds and an addition to a timestamp (kpi.report_every_s =
    // 1e300 overflowed the paper session's next-report time).
    let root = Root::new("seconds");
    for key in [
        "model.sigma_sample_s",
        "model.sigma_half_life_s",
        "market_data.stale_after_s",
        "kpi.markout_horizon_s",
        "kpi.report_every_s",
        "calibration.min_span_s",
        "calibration.intensity_interval_s",
    ] {
        let mut options = root.options();
        for bad in ["1e300", "1000001", "inf", "0", "-1"] {
            options.sets = vec![format!("{key}={bad}")];
            let e = load(&options).unwrap_err();
            assert_eq!(e.key, key, "{bad}: {e}");
            assert!(e.problem.contains("(0, 1000000] s"), "{bad}: {e}");
            assert_eq!(e.source, format!("flag --set {key}={bad}"), "{e}");
        }
        options.sets = vec![format!("{key}=1000000")];
        if let Err(e) = load(&options) {
            // Only a cross-field rule may refuse the largest value, never the range.
            assert!(!e.problem.contains("allowed range"), "{e}");
        }
    }
}

#[test]
fn the_config_text_loads_as_the_file_does() {
    let root = Root::new("text");
    let path = root.write("mine.toml", "[model]\ngamma_per_bps = 0.3\n");
    let mut options = root.options();
    options.config_path = Some(path.clone());
    let name = path.display().to_string();
    let from_file = load(&options).unwrap();
    assert_eq!(from_file.model.gamma_per_bps, 0.3);
    let bytes = std::fs::read(&path).unwrap();
    let base = BaseLayers::read(&options).unwrap();
    assert_eq!(
        load_with_config_bytes(&options, &base, &name, &bytes),
        Ok(from_file)
    );
    // Not UTF-8: said as such, by both paths.
    let bytes = b"[model]\ngamma_per_bps = 0.3 # caf\xe9\n";
    std::fs::write(&path, bytes).unwrap();
    let e = load(&options).unwrap_err();
    assert!(e.problem.contains("not UTF-8"), "{e}");
    assert_eq!(
        load_with_config_bytes(&options, &base, &name, bytes),
        Err(e)
    );
}
