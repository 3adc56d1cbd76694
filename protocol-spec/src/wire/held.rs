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

    /// Parses a query value: at most [`MAX_HELD_DAYS`] pairs `day.r` of
    /// decimal integers, days strictly ascending. Anything else is
    /// `InvalidField held`, so that one query has one meaning.
    pub fn parse(value: &str) -> Result<Self, WireError> {
        let invalid = |reason: String| WireError::InvalidField {
            field: "held",
            reason,
        };
        let mut out = BTreeMap::new();
        if value.is_empty() {
            return Ok(HeldRevisions(out));
        }
        for (i, pair) in value.split(',').enumerate() {
            if i >= MAX_HELD_DAYS {
                return Err(invalid(format!("more than {MAX_HELD_DAYS} days")));
            }
            let parsed = pair
                .split_once('.')
                .and_then(|(d, r)| Some((decimal::<u32>(d)?, decimal::<u64>(r)?)));
            let Some((day, revision)) = parsed else {
                return Err(invalid(format!("{pair:?} is not day.revision")));
            };
            if revision == 0 || out.last_key_value().is_some_and(|(&last, _)| last >= day) {
                return Err(invalid(format!(
                    "{pair:?}: days must ascend and revisions be at least 1"
                )));
            }
            out.insert(day, revision);
        }
        Ok(HeldRevisions(out))
    }
}

/// A decimal integer without sign or leading zeros (one spelling per value).
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical = s == "0" || (!s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()));
    canonical.then(|| s.parse().ok()).flatten()
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
    fn every_other_spelling_is_refused() {
        let too_many: Vec<String> = (0..=MAX_HELD_DAYS)
            .map(|d| format!("{}.1", d + 1))
            .collect();
        for bad in [
            "20400",
            "20400.",
            ".3",
            "20400.3,",
            "20400.03",
            "+20400.3",
            "20400.-1",
            "20400.0",
            "20401.1,20400.1",
            "20400.1,20400.2",
            "4294967296.1",
            "20400.3;20401.1",
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
