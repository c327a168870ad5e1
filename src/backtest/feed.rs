//! The feed latency a backtest charges, and how it shifts the simulated venue's latencies.
//!
//! The time axis is the data's receive time. The venue matches our orders against the
//! market as the engine saw it, so to meet the market as it was *at the exchange* an order
//! must arrive one feed latency later: the venue gets entry latency + feed latency, and
//! reports come back ack latency − feed latency after the matching (never below 0), which
//! keeps the round trip at entry + ack. The feed latency comes from the data (median of
//! receive − exchange time) when `[venue] feed_latency = "data"` and the data has both times
//! on what looks like one clock, else from the configuration; the summary says which.
//!
//! Owns: `FeedChoice`, `feed_choice`, `shift_for_feed`. Never: reads a clock, does I/O.

use crate::config::{Config, FeedLatency};
use crate::replay::TapeInfo;
use crate::venue::sim::{LatencyModel, SimParams};

/// Largest feed latency taken from the data; beyond it (or below 0) the clocks differ.
pub const FEED_FROM_DATA_MAX_NS: i64 = 5_000_000_000;

/// The feed latency a run used and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedChoice {
    /// Latency, ns.
    pub ns: u64,
    /// Where it came from, in words.
    pub source: String,
}

/// The feed latency for this configuration and data.
pub fn feed_choice<T: TapeInfo + ?Sized>(config: &Config, tape: &T) -> FeedChoice {
    match config.venue.feed_latency {
        FeedLatency::Fixed { ns } => FeedChoice {
            ns,
            source: "config (venue.feed_latency)".to_string(),
        },
        FeedLatency::Data { default_ns } => {
            let stats = tape.stats();
            match stats.feed_delay_ns_median {
                Some(median) if (0..=FEED_FROM_DATA_MAX_NS).contains(&median) => FeedChoice {
                    ns: median as u64,
                    source: format!(
                        "data (median receive − exchange time over {} events)",
                        stats.feed_delay_samples
                    ),
                },
                Some(median) => FeedChoice {
                    ns: default_ns,
                    source: format!(
                        "config (venue.feed_latency_default): the data's receive − exchange \
                         time has median {:.1} ms, so its clocks differ",
                        median as f64 / 1e6
                    ),
                },
                None => FeedChoice {
                    ns: default_ns,
                    source: "config (venue.feed_latency_default): the data has no receive \
                             times with exchange times beside them"
                        .to_string(),
                },
            }
        }
    }
}

/// Entry latency + feed, ack latency − feed (at least 0): see the module doc.
pub fn shift_for_feed(params: SimParams, feed_ns: u64) -> SimParams {
    let plus = |m: LatencyModel| match m {
        LatencyModel::Constant { ns } => LatencyModel::Constant {
            ns: ns.saturating_add(feed_ns),
        },
        LatencyModel::Uniform { min_ns, max_ns } => LatencyModel::Uniform {
            min_ns: min_ns.saturating_add(feed_ns),
            max_ns: max_ns.saturating_add(feed_ns),
        },
        LatencyModel::LogNormal {
            median_ns,
            sigma_milli,
            max_ns,
        } => LatencyModel::LogNormal {
            median_ns: median_ns.saturating_add(feed_ns),
            sigma_milli,
            max_ns: max_ns.saturating_add(feed_ns),
        },
    };
    let minus = |m: LatencyModel| match m {
        LatencyModel::Constant { ns } => LatencyModel::Constant {
            ns: ns.saturating_sub(feed_ns),
        },
        LatencyModel::Uniform { min_ns, max_ns } => LatencyModel::Uniform {
            min_ns: min_ns.saturating_sub(feed_ns),
            max_ns: max_ns.saturating_sub(feed_ns),
        },
        LatencyModel::LogNormal {
            median_ns,
            sigma_milli,
            max_ns,
        } => LatencyModel::LogNormal {
            median_ns: median_ns.saturating_sub(feed_ns),
            sigma_milli,
            max_ns: max_ns.saturating_sub(feed_ns),
        },
    };
    SimParams {
        entry_latency: plus(params.entry_latency),
        ack_latency: minus(params.ack_latency),
        ..params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_latency_shifts_entry_up_and_ack_down() {
        let params = SimParams {
            entry_latency: LatencyModel::Uniform {
                min_ns: 1,
                max_ns: 5,
            },
            ack_latency: LatencyModel::Constant { ns: 3 },
            ..SimParams::default()
        };
        let shifted = shift_for_feed(params, 4);
        assert_eq!(
            shifted.entry_latency,
            LatencyModel::Uniform {
                min_ns: 5,
                max_ns: 9
            }
        );
        assert_eq!(shifted.ack_latency, LatencyModel::Constant { ns: 0 });
        assert_eq!(shifted.maker_fee_centibps, params.maker_fee_centibps);
    }
}
