//! The start-up gates of live trading, checked before anything touches the network, in
//! order: API keys in the environment, the explicit confirmation
//! (`--i-understand-live-trading` or `live.i_understand_live_trading`), a set
//! `live.base_target`. `main` runs them first (`modes::live::preflight`), so a refusal is
//! one line and exit status 2. Also the masked API key the banner shows.
//!
//! Never: reads the secret anywhere but `Credentials::from_env`, prints or logs it, or
//! opens a connection.

use crate::config::Config;
use crate::types::parse_atoms;
use crate::venue::binance::{Credentials, API_KEY_LEN_MAX};

/// The start-up gates, in order: keys, confirmation, base target. Errors say what to do.
pub fn gates(config: &Config, confirmed: bool) -> anyhow::Result<(Credentials, i64)> {
    let creds = Credentials::from_env().map_err(|e| {
        anyhow::anyhow!(
            "live trading needs API keys: {e} (a key with spot trading enabled and \
             IP-restricted; never put keys in a file in the repository)"
        )
    })?;
    if !(confirmed || config.live.i_understand_live_trading) {
        anyhow::bail!(
            "live trading sends real orders with real money: add --i-understand-live-trading \
             (or set live.i_understand_live_trading = true) after reading \"Going live\" \
             in docs/live.md"
        );
    }
    let target = config.live.base_target.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "set live.base_target, the base balance the strategy steers toward (inventory = \
             balance − target), e.g. --set live.base_target=0.5 or MM__LIVE__BASE_TARGET=0.5; \
             usually the base balance you hold now"
        )
    })?;
    let target_atoms = parse_atoms(target.as_bytes())
        .map_err(|e| anyhow::anyhow!("live.base_target {target:?}: {e}"))?;
    Ok((creds, target_atoms))
}

/// The API key as printed: first 4 and last 4 characters (never the secret).
pub fn masked_key(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(&key[..key.len().min(API_KEY_LEN_MAX)]).into_owned();
    if text.len() <= 8 {
        return "****".to_string();
    }
    format!("{}…{}", &text[..4], &text[text.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_masked_and_short_keys_are_hidden() {
        assert_eq!(
            masked_key(b"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"),
            "vmPU…Eh8A"
        );
        assert_eq!(masked_key(b"short"), "****");
    }
}
