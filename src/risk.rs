//! Pre-trade risk: the checks every new order must pass, and the kill switch.
//!
//! Owns: `RiskLimits` (the limits, with units), `Risk` (the limits plus the stop state),
//! `Approved` (the proof that one order passed every check) and `RiskReject` /
//! `StopReason` (why not). `Approved` has private fields and only `Risk::check` makes one;
//! `orders::Action::Place` and `Action::CancelReplace` carry it, so an order that skipped
//! the check cannot even be written down outside this module — a compile error, not a
//! review comment (the rustls habit).
//!
//! Two ways to stop quoting, both making every check fail:
//! - `trip(reason)` — the kill switch. Latches for the rest of the session (max loss,
//!   manual stop, shutdown); nothing clears it.
//! - `pause(reason)` / `resume(reason)` — a stop that lasts while its cause does (venue
//!   disconnected, book resyncing, 429 back-off). Stale market data pauses by itself: it is
//!   judged from `now_ns` at every check, against the last `on_market_data` time.
//!
//! The order manager watches `stop_reason(now_ns)` and sends one `CancelAll` on each
//! transition from running to stopped.
//!
//! Exchange filters: prices are integer ticks and quantities integer lots, so the tick and
//! lot grids hold by construction; the check adds price > 0, qty > 0 and `minNotional`
//! (`SymbolSpec::meets_min_notional`), which is what the exchange would refuse with -1013.
//!
//! Hot path. Never allocates, reads the clock (`now_ns` comes in), panics or uses a float.

use std::fmt;

use crate::types::{Price, Qty, Side, SymbolSpec};

/// Risk limits for one symbol. `Default` holds the documented defaults (BTCUSDT grid:
/// tick 0.01 USDT, lot 0.00001 BTC, quote atom 10⁻⁸ USDT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest |inventory| an order may lead to if it and every other open order on its
    /// side fill, lots. Default 100_000 lots (1 BTC), the quoter's `inventory_max`.
    pub inventory_max_lots: i64,
    /// Largest value (price × qty) of one order, quote atoms (10⁻⁸ quote currency).
    /// Default 10¹¹ (1,000 USDT).
    pub order_notional_max_atoms: i64,
    /// Most orders not yet finished (pending new, live, pending cancel) at once, counting
    /// the one being checked. Default 8.
    pub open_orders_max: u32,
    /// Mark-to-market session loss (cash net of fees + inventory × mid) at which the kill
    /// switch trips, quote atoms, > 0. Default 5·10¹⁰ (500 USDT).
    pub session_loss_max_atoms: i64,
    /// Market data older than this stops quoting until fresh data arrives, ms. Default
    /// 5,000 ms.
    pub stale_data_ms: u64,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            inventory_max_lots: 100_000,
            order_notional_max_atoms: 100_000_000_000,
            open_orders_max: 8,
            session_loss_max_atoms: 50_000_000_000,
            stale_data_ms: 5_000,
        }
    }
}

/// Why a `RiskLimits` is refused (config maps each to its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// `inventory_max_lots` must be > 0.
    InventoryMax,
    /// `order_notional_max_atoms` must be > 0.
    OrderNotionalMax,
    /// `open_orders_max` must be ≥ 1.
    OpenOrdersMax,
    /// `session_loss_max_atoms` must be > 0.
    SessionLossMax,
    /// `stale_data_ms` must be ≥ 1.
    StaleData,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitsError::InventoryMax => "inventory_max_lots must be greater than 0",
            LimitsError::OrderNotionalMax => "order_notional_max_atoms must be greater than 0",
            LimitsError::OpenOrdersMax => "open_orders_max must be at least 1",
            LimitsError::SessionLossMax => "session_loss_max_atoms must be greater than 0",
            LimitsError::StaleData => "stale_data_ms must be at least 1",
        })
    }
}

impl std::error::Error for LimitsError {}

impl RiskLimits {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.inventory_max_lots <= 0 {
            return Err(LimitsError::InventoryMax);
        }
        if self.order_notional_max_atoms <= 0 {
            return Err(LimitsError::OrderNotionalMax);
        }
        if self.open_orders_max == 0 {
            return Err(LimitsError::OpenOrdersMax);
        }
        if self.session_loss_max_atoms <= 0 {
            return Err(LimitsError::SessionLossMax);
        }
        if self.stale_data_ms == 0 {
            return Err(LimitsError::StaleData);
        }
        Ok(())
    }
}

/// Why quoting stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The mark-to-market session loss reached `session_loss_max_atoms`.
    MaxLoss,
    /// No market data for `stale_data_ms`.
    StaleData,
    /// The order-entry connection is down.
    VenueDisconnected,
    /// The book is out of sync and being rebuilt.
    BookResync,
    /// The venue answered 429/418 (or -1003/-1015): back off.
    RateLimited,
    /// An operator asked for it.
    Manual,
    /// The process is shutting down.
    Shutdown,
    /// Live trading is taking the exchange's word for its orders and balances (after a
    /// confirmed audit difference or a stuck cancel).
    Reconciling,
}

impl StopReason {
    /// Number of reasons.
    pub const COUNT: usize = 8;
    /// Every reason, in declaration order.
    pub const ALL: [StopReason; StopReason::COUNT] = [
        StopReason::MaxLoss,
        StopReason::StaleData,
        StopReason::VenueDisconnected,
        StopReason::BookResync,
        StopReason::RateLimited,
        StopReason::Manual,
        StopReason::Shutdown,
        StopReason::Reconciling,
    ];

    /// Position in `ALL` (a bit in the pause set).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            StopReason::MaxLoss => "max_loss",
            StopReason::StaleData => "stale_data",
            StopReason::VenueDisconnected => "venue_disconnected",
            StopReason::BookResync => "book_resync",
            StopReason::RateLimited => "rate_limited",
            StopReason::Manual => "manual",
            StopReason::Shutdown => "shutdown",
            StopReason::Reconciling => "reconciling",
        }
    }
}

/// Why `Risk::check` refused an order. All are our own rules; the variants that mirror an
/// exchange filter say which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RiskReject {
    /// Quoting is stopped (kill switch, pause or stale data).
    Stopped(StopReason),
    /// Price ≤ 0 ticks (PRICE_FILTER).
    PriceNotPositive,
    /// Quantity ≤ 0 lots (LOT_SIZE).
    QtyNotPositive,
    /// price × qty below `minNotional` (NOTIONAL).
    BelowMinNotional,
    /// price × qty above `order_notional_max_atoms`.
    AboveMaxNotional,
    /// A fill of this and every other open order on its side would pass
    /// `inventory_max_lots`.
    InventoryLimit,
    /// One more order would pass `open_orders_max`.
    OpenOrdersLimit,
}

impl RiskReject {
    /// Number of variants (a `Stopped` of any reason counts as one).
    pub const COUNT: usize = 7;

    /// A dense index for counters.
    pub const fn index(self) -> usize {
        match self {
            RiskReject::Stopped(_) => 0,
            RiskReject::PriceNotPositive => 1,
            RiskReject::QtyNotPositive => 2,
            RiskReject::BelowMinNotional => 3,
            RiskReject::AboveMaxNotional => 4,
            RiskReject::InventoryLimit => 5,
            RiskReject::OpenOrdersLimit => 6,
        }
    }
}

impl fmt::Display for RiskReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RiskReject::Stopped(reason) => write!(f, "quoting stopped: {}", reason.name()),
            RiskReject::PriceNotPositive => f.write_str("price must be > 0"),
            RiskReject::QtyNotPositive => f.write_str("quantity must be > 0"),
            RiskReject::BelowMinNotional => f.write_str("order value below minNotional"),
            RiskReject::AboveMaxNotional => f.write_str("order value above the risk limit"),
            RiskReject::InventoryLimit => f.write_str("a fill would pass the inventory limit"),
            RiskReject::OpenOrdersLimit => f.write_str("too many open orders"),
        }
    }
}

/// What the order manager holds when it asks for a check: its position and open orders,
/// *without* the order being replaced (for a cancel-replace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    /// Now, ns (the caller's clock): judged against the last market data.
    pub now_ns: u64,
    /// Position, lots (+ long).
    pub inventory: Qty,
    /// Orders not finished (pending new, live, pending cancel).
    pub open_orders: u32,
    /// Σ unfilled quantity of open buy orders, lots.
    pub open_buy_lots: i64,
    /// Σ unfilled quantity of open sell orders, lots.
    pub open_sell_lots: i64,
}

/// Proof that one order (side, price, qty) passed `Risk::check`. Only this module can make
/// one (private fields); the order actions carry it, and their side/price/qty are read
/// from it, so an approval can never be attached to a different order.
///
/// It is `Copy` because every hot-path record is; copying one only re-approves the very
/// same order.
///
/// Outside this module it cannot be built, so neither can an order action:
/// ```compile_fail
/// use mm::types::{Price, Qty, Side};
/// let forged = mm::risk::Approved { side: Side::Buy, price: Price(1), qty: Qty(1) };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approved {
    side: Side,
    price: Price,
    qty: Qty,
}

impl Approved {
    /// Side of the approved order.
    #[inline]
    pub fn side(&self) -> Side {
        self.side
    }

    /// Limit price, ticks.
    #[inline]
    pub fn price(&self) -> Price {
        self.price
    }

    /// Quantity, lots.
    #[inline]
    pub fn qty(&self) -> Qty {
        self.qty
    }
}

/// Counters since `new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskStats {
    /// `trip` calls that latched the switch (the first one only).
    pub trips: u64,
    /// `pause` calls that started a pause (the reason was not in force yet).
    pub pauses: u64,
}

/// The limits and the stop state of one symbol.
#[derive(Clone, Copy, Debug)]
pub struct Risk {
    limits: RiskLimits,
    spec: SymbolSpec,
    stale_data_ns: u64,
    /// The kill switch: `Some` forever once tripped.
    killed: Option<StopReason>,
    /// Pause reasons in force, one bit per `StopReason::index`.
    paused: u32,
    /// Receive time of the last market data; `None` before the first.
    last_data_ns: Option<u64>,
    stats: RiskStats,
}

impl Risk {
    /// A running (not stopped) risk gate. Market data counts as stale until the first
    /// `on_market_data`.
    pub fn new(limits: RiskLimits, spec: SymbolSpec) -> Result<Risk, LimitsError> {
        limits.validate()?;
        Ok(Risk {
            limits,
            spec,
            stale_data_ns: limits.stale_data_ms.saturating_mul(1_000_000),
            killed: None,
            paused: 0,
            last_data_ns: None,
            stats: RiskStats::default(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    /// The symbol's grid.
    pub fn spec(&self) -> &SymbolSpec {
        &self.spec
    }

    /// Checks one new order against every limit and the exchange filters. Pure: the
    /// caller counts refusals (`orders::OrderStats::risk_rejects`).
    #[inline]
    pub fn check(
        &self,
        side: Side,
        price: Price,
        qty: Qty,
        exposure: &Exposure,
    ) -> Result<Approved, RiskReject> {
        if let Some(reason) = self.stop_reason(exposure.now_ns) {
            return Err(RiskReject::Stopped(reason));
        }
        if price.0 <= 0 {
            return Err(RiskReject::PriceNotPositive);
        }
        if qty.0 <= 0 {
            return Err(RiskReject::QtyNotPositive);
        }
        if !self.spec.meets_min_notional(price, qty) {
            return Err(RiskReject::BelowMinNotional);
        }
        if self.spec.notional_atoms(price, qty) > i128::from(self.limits.order_notional_max_atoms) {
            return Err(RiskReject::AboveMaxNotional);
        }
        let max = i128::from(self.limits.inventory_max_lots);
        let inventory = i128::from(exposure.inventory.0);
        let worst = match side {
            Side::Buy => inventory + i128::from(exposure.open_buy_lots) + i128::from(qty.0),
            Side::Sell => inventory - i128::from(exposure.open_sell_lots) - i128::from(qty.0),
        };
        // A fill that brings an over-limit position back toward zero is allowed (as the
        // quoter does): only the side that moves |inventory| outward is bounded.
        let outward = match side {
            Side::Buy => worst > max,
            Side::Sell => worst < -max,
        };
        if outward {
            return Err(RiskReject::InventoryLimit);
        }
        if exposure.open_orders >= self.limits.open_orders_max {
            return Err(RiskReject::OpenOrdersLimit);
        }
        Ok(Approved { side, price, qty })
    }

    /// Latches the kill switch: from now on every check fails with `Stopped(reason)`.
    /// The first reason is kept; later trips are ignored.
    pub fn trip(&mut self, reason: StopReason) {
        if self.killed.is_none() {
            self.killed = Some(reason);
            self.stats.trips += 1;
        }
    }

    /// True once the kill switch has tripped.
    pub fn is_killed(&self) -> bool {
        self.killed.is_some()
    }

    /// Stops quoting while `reason` lasts (until `resume(reason)`).
    pub fn pause(&mut self, reason: StopReason) {
        let bit = 1 << reason.index();
        if self.paused & bit == 0 {
            self.stats.pauses += 1;
        }
        self.paused |= bit;
    }

    /// Lifts a pause set by `pause(reason)`; other pauses and the kill switch stay.
    pub fn resume(&mut self, reason: StopReason) {
        self.paused &= !(1 << reason.index());
    }

    /// Records the receive time of market data (any decoded event of the symbol).
    #[inline]
    pub fn on_market_data(&mut self, now_ns: u64) {
        self.last_data_ns = Some(now_ns);
    }

    /// Feeds the mark-to-market session PnL (quote atoms, e.g. from
    /// `orders::Position::mark_to_market_atoms`); trips `MaxLoss` at the limit.
    #[inline]
    pub fn on_mark(&mut self, pnl_atoms: i64) {
        if pnl_atoms <= self.limits.session_loss_max_atoms.saturating_neg() {
            self.trip(StopReason::MaxLoss);
        }
    }

    /// Why quoting is stopped at `now_ns`, or `None` while it may run: the kill switch
    /// first, then the pauses in `StopReason` order, then stale data.
    #[inline]
    pub fn stop_reason(&self, now_ns: u64) -> Option<StopReason> {
        if let Some(reason) = self.killed {
            return Some(reason);
        }
        if self.paused != 0 {
            let first = self.paused.trailing_zeros() as usize;
            return StopReason::ALL.get(first).copied();
        }
        match self.last_data_ns {
            None => Some(StopReason::StaleData),
            Some(last) if now_ns.saturating_sub(last) > self.stale_data_ns => {
                Some(StopReason::StaleData)
            }
            Some(_) => None,
        }
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &RiskStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    const NOW: u64 = 10_000_000_000;
    const PX: Price = Price(6_000_000); // 60,000.00

    fn risk() -> Risk {
        let mut r = Risk::new(RiskLimits::default(), spec()).unwrap();
        r.on_market_data(NOW);
        r
    }

    fn exposure() -> Exposure {
        Exposure {
            now_ns: NOW,
            ..Exposure::default()
        }
    }

    #[test]
    fn approves_a_normal_order_and_binds_it() {
        let r = risk();
        let ok = r.check(Side::Buy, PX, Qty(100), &exposure()).unwrap();
        assert_eq!((ok.side(), ok.price(), ok.qty()), (Side::Buy, PX, Qty(100)));
    }

    #[test]
    fn each_limit_refuses() {
        let r = risk();
        let e = exposure();
        assert_eq!(
            r.check(Side::Buy, Price(0), Qty(100), &e),
            Err(RiskReject::PriceNotPositive)
        );
        assert_eq!(
            r.check(Side::Buy, PX, Qty(0), &e),
            Err(RiskReject::QtyNotPositive)
        );
        // 8 lots × 60,000 = 4.8 USDT < 5.
        assert_eq!(
            r.check(Side::Buy, PX, Qty(8), &e),
            Err(RiskReject::BelowMinNotional)
        );
        assert!(r.check(Side::Buy, PX, Qty(9), &e).is_ok());
        // 1,000 USDT limit: 0.01666 BTC = 999.6 ok, 0.01667 = 1000.2 refused.
        assert!(r.check(Side::Buy, PX, Qty(1_666), &e).is_ok());
        assert_eq!(
            r.check(Side::Buy, PX, Qty(1_667), &e),
            Err(RiskReject::AboveMaxNotional)
        );
        // Inventory: 99,950 long + 40 open bids + 20 = 100,010 > 100,000.
        let long = Exposure {
            inventory: Qty(99_950),
            open_buy_lots: 40,
            ..e
        };
        assert_eq!(
            r.check(Side::Buy, PX, Qty(20), &long),
            Err(RiskReject::InventoryLimit)
        );
        assert!(r.check(Side::Buy, PX, Qty(10), &long).is_ok());
        // Selling from an over-limit long is allowed; shorting past the limit is not.
        let over = Exposure {
            inventory: Qty(120_000),
            ..e
        };
        assert!(r.check(Side::Sell, PX, Qty(100), &over).is_ok());
        let short = Exposure {
            inventory: Qty(-99_950),
            open_sell_lots: 100,
            ..e
        };
        assert_eq!(
            r.check(Side::Sell, PX, Qty(100), &short),
            Err(RiskReject::InventoryLimit)
        );
        let busy = Exposure {
            open_orders: 8,
            ..e
        };
        assert_eq!(
            r.check(Side::Sell, PX, Qty(100), &busy),
            Err(RiskReject::OpenOrdersLimit)
        );
    }

    #[test]
    fn stale_data_stops_and_fresh_data_resumes() {
        let mut r = Risk::new(RiskLimits::default(), spec()).unwrap();
        // Before any data: stale.
        assert_eq!(r.stop_reason(NOW), Some(StopReason::StaleData));
        r.on_market_data(NOW);
        assert_eq!(r.stop_reason(NOW + 5_000_000_000), None);
        let late = Exposure {
            now_ns: NOW + 5_000_000_001,
            ..exposure()
        };
        assert_eq!(
            r.check(Side::Buy, PX, Qty(100), &late),
            Err(RiskReject::Stopped(StopReason::StaleData))
        );
        r.on_market_data(late.now_ns);
        assert!(r.check(Side::Buy, PX, Qty(100), &late).is_ok());
    }

    #[test]
    fn kill_switch_latches_and_pause_does_not() {
        let mut r = risk();
        r.pause(StopReason::VenueDisconnected);
        assert_eq!(
            r.check(Side::Buy, PX, Qty(100), &exposure()),
            Err(RiskReject::Stopped(StopReason::VenueDisconnected))
        );
        r.resume(StopReason::VenueDisconnected);
        assert!(r.check(Side::Buy, PX, Qty(100), &exposure()).is_ok());

        r.trip(StopReason::Manual);
        r.trip(StopReason::MaxLoss); // the first reason stays
        r.resume(StopReason::Manual); // resume never clears the kill switch
        r.on_market_data(NOW);
        assert!(r.is_killed());
        assert_eq!(r.stop_reason(NOW), Some(StopReason::Manual));
        assert_eq!(
            r.check(Side::Sell, PX, Qty(100), &exposure()),
            Err(RiskReject::Stopped(StopReason::Manual))
        );
        assert_eq!(r.stats().trips, 1);
    }

    #[test]
    fn max_loss_trips_at_the_limit() {
        let mut r = risk();
        r.on_mark(-49_999_999_999);
        assert!(!r.is_killed());
        r.on_mark(-50_000_000_000);
        assert_eq!(r.stop_reason(NOW), Some(StopReason::MaxLoss));
    }

    #[test]
    fn limits_are_validated() {
        let bad = RiskLimits {
            open_orders_max: 0,
            ..RiskLimits::default()
        };
        assert_eq!(
            Risk::new(bad, spec()).unwrap_err(),
            LimitsError::OpenOrdersMax
        );
        assert!(RiskLimits::default().validate().is_ok());
    }
}
