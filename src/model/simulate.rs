//! The Monte Carlo experiment of Avellaneda & Stoikov (2008),
//! "High-frequency trading in a limit order book", Quantitative Finance 8(3), 217–224,
//! section 4 (numerical simulations; section 3.3 of the October 2006 preprint).
//!
//! Owns the experiment's fixed setup, its seeded random draws, the two toy strategies
//! ("inventory" and "symmetric") and the per-row statistics (`--mode=simulate` prints
//! them as a table or JSON).
//! It is a reproduction of a published experiment, not part of the engine: it never
//! touches the engine's quoter, the network, the clock or the file system, and its
//! floats never reach an order. It prints nothing: `simulate` returns the rows.
//!
//! Units are the paper's: prices and profit in price units (the paper's dollars), time
//! in units of the horizon (`T = 1`), inventory in shares, σ in price units per √time
//! unit, A in fills per time unit, k per price unit, γ per (price unit · share).
//!
//! Model, per step of `dt` (A–S eqs. 2.1, 2.11, 3.17, 3.18):
//! - both strategies quote from the state at `t` (mid `s`, inventory `q`);
//! - each quote, at distance δ from `s`, is hit independently with probability
//!   λ(δ)·dt, λ(δ) = A·e^(−kδ), one share at the quoted price (a probability above one,
//!   possible when a quote lies through the mid, means a certain fill);
//! - then the mid moves by +σ√dt or −σ√dt with probability ½ each.
//!
//! Inventory strategy: reservation price r = s − q·γ·σ²·(T−t), total spread
//! γ·σ²·(T−t) + (2/γ)·ln(1 + γ/k), quotes r ∓ spread/2. Symmetric strategy: the mean over
//! the run of the inventory strategy's spread, centred on s. That spread does not depend
//! on the state, so its mean over the run is one number per γ, the `spread` column.
//! Profit at T = cash + q_T·s_T.
//!
//! Beware when comparing with the paper: its "spread" column (1.29, 1.33, 1.15) is
//! (2/γ)ln(1+γ/k) alone (1.2908 at γ = 0.1, 1.3289 at 0.01, 1.1507 at 0.5), without the
//! time term; the run-mean printed here adds γσ²·(T − (N−1)·dt/2) (0.201 at γ = 0.1).
//!
//! Randomness and reproducibility: one `ChaCha8Rng::seed_from_u64(seed)`, split by
//! ChaCha stream number into two sources: stream 0 draws the mid path (one `bool` per
//! step), stream 1 draws the fill uniforms (a bid then an ask `f64` in [0, 1) per step).
//! Each path consumes a fixed number of draws from each stream, so path `p` depends only
//! on `(seed, p)`; the draws are made once per path and replayed for all six
//! (γ, strategy) pairs (common random numbers: both strategies, and every γ, see the
//! same mid paths and the same fill uniforms). Numbers therefore never depend on the order
//! in which γ or strategies are evaluated, and raising `paths` only appends paths.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Which of the paper's two strategies a row describes.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Quotes around the reservation price r = s − q·γ·σ²·(T−t).
    Inventory,
    /// Quotes the inventory strategy's mean spread around the mid, whatever q is.
    Symmetric,
}

/// One row of the paper's tables: statistics over all paths for one (γ, strategy).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Row {
    /// Risk aversion γ, per (price unit · share).
    pub gamma: f64,
    pub strategy: Strategy,
    /// Total bid–ask spread, price units: the mean over the run's steps of the inventory
    /// strategy's γσ²(T−t) + (2/γ)ln(1+γ/k); the symmetric strategy quotes exactly this.
    pub spread: f64,
    /// Mean of profit at T = cash + q_T·s_T over the paths, price units.
    pub profit_mean: f64,
    /// Sample standard deviation (n − 1) of that profit, price units; 0 for one path.
    pub profit_std: f64,
    /// Mean final inventory q_T, shares.
    pub final_q_mean: f64,
    /// Sample standard deviation (n − 1) of q_T, shares; 0 for one path.
    pub final_q_std: f64,
}

/// Most Monte Carlo paths a run accepts (a thousand times the paper's 1000).
pub const MAX_PATHS: usize = 1_000_000;

/// The experiment's risk aversions, in row order, per (price unit · share).
pub const GAMMAS: [f64; 3] = [0.1, 0.01, 1.0];

/// Runs the experiment: six rows, for each γ of [`GAMMAS`] the inventory strategy then
/// the symmetric one, each over `paths` paths drawn from `seed` (see the module doc).
/// With `paths = 0` every statistic is NaN (an empty sample); `--mode=simulate` rejects that.
pub fn simulate(seed: u64, paths: usize) -> Vec<Row> {
    let (rows, _) = simulate_until(seed, paths, &|| false);
    rows
}

/// [`simulate`], checking `stop` before each path: returns the rows over the paths done
/// and how many that was (fewer than `paths` when `stop` said so).
pub fn simulate_until(seed: u64, paths: usize, stop: &dyn Fn() -> bool) -> (Vec<Row>, usize) {
    let (mut mid_rng, mut fill_rng) = random_sources(seed);
    let spreads = GAMMAS.map(mean_inventory_spread);
    let mut stats = [[PairStats::default(); STRATEGIES.len()]; GAMMAS.len()];
    let mut draws = PathDraws::new();
    let mut done = 0;
    for _ in 0..paths {
        if stop() {
            break;
        }
        done += 1;
        draws.redraw(&mut mid_rng, &mut fill_rng);
        for (g, &gamma) in GAMMAS.iter().enumerate() {
            for (j, &strategy) in STRATEGIES.iter().enumerate() {
                let (profit, final_q) = run_path(gamma, strategy, spreads[g], &draws);
                stats[g][j].profit.push(profit);
                stats[g][j].final_q.push(final_q as f64);
            }
        }
    }

    let mut rows = Vec::with_capacity(GAMMAS.len() * STRATEGIES.len());
    for (g, &gamma) in GAMMAS.iter().enumerate() {
        for (j, &strategy) in STRATEGIES.iter().enumerate() {
            let pair = &stats[g][j];
            rows.push(Row {
                gamma,
                strategy,
                spread: spreads[g],
                profit_mean: pair.profit.mean(),
                profit_std: pair.profit.std(),
                final_q_mean: pair.final_q.mean(),
                final_q_std: pair.final_q.std(),
            });
        }
    }
    (rows, done)
}

impl Strategy {
    /// The name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Inventory => "inventory",
            Strategy::Symmetric => "symmetric",
        }
    }
}

/// One path's random inputs, drawn once and replayed for every (γ, strategy).
struct PathDraws {
    /// Mid step direction per step: true = +σ√dt.
    mid_up: [bool; STEPS],
    /// Uniforms in [0, 1) per step; the bid is hit when `fill_bid[i] < λ(δ_b)·dt`.
    fill_bid: [f64; STEPS],
    /// Uniforms in [0, 1) per step; the ask is lifted when `fill_ask[i] < λ(δ_a)·dt`.
    fill_ask: [f64; STEPS],
}

impl PathDraws {
    fn new() -> Self {
        PathDraws {
            mid_up: [false; STEPS],
            fill_bid: [0.0; STEPS],
            fill_ask: [0.0; STEPS],
        }
    }

    /// Draws the next path: exactly `STEPS` bools from `mid_rng` and `2·STEPS` f64s from
    /// `fill_rng` (bid then ask per step), so path p's draws depend only on (seed, p).
    fn redraw(&mut self, mid_rng: &mut ChaCha8Rng, fill_rng: &mut ChaCha8Rng) {
        for up in &mut self.mid_up {
            *up = mid_rng.random::<bool>();
        }
        for i in 0..STEPS {
            self.fill_bid[i] = fill_rng.random::<f64>();
            self.fill_ask[i] = fill_rng.random::<f64>();
        }
    }
}

/// Running mean and variance (Welford 1962), so no path values are stored.
#[derive(Clone, Copy, Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// NaN for an empty sample.
    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.mean
        }
    }

    /// Sample standard deviation (divides by n − 1); 0 for one value, NaN for none.
    fn std(&self) -> f64 {
        match self.n {
            0 => f64::NAN,
            1 => 0.0,
            n => (self.m2 / (n - 1) as f64).sqrt(),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct PairStats {
    profit: Moments,
    final_q: Moments,
}

/// The one generator for `seed`, split by ChaCha stream: (mid steps, fill uniforms).
fn random_sources(seed: u64) -> (ChaCha8Rng, ChaCha8Rng) {
    let base = ChaCha8Rng::seed_from_u64(seed);
    let mut mid_rng = base.clone();
    mid_rng.set_stream(STREAM_MID);
    let mut fill_rng = base;
    fill_rng.set_stream(STREAM_FILLS);
    (mid_rng, fill_rng)
}

/// The inventory strategy's total spread γσ²τ + (2/γ)ln(1+γ/k) (A–S eq. 3.18) with
/// τ = T − t time units left; price units.
fn inventory_spread(gamma: f64, tau: f64) -> f64 {
    gamma * SIGMA * SIGMA * tau + (2.0 / gamma) * (1.0 + gamma / DECAY_K).ln()
}

/// Mean over the run's quoting times t_i = i·dt, i = 0..STEPS, of [`inventory_spread`].
/// State-independent, so the same for every path. Closed form (used by the tests):
/// (2/γ)ln(1+γ/k) + γσ²·(T − (STEPS−1)·dt/2).
fn mean_inventory_spread(gamma: f64) -> f64 {
    let sum: f64 = (0..STEPS)
        .map(|i| inventory_spread(gamma, HORIZON - i as f64 * DT))
        .sum();
    sum / STEPS as f64
}

/// Probability that a quote at distance `delta` (price units) from the mid is hit within
/// one step: λ(δ)·dt with λ(δ) = A·e^(−kδ) (A–S eq. 2.11). Not clamped: a value ≥ 1
/// (a quote through the mid) always beats a uniform in [0, 1).
fn hit_probability(delta: f64) -> f64 {
    ARRIVAL_A * (-DECAY_K * delta).exp() * DT
}

/// Plays one path for one (γ, strategy); returns (profit at T in price units, q_T in
/// shares). `symmetric_spread` is the symmetric strategy's total spread in price units.
fn run_path(
    gamma: f64,
    strategy: Strategy,
    symmetric_spread: f64,
    draws: &PathDraws,
) -> (f64, i64) {
    let mid_step = SIGMA * DT.sqrt();
    let mut mid = MID_START;
    let mut q: i64 = 0;
    let mut cash = 0.0;
    for i in 0..STEPS {
        let tau = HORIZON - i as f64 * DT;
        let (centre, spread) = match strategy {
            Strategy::Inventory => (
                mid - q as f64 * gamma * SIGMA * SIGMA * tau,
                inventory_spread(gamma, tau),
            ),
            Strategy::Symmetric => (mid, symmetric_spread),
        };
        let bid = centre - spread / 2.0;
        let ask = centre + spread / 2.0;
        if draws.fill_bid[i] < hit_probability(mid - bid) {
            q += 1;
            cash -= bid;
        }
        if draws.fill_ask[i] < hit_probability(ask - mid) {
            q -= 1;
            cash += ask;
        }
        mid += if draws.mid_up[i] { mid_step } else { -mid_step };
    }
    (cash + q as f64 * mid, q)
}

/// Row order within one γ.
const STRATEGIES: [Strategy; 2] = [Strategy::Inventory, Strategy::Symmetric];

/// ChaCha stream of the mid-price steps.
const STREAM_MID: u64 = 0;
/// ChaCha stream of the fill uniforms.
const STREAM_FILLS: u64 = 1;

/// Initial mid s0, price units.
pub const MID_START: f64 = 100.0;
/// Mid volatility σ, price units per √(time unit).
pub const SIGMA: f64 = 2.0;
/// Horizon T, time units.
pub const HORIZON: f64 = 1.0;
/// Steps per path: T / dt with dt = 0.005.
pub const STEPS: usize = 200;
/// Step length dt, time units.
pub const DT: f64 = HORIZON / STEPS as f64;
/// Arrival intensity at zero distance A, hits per time unit.
pub const ARRIVAL_A: f64 = 140.0;
/// Intensity decay k, per price unit.
pub const DECAY_K: f64 = 1.5;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rows: &[Row], gamma: f64, strategy: Strategy) -> &Row {
        rows.iter()
            .find(|r| r.gamma == gamma && r.strategy == strategy)
            .expect("row present")
    }

    #[test]
    fn same_seed_gives_identical_rows() {
        assert_eq!(simulate(7, 200), simulate(7, 200));
    }

    #[test]
    fn different_seed_gives_different_rows() {
        let a = simulate(1, 200);
        let b = simulate(2, 200);
        assert_ne!(a, b);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.spread, y.spread, "the spread is deterministic");
            assert_ne!(x.profit_mean, y.profit_mean);
        }
    }

    #[test]
    fn six_rows_in_order() {
        let rows = simulate(3, 10);
        let order: Vec<(f64, Strategy)> = rows.iter().map(|r| (r.gamma, r.strategy)).collect();
        assert_eq!(
            order,
            vec![
                (0.1, Strategy::Inventory),
                (0.1, Strategy::Symmetric),
                (0.01, Strategy::Inventory),
                (0.01, Strategy::Symmetric),
                (1.0, Strategy::Inventory),
                (1.0, Strategy::Symmetric),
            ]
        );
    }

    /// Rows are statistics of per-path outcomes, and path p's draws come from fixed
    /// positions of the two streams: recomputing three paths by hand, in a different
    /// (γ, strategy) order, gives the same rows.
    #[test]
    fn rows_depend_only_on_per_path_draws() {
        let (mut m, mut f) = random_sources(11);
        let mut paths = Vec::new();
        for _ in 0..3 {
            let mut d = PathDraws::new();
            d.redraw(&mut m, &mut f);
            paths.push(d);
        }
        let rows = simulate(11, 3);
        for &strategy in STRATEGIES.iter().rev() {
            for &gamma in GAMMAS.iter().rev() {
                let spread = mean_inventory_spread(gamma);
                let mut profit = Moments::default();
                let mut q = Moments::default();
                for d in &paths {
                    let (p, qt) = run_path(gamma, strategy, spread, d);
                    profit.push(p);
                    q.push(qt as f64);
                }
                let r = row(&rows, gamma, strategy);
                assert_eq!(r.profit_mean, profit.mean());
                assert_eq!(r.profit_std, profit.std());
                assert_eq!(r.final_q_mean, q.mean());
                assert_eq!(r.final_q_std, q.std());
            }
        }
        // The first path alone is the same path: raising `paths` only appends.
        let one = simulate(11, 1);
        let (p0, q0) = run_path(0.1, Strategy::Symmetric, one[1].spread, &paths[0]);
        assert_eq!(one[1].profit_mean, p0);
        assert_eq!(one[1].final_q_mean, q0 as f64);
        assert_eq!(one[1].profit_std, 0.0);
    }

    /// The paper's headline result (Tables 1–3): for every γ, quoting around the
    /// reservation price gives a tighter final inventory and a tighter P&L than quoting
    /// the same spread around the mid. Checked on several seeds.
    #[test]
    fn inventory_strategy_has_lower_inventory_and_profit_dispersion() {
        for seed in [1, 2, 3] {
            let rows = simulate(seed, 1000);
            for gamma in GAMMAS {
                let inv = row(&rows, gamma, Strategy::Inventory);
                let sym = row(&rows, gamma, Strategy::Symmetric);
                assert!(
                    inv.final_q_std < sym.final_q_std,
                    "seed {seed} γ {gamma}: std(q) {} !< {}",
                    inv.final_q_std,
                    sym.final_q_std
                );
                assert!(
                    inv.profit_std < sym.profit_std,
                    "seed {seed} γ {gamma}: std(profit) {} !< {}",
                    inv.profit_std,
                    sym.profit_std
                );
            }
        }
    }

    /// γ = 0.1: the mean spread equals its closed form to rounding, and its
    /// inventory-independent part (2/γ)ln(1+γ/k) is the paper's printed 1.29. The paper's
    /// column is that part alone: the time term adds γσ²·(T − (N−1)dt/2) = 0.201.
    #[test]
    fn gamma_0_1_spread_matches_closed_form_and_paper() {
        let gamma = 0.1;
        let arrival_term = (2.0 / gamma) * (1.0 + gamma / DECAY_K).ln();
        let time_term = gamma * SIGMA * SIGMA * (HORIZON - (STEPS as f64 - 1.0) * DT / 2.0);
        let expected = arrival_term + time_term;
        assert!((arrival_term - 1.2908).abs() < 1e-4, "{arrival_term}");
        assert!((arrival_term - 1.29).abs() < 0.005, "paper prints 1.29");
        assert!((expected - 1.4918).abs() < 1e-4, "{expected}");
        let rows = simulate(1, 10);
        for strategy in STRATEGIES {
            let got = row(&rows, gamma, strategy).spread;
            assert!(
                (got - expected).abs() < 1e-12,
                "{strategy:?}: {got} vs {expected}"
            );
        }
    }

    /// The symmetric strategy's fills do not depend on its state, so its expected profit
    /// is exactly 2·N·p·(spread/2) with p = λ(spread/2)·dt, and E[q_T] = 0.
    #[test]
    fn symmetric_profit_matches_its_expectation() {
        let paths = 2000;
        let rows = simulate(5, paths);
        for gamma in GAMMAS {
            let sym = row(&rows, gamma, Strategy::Symmetric);
            let half = sym.spread / 2.0;
            let expected = 2.0 * STEPS as f64 * hit_probability(half) * half;
            let se = sym.profit_std / (paths as f64).sqrt();
            assert!(
                (sym.profit_mean - expected).abs() < 4.0 * se,
                "γ {gamma}: {} vs {expected} (se {se})",
                sym.profit_mean
            );
            let se_q = sym.final_q_std / (paths as f64).sqrt();
            assert!(sym.final_q_mean.abs() < 4.0 * se_q, "γ {gamma}");
        }
    }

    /// Common random numbers: as γ → 0 the two strategies coincide (A–S: "in the limit
    /// as γ → 0 the two strategies are identical"), path by path.
    #[test]
    fn strategies_coincide_as_gamma_vanishes() {
        let gamma = 1e-9;
        let spread = mean_inventory_spread(gamma);
        let (mut m, mut f) = random_sources(9);
        let mut draws = PathDraws::new();
        for _ in 0..200 {
            draws.redraw(&mut m, &mut f);
            let (p_inv, q_inv) = run_path(gamma, Strategy::Inventory, spread, &draws);
            let (p_sym, q_sym) = run_path(gamma, Strategy::Symmetric, spread, &draws);
            assert_eq!(q_inv, q_sym);
            assert!((p_inv - p_sym).abs() < 1e-6);
        }
    }

    #[test]
    fn empty_sample_statistics_are_nan() {
        let rows = simulate(1, 0);
        assert_eq!(rows.len(), 6);
        assert!(rows
            .iter()
            .all(|r| r.profit_mean.is_nan() && r.final_q_std.is_nan()));
    }
}
