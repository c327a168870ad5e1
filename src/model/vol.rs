//! Online volatility of the mid: an exponentially weighted mean of squared returns sampled
//! on a fixed time grid, in the quoter's unit (bps of mid per √second).
//!
//! Every `sample_ns` (default 1 s — shorter intervals are inflated by bid-ask bounce, see the
//! σ signature in calibration) the mid is sampled; the return since the previous sample,
//! r = Δmid / mid in bps, gives one observation of the variance rate r² / Δt (bps²/s), and
//! var ← var + α·(r²/Δt − var) with α = 1 − 2^(−sample/half-life). σ = √var. Until
//! `warmup_samples` observations have been seen, `sigma()` returns the prior (the config's
//! fixed σ). All arithmetic is integer/fixed point: returns are I32F32 bps, the variance
//! U64F64 bps²/s, the square root `u128::isqrt` on its bits.
//!
//! Hot path: never allocates, never reads the clock (`now_ns` comes in), never panics;
//! a mid ≤ 0 or a clock that does not advance is ignored.

use fixed::types::U64F64;

use crate::model::quoter::Sigma;

/// Online σ estimator.
#[derive(Clone, Copy, Debug)]
pub struct VolEstimator {
    sample_ns: u64,
    /// α in U64F64 bits (0 < α ≤ 1).
    alpha_bits: u128,
    warmup_samples: u32,
    prior: Sigma,
    /// Variance rate, U64F64 bits, bps²/s.
    var_bits: u128,
    /// √var_bits, kept in step with it: `sigma()` is read at every quote, the variance
    /// changes once per sample.
    root: Sigma,
    samples: u32,
    last_mid_half_ticks: i64,
    last_sample_ns: u64,
    started: bool,
}

impl VolEstimator {
    /// `sample_s` seconds between samples, `half_life_s` of the exponential weights,
    /// `warmup_samples` before the estimate replaces `prior` (bps/√s). Off the hot path:
    /// this is where the only floats are.
    pub fn new(sample_s: f64, half_life_s: f64, warmup_samples: u32, prior: Sigma) -> Self {
        let sample_ns = (sample_s.max(1e-6) * 1e9) as u64;
        let alpha = 1.0 - 0.5f64.powf(sample_s / half_life_s.max(1e-9));
        let alpha_bits = U64F64::saturating_from_num(alpha.clamp(1e-12, 1.0)).to_bits();
        let prior_var = prior.to_num::<f64>().powi(2);
        let var_bits = U64F64::saturating_from_num(prior_var).to_bits();
        VolEstimator {
            sample_ns,
            alpha_bits,
            warmup_samples,
            prior,
            var_bits,
            root: sqrt_bits(var_bits),
            samples: 0,
            last_mid_half_ticks: 0,
            last_sample_ns: 0,
            started: false,
        }
    }

    /// Feeds the current mid (best bid + best ask, i.e. twice the mid, in ticks) at `now_ns`.
    /// Cheap when no sample is due (one comparison).
    #[inline]
    pub fn on_mid(&mut self, now_ns: u64, mid_half_ticks: i64) {
        if mid_half_ticks <= 0 {
            return;
        }
        if !self.started {
            self.started = true;
            self.last_mid_half_ticks = mid_half_ticks;
            self.last_sample_ns = now_ns;
            return;
        }
        let dt_ns = now_ns.saturating_sub(self.last_sample_ns);
        if dt_ns < self.sample_ns {
            return;
        }
        // r in bps as I32F32 bits: Δ·10⁴·2³² / mid.
        let delta = i128::from(mid_half_ticks) - i128::from(self.last_mid_half_ticks);
        let r_bits = (delta * 10_000 * (1i128 << 32)) / i128::from(self.last_mid_half_ticks);
        let r_abs = r_bits.unsigned_abs();
        // r² in U64F64 bits = (r_bits)² (32+32 fractional bits) — saturate on absurd moves.
        let r2_bits = r_abs.saturating_mul(r_abs);
        // Divide by Δt in seconds: bits · 10⁹ / dt_ns.
        let obs_bits = r2_bits
            .checked_mul(1_000_000_000)
            .map(|v| v / u128::from(dt_ns))
            .unwrap_or(u128::MAX / 2);
        // var += α·(obs − var), in U64F64 (α has 64 fractional bits).
        let var = self.var_bits;
        self.var_bits = if obs_bits >= var {
            var.saturating_add(mul_frac64(obs_bits - var, self.alpha_bits))
        } else {
            var - mul_frac64(var - obs_bits, self.alpha_bits)
        };
        self.root = sqrt_bits(self.var_bits);
        self.samples = self.samples.saturating_add(1);
        self.last_mid_half_ticks = mid_half_ticks;
        self.last_sample_ns = now_ns;
    }

    /// Takes a sample of `mid_half_ticks` on a copy, as the first touch one sample
    /// interval from now would, and returns the copy's σ; `self` does not change. The hot
    /// loop's warm-up on a quiet market (`Engine::warm`): a sample is taken once per
    /// interval (1 s by default), rarely enough for its arithmetic to go cold in between.
    #[inline]
    pub fn warm(&self, mid_half_ticks: i64) -> Sigma {
        let mut copy = *self;
        copy.on_mid(
            self.last_sample_ns.saturating_add(self.sample_ns),
            mid_half_ticks,
        );
        copy.sigma()
    }

    /// σ in bps/√s: the prior until warmed up, then √var.
    #[inline]
    pub fn sigma(&self) -> Sigma {
        if self.samples < self.warmup_samples {
            return self.prior;
        }
        self.root
    }

    /// True once `sigma()` is the estimate rather than the prior.
    pub fn is_warm(&self) -> bool {
        self.samples >= self.warmup_samples
    }

    /// Samples taken so far.
    pub fn samples(&self) -> u32 {
        self.samples
    }
}

/// √ of a U64F64 variance: √(U64F64 bits) has 32 fractional bits, exactly U32F32 bits.
#[inline]
fn sqrt_bits(var_bits: u128) -> Sigma {
    Sigma::from_bits(u64::try_from(var_bits.isqrt()).unwrap_or(u64::MAX))
}

/// a · b where b has 64 fractional bits (b ≤ 1.0), without overflow for a < 2¹²⁸.
#[inline]
fn mul_frac64(a: u128, b: u128) -> u128 {
    let a_hi = a >> 64;
    let a_lo = a & u128::from(u64::MAX);
    // b ≤ 2⁶⁴, so a_hi·b ≤ 2¹²⁸ only when a_hi·b would overflow: saturate.
    let hi = a_hi.saturating_mul(b);
    let lo = (a_lo * (b >> 1)) >> 63;
    hi.saturating_add(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quoter::sigma_from_f64;
    use rand::{Rng, SeedableRng};

    const S: u64 = 1_000_000_000;

    #[test]
    fn prior_until_warm() {
        let mut v = VolEstimator::new(1.0, 60.0, 3, sigma_from_f64(1.25));
        v.on_mid(0, 2_000_000);
        v.on_mid(S, 2_000_200); // +1 bps
        v.on_mid(2 * S, 2_000_000);
        assert!(!v.is_warm());
        assert_eq!(v.sigma(), sigma_from_f64(1.25));
        v.on_mid(3 * S, 2_000_200);
        assert!(v.is_warm());
    }

    #[test]
    fn no_sample_before_the_interval() {
        let mut v = VolEstimator::new(1.0, 60.0, 0, sigma_from_f64(1.0));
        v.on_mid(0, 2_000_000);
        v.on_mid(S / 2, 3_000_000);
        assert_eq!(v.samples(), 0);
        v.on_mid(S, 2_000_000);
        assert_eq!(v.samples(), 1);
    }

    #[test]
    fn one_step_matches_the_formula() {
        // Prior var 1; one return of +2 bps over 1 s ⇒ obs 4 bps²/s; α = 1 − 2^(−1/1) = 0.5.
        let mut v = VolEstimator::new(1.0, 1.0, 0, sigma_from_f64(1.0));
        v.on_mid(0, 2_000_000);
        v.on_mid(S, 2_000_400); // Δ = 400 half-ticks of 2,000,000 = 2 bps
        let expect = (1.0f64 + 0.5 * (4.0 - 1.0)).sqrt();
        assert!(
            (v.sigma().to_num::<f64>() - expect).abs() < 1e-6,
            "{}",
            v.sigma()
        );
    }

    #[test]
    fn converges_to_the_true_sigma_of_a_random_walk() {
        // Mid moves ±σ·√dt bps each second with σ = 3 bps/√s; EWMA half-life 300 s.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut v = VolEstimator::new(1.0, 300.0, 10, sigma_from_f64(0.5));
        let mut mid = 2_000_000_000f64; // half-ticks
        for i in 0..20_000u64 {
            v.on_mid(i * S, mid as i64);
            let step = if rng.random::<bool>() { 3.0 } else { -3.0 };
            mid *= 1.0 + step / 10_000.0;
        }
        let sigma = v.sigma().to_num::<f64>();
        assert!((sigma - 3.0).abs() < 0.15, "sigma {sigma}");
    }

    #[test]
    fn degenerate_input_is_ignored() {
        let mut v = VolEstimator::new(1.0, 60.0, 0, sigma_from_f64(1.0));
        v.on_mid(0, 0);
        v.on_mid(S, -5);
        assert_eq!(v.samples(), 0);
        v.on_mid(2 * S, 1);
        v.on_mid(3 * S, i64::MAX); // absurd jump saturates, no panic
        assert!(v.sigma() > Sigma::ZERO);
    }

    #[test]
    fn mul_frac64_is_a_times_b() {
        let half = 1u128 << 63;
        assert_eq!(mul_frac64(1000, half), 500);
        assert_eq!(mul_frac64(1u128 << 100, 1u128 << 64), 1u128 << 100);
        assert_eq!(mul_frac64(u128::MAX, 1u128 << 64), u128::MAX);
    }
}
