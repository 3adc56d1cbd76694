//! Deterministic random streams: every random choice draws from a stream named by
//! the scenario seed and a few tags (day, person, purpose), so runs are
//! reproducible whatever the thread count or the order work is done in.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Purposes of random streams, so that two uses never share one.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Stream {
    /// Building the population.
    Population = 1,
    /// A day's groups (transit cars, venue visits).
    Day = 2,
    /// One group's encounters on a day.
    Group = 3,
    /// Transmission and disease course.
    Infection = 4,
    /// Testing and upload behaviour.
    Testing = 5,
    /// Bluetooth scans of one encounter direction.
    Scan = 6,
    /// Phone-level choices (sync sample, synthetic keys).
    Phone = 7,
    /// Sniffer placement.
    Sniffers = 8,
    /// A phone's dummy-upload schedule.
    Dummy = 9,
    /// Who scans venue QR codes (check-in adoption).
    CheckIn = 10,
}

/// SplitMix64 finaliser.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The stream of `seed`, `purpose` and `tags`.
pub fn rng(seed: u64, purpose: Stream, tags: &[u64]) -> ChaCha8Rng {
    let mut h = mix(seed ^ mix(purpose as u64));
    for t in tags {
        h = mix(h ^ t.wrapping_mul(0x2545_f491_4f6c_dd1d));
    }
    ChaCha8Rng::seed_from_u64(h)
}
