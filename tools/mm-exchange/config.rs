//! mm-exchange's command line: raw flags (clap) → a validated `Config`.
//!
//! Every limit and default a test or a user may need to change is a flag here, with the
//! Binance value as its default (BTCUSDT filters, ORDERS 100 / 10 s, REQUEST_WEIGHT
//! 6000 / min, recvWindow rules are fixed by the protocol). Errors name the flag and the fix.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use mm::types::parse_atoms;

use crate::matching::Rules;

/// Binance's documentation example key pair: the defaults, so a newcomer's engine config
/// and the simulator agree out of the box. Never a real key.
pub const DOC_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
/// See `DOC_API_KEY`.
pub const DOC_API_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

/// A local exchange that speaks Binance spot's wire protocol on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "mm-exchange", version, about)]
pub struct Flags {
    /// Recorded market data: captures (`<local_ts> <json>` lines, gzip or plain) or journals
    /// of `mm --mode=record` (detected by their magic bytes); repeat to chain files.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Replay speed: a factor on recorded time (1 = real time, 10 = ten times faster) or `max`.
    #[arg(long, default_value = "1", value_name = "N|max")]
    pub speed: String,
    /// TCP port on 127.0.0.1 (0 = an ephemeral port; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve plain TCP (ws://, http://) instead of TLS.
    #[arg(long)]
    pub plain: bool,
    /// Where to write the self-signed certificate (PEM) [default: a fresh temp dir].
    #[arg(long, value_name = "PATH")]
    pub cert_out: Option<PathBuf>,
    /// API key that signed requests must carry.
    #[arg(long, env = "MM_EXCHANGE_API_KEY", default_value = DOC_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub api_key: String,
    /// HMAC secret of that key [default: Binance's documentation example pair].
    #[arg(long, env = "MM_EXCHANGE_API_SECRET", default_value = DOC_API_SECRET, hide_default_value = true, hide_env_values = true)]
    pub api_secret: String,
    /// A second API key of the same account, of type Ed25519: `session.logon` and signed
    /// requests with it are verified against `--ed25519-public-key`.
    #[arg(
        long,
        env = "MM_EXCHANGE_ED25519_API_KEY",
        requires = "ed25519_public_key"
    )]
    pub ed25519_api_key: Option<String>,
    /// The PEM public key (`-----BEGIN PUBLIC KEY-----`, `openssl pkey -pubout`) registered
    /// for `--ed25519-api-key`.
    #[arg(
        long,
        env = "MM_EXCHANGE_ED25519_PUBLIC_KEY",
        value_name = "PEM",
        requires = "ed25519_api_key"
    )]
    pub ed25519_public_key: Option<PathBuf>,
    /// Token that `POST /control/<command>` must carry (`?token=…` or an
    /// `X-MM-Control-Token` header) [default: a random one, printed on stderr at start].
    #[arg(
        long,
        env = "MM_EXCHANGE_CONTROL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub control_token: Option<String>,
    /// Maker fee in basis points of the quote amount (decimal, may be negative for a rebate).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub maker_fee_bps: String,
    /// Taker fee in basis points (LIMIT orders that cross).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub taker_fee_bps: String,
    /// The account's starting balance of the base asset (BTC), a decimal.
    #[arg(long, default_value = "1")]
    pub balance_base: String,
    /// The account's starting balance of the quote asset (USDT), a decimal.
    #[arg(long, default_value = "100000")]
    pub balance_quote: String,
    /// Added one-way latency before a WebSocket API request reaches the matching (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Added latency before responses and executionReports leave (ms).
    #[arg(long, default_value_t = 0)]
    pub ack_latency_ms: u64,
    /// Write the accounting as JSON here on exit (and on every `accounting` command).
    #[arg(long, value_name = "PATH")]
    pub accounting_out: Option<PathBuf>,
    /// Seconds between server pings on every WebSocket (0 = never).
    #[arg(long, default_value_t = 20)]
    pub ping_interval_s: u64,
    /// Close a WebSocket that sent no pong for this many seconds after a ping (0 = never).
    #[arg(long, default_value_t = 60)]
    pub pong_timeout_s: u64,
    /// Queue model: cancellations at our price level (displayed size shrinking below our
    /// queue ahead) move resting orders up.
    #[arg(long)]
    pub queue_cancels: bool,
    /// PRICE_FILTER tickSize.
    #[arg(long, default_value = "0.01")]
    pub tick_size: String,
    /// LOT_SIZE stepSize.
    #[arg(long, default_value = "0.00001")]
    pub step_size: String,
    /// NOTIONAL minNotional.
    #[arg(long, default_value = "5")]
    pub min_notional: String,
    /// MAX_NUM_ORDERS.
    #[arg(long, default_value_t = 200)]
    pub max_open_orders: usize,
    /// ORDERS rate limit per 10 seconds.
    #[arg(long = "orders-per-10s", default_value_t = 100)]
    pub orders_per_10s: u64,
    /// ORDERS rate limit per day.
    #[arg(long, default_value_t = 200_000)]
    pub orders_per_day: u64,
    /// REQUEST_WEIGHT rate limit per minute.
    #[arg(long, default_value_t = 6000)]
    pub weight_per_minute: u64,
    /// Start the replay clock at launch instead of when the first market-data subscriber
    /// connects.
    #[arg(long)]
    pub start_at_launch: bool,
    /// What standard input is: control commands, and what its end means.
    #[arg(long, value_enum, default_value_t = StdinMode::StopOnEof)]
    pub stdin: StdinMode,
    /// Connections served at once (one thread each, 1..=4096); more are closed at accept
    /// and counted in `dropped_connections`.
    #[arg(long, default_value_t = 512)]
    pub connections_max: usize,
    /// Messages queued for one market-data subscriber at most (16..=16777216); a
    /// subscriber that lets its queue fill is dropped, as Binance drops slow consumers.
    /// The default holds a whole recorded session at `--speed max`.
    #[arg(long, default_value_t = 1 << 17)]
    pub market_queue_max: usize,
}

/// How standard input is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StdinMode {
    /// Read control commands; end of input stops the exchange.
    StopOnEof,
    /// Read control commands; end of input is ignored.
    IgnoreEof,
    /// Do not read standard input (for `&` in scripts: stop with Ctrl+C, SIGTERM or
    /// `POST /control/stop`).
    Off,
}

/// Replay pacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Recorded time divided by this factor.
    Factor(f64),
    /// As fast as possible.
    Max,
}

/// An Ed25519 API key: its name and the public key registered for it.
#[derive(Debug, Clone)]
pub struct Ed25519Key {
    /// The API key (sent as `apiKey`).
    pub api_key: String,
    /// The raw public key.
    pub public_key: [u8; 32],
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data files in order.
    pub data: Vec<PathBuf>,
    /// Replay pacing.
    pub speed: Speed,
    /// Port (0 = ephemeral).
    pub port: u16,
    /// Plain TCP instead of TLS.
    pub plain: bool,
    /// Certificate path.
    pub cert_out: Option<PathBuf>,
    /// API key.
    pub api_key: String,
    /// API secret.
    pub api_secret: String,
    /// The Ed25519 key of the account, if one is registered.
    pub ed25519: Option<Ed25519Key>,
    /// What `POST /control/*` must carry.
    pub control_token: String,
    /// Maker fee, bps × 10⁸.
    pub maker_fee_bps_e8: i64,
    /// Taker fee, bps × 10⁸.
    pub taker_fee_bps_e8: i64,
    /// Starting balance of the base asset (atoms).
    pub balance_base: i64,
    /// Starting balance of the quote asset (atoms).
    pub balance_quote: i64,
    /// Entry latency (ms).
    pub latency_ms: u64,
    /// Ack latency (ms).
    pub ack_latency_ms: u64,
    /// Accounting JSON path.
    pub accounting_out: Option<PathBuf>,
    /// Ping interval (s, 0 = off).
    pub ping_interval_s: u64,
    /// Pong timeout (s, 0 = off).
    pub pong_timeout_s: u64,
    /// Queue model with cancellations.
    pub queue_cancels: bool,
    /// Symbol rules in atoms.
    pub rules: Rules,
    /// ORDERS / 10 s.
    pub orders_per_10s: u64,
    /// ORDERS / day.
    pub orders_per_day: u64,
    /// REQUEST_WEIGHT / minute.
    pub weight_per_minute: u64,
    /// Start the replay at launch.
    pub start_at_launch: bool,
    /// Standard input mode.
    pub stdin: StdinMode,
    /// Connections served at once.
    pub connections_max: usize,
    /// Messages queued per market-data subscriber at most.
    pub market_queue_max: usize,
}

impl Config {
    /// Validates the flags.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Config> {
        let speed = match flags.speed.as_str() {
            "max" | "MAX" => Speed::Max,
            text => {
                let factor: f64 = text
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite() && *f > 0.0)
                    .with_context(|| {
                        format!("--speed {text}: expected a positive number or `max`")
                    })?;
                Speed::Factor(factor)
            }
        };
        let tick = positive_atoms("--tick-size", &flags.tick_size)?;
        let step = positive_atoms("--step-size", &flags.step_size)?;
        let min_notional = parse_atoms(flags.min_notional.as_bytes())
            .map_err(|e| anyhow::anyhow!("--min-notional {}: {e}", flags.min_notional))?;
        if flags.api_key.is_empty() || flags.api_secret.is_empty() {
            bail!("--api-key and --api-secret must not be empty");
        }
        let ed25519 = match (flags.ed25519_api_key, flags.ed25519_public_key) {
            (Some(api_key), Some(path)) => {
                if api_key.is_empty() || api_key == flags.api_key {
                    bail!("--ed25519-api-key must be non-empty and differ from --api-key");
                }
                let pem = std::fs::read(&path)
                    .with_context(|| format!("--ed25519-public-key {}", path.display()))?;
                let public_key = crate::sign::ed25519_public_key_from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("--ed25519-public-key {}: {e}", path.display()))?;
                Some(Ed25519Key {
                    api_key,
                    public_key,
                })
            }
            _ => None,
        };
        if !(1..=4096).contains(&flags.connections_max) {
            bail!(
                "--connections-max {}: give 1 to 4096 (one thread per connection)",
                flags.connections_max
            );
        }
        if !(16..=1 << 24).contains(&flags.market_queue_max) {
            bail!(
                "--market-queue-max {}: give 16 to 16777216 messages",
                flags.market_queue_max
            );
        }
        if flags.max_open_orders == 0 {
            bail!("--max-open-orders must be at least 1");
        }
        let rules = Rules {
            tick,
            min_price: tick,
            max_price: 1_000_000 * 100_000_000,
            step,
            min_qty: step,
            max_qty: 9_000 * 100_000_000,
            min_notional,
            max_notional: 9_000_000 * 100_000_000,
            max_open_orders: flags.max_open_orders,
        };
        Ok(Config {
            data: flags.data,
            speed,
            port: flags.port,
            plain: flags.plain,
            cert_out: flags.cert_out,
            api_key: flags.api_key,
            api_secret: flags.api_secret,
            ed25519,
            control_token: match flags.control_token {
                Some(t) if t.is_empty() => bail!("--control-token: give a non-empty token"),
                Some(t) => t,
                None => random_token()?,
            },
            maker_fee_bps_e8: signed_atoms("--maker-fee-bps", &flags.maker_fee_bps)?,
            taker_fee_bps_e8: signed_atoms("--taker-fee-bps", &flags.taker_fee_bps)?,
            balance_base: balance_atoms("--balance-base", &flags.balance_base)?,
            balance_quote: balance_atoms("--balance-quote", &flags.balance_quote)?,
            latency_ms: flags.latency_ms,
            ack_latency_ms: flags.ack_latency_ms,
            accounting_out: flags.accounting_out,
            ping_interval_s: flags.ping_interval_s,
            pong_timeout_s: flags.pong_timeout_s,
            queue_cancels: flags.queue_cancels,
            rules,
            orders_per_10s: flags.orders_per_10s,
            orders_per_day: flags.orders_per_day,
            weight_per_minute: flags.weight_per_minute,
            start_at_launch: flags.start_at_launch,
            stdin: flags.stdin,
            connections_max: flags.connections_max,
            market_queue_max: flags.market_queue_max,
        })
    }
}

fn positive_atoms(flag: &str, text: &str) -> anyhow::Result<i64> {
    match parse_atoms(text.as_bytes()) {
        Ok(atoms) if atoms > 0 => Ok(atoms),
        Ok(_) => bail!("{flag} {text}: must be greater than 0"),
        Err(e) => bail!("{flag} {text}: {e}"),
    }
}

fn balance_atoms(flag: &str, text: &str) -> anyhow::Result<i64> {
    parse_atoms(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{flag} {text}: {e} (expected a decimal ≥ 0)"))
}

fn signed_atoms(flag: &str, text: &str) -> anyhow::Result<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let atoms =
        parse_atoms(digits.as_bytes()).map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))?;
    Ok(if negative { -atoms } else { atoms })
}

/// 128 random bits as 32 hex digits (the control endpoint's default token).
fn random_token() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness for the control token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let mut all = vec!["mm-exchange", "--data", "x.gz"];
        all.extend_from_slice(args);
        Config::from_flags(Flags::try_parse_from(all)?)
    }

    #[test]
    fn defaults_are_binance_btcusdt() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.rules.tick, 1_000_000);
        assert_eq!(c.rules.step, 1_000);
        assert_eq!(c.rules.min_notional, 500_000_000);
        assert_eq!(c.speed, Speed::Factor(1.0));
        assert_eq!(c.orders_per_10s, 100);
        assert_eq!(c.api_key, DOC_API_KEY);
        assert_eq!(c.balance_base, 100_000_000);
        assert_eq!(c.balance_quote, 100_000 * 100_000_000);
    }

    #[test]
    fn speed_and_fees() {
        let c = parse(&[
            "--speed",
            "max",
            "--maker-fee-bps",
            "-0.5",
            "--taker-fee-bps",
            "7.5",
        ])
        .unwrap();
        assert_eq!(c.speed, Speed::Max);
        assert_eq!(c.maker_fee_bps_e8, -50_000_000);
        assert_eq!(c.taker_fee_bps_e8, 750_000_000);
        assert!(parse(&["--speed", "0"]).is_err());
        assert!(parse(&["--speed", "fast"]).is_err());
        assert!(parse(&["--tick-size", "0"]).is_err());
        let c = parse(&["--balance-base", "0", "--balance-quote", "2500.5"]).unwrap();
        assert_eq!((c.balance_base, c.balance_quote), (0, 250_050_000_000));
        assert!(parse(&["--balance-base", "-1"]).is_err());
        assert!(parse(&["--balance-quote", "lots"]).is_err());
    }
}
