//! What a backtest says to a trader in words: no edge at this fee tier (`edge_verdict`),
//! and why a replay placed no order (`no_trading_reason`). Shared by the backtest and the
//! scoreboard.
//!
//! Never: decides anything (the text only explains figures), writes files, or prints.

use crate::backtest::run::Replayed;
use crate::backtest::score::Scorecard;
use crate::replay::TapeInfo;

/// What to tell the trader when the spread did not pay for the fee tier: the spread earned
/// before fees, the fees, and where to look. `None` when the spread part (net of fees) is
/// positive or nothing filled.
pub fn edge_verdict(card: &Scorecard) -> Option<String> {
    if card.fills == 0 || card.spread_pnl_atoms > 0 {
        return None;
    }
    let before_fees = card.spread_pnl_quote + card.fees_quote;
    Some(format!(
        "No edge at this fee tier: the spread earned {before_fees:+.4} before fees and the \
         {} bps maker fee cost {:.4}. The model already quotes the fee on both sides (each \
         half-spread ≥ fee), so what is missing is edge over adverse selection: at this tier \
         the strategy should stand aside — `mm --mode=scoreboard` chooses on earlier data and \
         does, fold by fold.",
        card.maker_fee_bps, card.fees_quote
    ))
}

/// Why a replay placed no order, in words a trader can act on.
pub fn no_trading_reason(tape: &dyn TapeInfo, run: &Replayed) -> String {
    let stats = tape.stats();
    if stats.snapshots == 0 {
        return "the data holds no REST depth snapshot, so the L2 book never syncs and the \
                engine never quotes (a top-of-book mode is not built; record with a snapshot)"
            .to_string();
    }
    if run.engine_stats.snapshots == 0 || run.engine_stats.gaps > 0 {
        return format!(
            "the depth diffs do not chain onto the snapshot ({} gaps, {} snapshots loaded, \
             {} orders placed before the book was lost)",
            run.engine_stats.gaps, run.engine_stats.snapshots, run.order_stats.orders_placed
        );
    }
    "the book synced but no order was placed (check the risk limits and sizes)".to_string()
}
