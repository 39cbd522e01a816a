//! Purchase amounts with a realistic spread, in integer cents.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Mostly small tickets, some mid-size, a few large; one in ten a whole amount.
pub(super) fn purchase(rng: &mut ChaCha8Rng) -> i64 {
    let dollars = match rng.random_range(0..100) {
        0..60 => rng.random_range(5..80),
        60..90 => rng.random_range(80..400),
        _ => rng.random_range(400..2_500),
    };
    let cents = if rng.random_range(0..10) == 0 {
        0
    } else {
        rng.random_range(0..100)
    };
    dollars * 100 + cents
}
