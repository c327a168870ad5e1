//! The calibration run's steps between the data and the files: the limits the data must
//! meet, the rounding of the fitted values, and the fingerprint that ties shard rows to
//! one data set, window split, fit and grid. `--mode=calibration` wires them together.
//!
//! Never: prints, writes files, or imports a mode.

use crate::backtest::GridAxis;
use crate::calibration::search::{fingerprint, Windows, ROWS_VERSION};
use crate::config::Config;
use crate::replay::Tape;

/// Significant digits of the fitted σ and k written to calibrated.toml (and used by the
/// grid): more would claim a precision 10 minutes of data does not have.
pub const WRITTEN_DIGITS: i32 = 4;
/// Longest stretch without any event calibration accepts, ns (BTCUSDT has events every
/// few ms; the thin NEXOUSDT recording's quietest stretch is 43 s).
pub const MAX_GAP_NS: u64 = 120_000_000_000;
/// Smallest one-window-ahead R² of price change on normalised OFI for which the calibration
/// searches a non-zero OFI tilt (measured 0.03 on BTCUSDT, 0.00 on NEXOUSDT).
pub const OFI_PREDICTIVE_R2_MIN: f64 = 0.05;

/// `x` rounded to `digits` significant digits (exact decimal when printed).
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let places = digits - 1 - magnitude;
    if places >= 0 {
        let scale = 10f64.powi(places);
        (x * scale).round() / scale
    } else {
        let scale = 10f64.powi(-places);
        (x / scale).round() * scale
    }
}

/// Everything that shapes a grid row: the data (file names, not paths, so shards on other
/// machines agree), the windows, the fitted values, the axes and the configuration.
pub fn run_fingerprint(
    tape: &Tape,
    windows: &Windows,
    base_sets: &[String],
    axes: &[GridAxis],
    base: &Config,
) -> String {
    let s = tape.stats();
    let mut parts = vec![format!("mm calibration rows v{}", ROWS_VERSION)];
    for source in tape.sources() {
        parts.push(
            std::path::Path::new(source)
                .file_name()
                .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned()),
        );
    }
    parts.push(format!(
        "{} {} {} {} {} {} {}",
        s.events, s.depth_diffs, s.book_tickers, s.trades, s.snapshots, s.first_ts_ns, s.last_ts_ns
    ));
    parts.push(format!("{windows:?}"));
    parts.extend(base_sets.iter().cloned());
    for axis in axes {
        parts.push(format!("{}={}", axis.key, axis.values.join(",")));
    }
    parts.push(format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
        base.spec,
        base.model,
        base.quoting,
        base.ofi,
        base.orders,
        base.risk,
        base.venue,
        base.kpi,
        base.calibration,
        base.market_data.book_levels
    ));
    fingerprint(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(round_significant(1.168_706, 4), 1.169);
        assert_eq!(round_significant(0.869_681, 4), 0.8697);
        assert_eq!(round_significant(12_345.0, 4), 12_350.0);
        assert_eq!(
            format!("{}", round_significant(0.000_123_456, 4)),
            "0.0001235"
        );
        assert_eq!(round_significant(0.0, 4), 0.0);
    }
}
