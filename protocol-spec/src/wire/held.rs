//! The `held` query of `GET /v1/filter-parts/{origin}` (SPEC.md §6.1): per day,
//! the revision up to which a phone holds that day filter's parts, so that one
//! request fetches the new parts of every day instead of a listing and a
//! request per changed day.

use std::collections::BTreeMap;

use crate::WireError;

/// Most days a `held` query names: a phone keeps 15 days of filters (§5.8).
pub const MAX_HELD_DAYS: usize = 32;

/// Per day, the highest revision `r` such that parts `1..=r` are held; a day
/// not named counts as 0 (nothing held). Written `day.r,day.r,…` in ascending
/// day order, days with `r = 0` left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldRevisions(BTreeMap<u32, u64>);

impl HeldRevisions {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `1..=revision` of `day` are held (the higher of this and
    /// what was recorded).
    pub fn hold(&mut self, day: u32, revision: u64) {
        if revision > 0 {
            let r = self.0.entry(day).or_default();
            *r = (*r).max(revision);
        }
    }

    /// The revision held of `day` (0: none).
    pub fn of(&self, day: u32) -> u64 {
        self.0.get(&day).copied().unwrap_or(0)
    }

    /// The query value, `day.r,day.r,…` (empty if nothing is held).
    pub fn query(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(d, r)| format!("{d}.{r}")).collect();
        pairs.join(",")
    }

    /// Parses a query value: at most [`MAX_HELD_DAYS`] pairs `day.r`, a day
    /// of 1 to 9 decimal digits and a revision of 1 to 19, in any order (a day
    /// named twice holds the higher `r`; `r = 0` holds nothing). Anything else
    /// is `InvalidField held`. Every value of that shape means something, so
    /// that no well-formed query is refused.
    pub fn parse(value: &str) -> Result<Self, WireError> {
        let invalid = |reason: String| WireError::InvalidField {
            field: "held",
            reason,
        };
        let mut held = HeldRevisions::new();
        if value.is_empty() {
            return Ok(held);
        }
        for (i, pair) in value.split(',').enumerate() {
            if i >= MAX_HELD_DAYS {
                return Err(invalid(format!("more than {MAX_HELD_DAYS} days")));
            }
            let parsed = pair
                .split_once('.')
                .and_then(|(d, r)| Some((digits(d, 9)?, digits(r, 19)?)));
            let Some((day, revision)) = parsed else {
                return Err(invalid(format!("{pair:?} is not day.revision")));
            };
            held.hold(day, revision);
        }
        Ok(held)
    }
}

/// A decimal number of 1 to `max` ASCII digits (9 always fit a `u32`, 19 a `u64`).
fn digits<T: std::str::FromStr>(s: &str, max: usize) -> Option<T> {
    let shaped = (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    shaped.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_as_itself() {
        let mut held = HeldRevisions::new();
        held.hold(20_400, 3);
        held.hold(20_398, 1);
        held.hold(20_400, 2);
        held.hold(20_401, 0);
        assert_eq!(held.query(), "20398.1,20400.3");
        assert_eq!(HeldRevisions::parse(&held.query()), Ok(held.clone()));
        assert_eq!((held.of(20_400), held.of(20_401)), (3, 0));
        assert_eq!(HeldRevisions::parse(""), Ok(HeldRevisions::new()));
    }

    #[test]
    fn any_order_repeats_and_zeros_mean_what_they_hold() {
        let mut want = HeldRevisions::new();
        want.hold(20_400, 3);
        want.hold(20_401, 1);
        for query in [
            "20401.1,20400.3",
            "20400.1,20401.1,20400.3",
            "020400.03,20401.1,7.0",
        ] {
            assert_eq!(HeldRevisions::parse(query), Ok(want.clone()), "{query}");
        }
        let widest = "999999999.9999999999999999999";
        assert_eq!(
            HeldRevisions::parse(widest).map(|h| h.of(999_999_999)),
            Ok(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn every_other_shape_is_refused() {
        let too_many: Vec<String> = (0..=MAX_HELD_DAYS)
            .map(|d| format!("{}.1", d + 1))
            .collect();
        for bad in [
            "20400",
            "20400.",
            ".3",
            "20400.3,",
            ",20400.3",
            "+20400.3",
            "20400.-1",
            "20400.3.1",
            "1234567890.1",
            "1.12345678901234567890",
            "20400.3;20401.1",
            "20400.3 ",
            &too_many.join(","),
        ] {
            assert!(
                matches!(
                    HeldRevisions::parse(bad),
                    Err(WireError::InvalidField { field: "held", .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}
