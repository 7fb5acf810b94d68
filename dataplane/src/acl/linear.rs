//! The reference classifier: a scan in priority order.

use super::{Key, Rule, NO_MATCH};

/// Index of the first rule matching `k`, or [`NO_MATCH`].
pub fn classify(rules: &[Rule], k: &Key) -> u32 {
    rules.iter().position(|r| r.matches(k)).map_or(NO_MATCH, |i| i as u32)
}
