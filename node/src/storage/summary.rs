//! What the store holds, in figures, for `/`, `/metrics` and `/v1/origins`:
//! per UTC day, per origin and in total. [`Tally`] keeps them up to date on
//! every write (the store updates it under its write lock, right after each
//! commit) and is rebuilt by one scan at open, so a request costs no scan of
//! the stored batches. [`StoreSummary::scan`] computes the same figures the
//! straightforward way, as the oracle the tally is tested against.
//!
//! Visibility depends on the time asked about: the tally keeps the batches not
//! yet seen visible by key (`visible_from`), and forgets each one the first time
//! a summary is asked for at or after its `visible_from` (the node's clock does
//! not go back, and a batch once served stays served until retention).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::records::{BatchMeta, ExpiredBatch, FilterMeta};
use super::traits::{BatchStore, FilterStore, GatewayStore, RetentionStore};
use super::StorageError;

/// Per-day figures (the transparency page's table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaySummary {
    /// Batches served that hold keys of the day.
    pub batches: u64,
    /// Keys served.
    pub keys: u64,
    /// Keys stored but still under embargo.
    pub embargoed_keys: u64,
    /// When the last of the day's keys will be deleted.
    pub deleted_by: u64,
    /// Parts of day filters (filter form) held, of every authority.
    pub filters: u64,
    /// Entries in those filters.
    pub filter_entries: u64,
}

/// The store in figures at one time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSummary {
    /// Figures per UTC day.
    pub days: BTreeMap<u32, DaySummary>,
    /// Per origin, the highest sequence number served (visible); origins with
    /// nothing visible yet are absent.
    pub origins: BTreeMap<String, u64>,
    /// Batches stored (visible or not).
    pub batches: u64,
    /// Keys stored (visible or not).
    pub keys: u64,
    /// Entries in the deletion log.
    pub deletion_log_entries: u64,
    /// Parts of day filters stored.
    pub filters: u64,
    /// Entries in the stored day filters.
    pub filter_entries: u64,
    /// Filter-form entries a gateway holds (published or still embargoed).
    pub gateway_filter_entries: u64,
}

impl StoreSummary {
    /// Keys served.
    pub fn served_keys(&self) -> u64 {
        self.days.values().map(|d| d.keys).sum()
    }

    /// Keys in stored batches held back by the embargo (what `/metrics` counts
    /// as `traceless_embargoed_keys`). A gateway's publication pool is not
    /// counted: its size, read at each boundary, would tell how many keys the
    /// last period's uploads brought (SPEC.md §6.4).
    pub fn embargoed_keys(&self) -> u64 {
        self.days.values().map(|d| d.embargoed_keys).sum::<u64>()
    }

    /// The figures computed by scanning everything (the oracle of [`Tally`]).
    pub fn scan<S>(store: &S, now: u64) -> Result<Self, StorageError>
    where
        S: BatchStore + FilterStore + GatewayStore + RetentionStore + ?Sized,
    {
        let mut s = StoreSummary::default();
        for m in store.all_batches()? {
            s.batches += 1;
            s.keys += m.key_count();
            let visible = m.is_visible(now);
            for b in &m.days {
                let d = s.days.entry(b.day).or_default();
                if visible {
                    d.batches += 1;
                    d.keys += b.key_count;
                } else {
                    d.embargoed_keys += b.key_count;
                }
                d.deleted_by = d.deleted_by.max(b.expires_at);
            }
            if visible {
                let latest = s.origins.entry(m.origin).or_default();
                *latest = (*latest).max(m.sequence);
            }
        }
        for f in store.all_filters()? {
            s.filters += 1;
            s.filter_entries += f.entries;
            let d = s.days.entry(f.day).or_default();
            d.filters += 1;
            d.filter_entries += f.entries;
            d.deleted_by = d.deleted_by.max(f.expires_at());
        }
        s.deletion_log_entries = store.deletion_log()?.len() as u64;
        s.gateway_filter_entries = store.filter_entry_days()?.iter().map(|d| d.1).sum();
        Ok(s)
    }
}

/// One day's stored batches.
#[derive(Clone, Debug, Default)]
struct DayTally {
    batches: u64,
    keys: u64,
    /// `expires_at` → batches of the day expiring then (the largest is the
    /// day's deletion time; retention removes the smallest first).
    expiries: BTreeMap<u64, u64>,
}

/// The maintained figures of a store (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    days: BTreeMap<u32, DayTally>,
    /// Stored sequence numbers per origin.
    sequences: BTreeMap<String, BTreeSet<u64>>,
    /// Batches not yet seen visible: (visible_from, origin, sequence) → their
    /// (day, keys).
    unseen: BTreeMap<(u64, String, u64), Vec<(u32, u64)>>,
    /// (origin, day, revision) → (entries, expires_at) of the stored parts of
    /// day filters.
    filters: BTreeMap<(String, u32, u64), (u64, u64)>,
    /// Filter-form entries per day (gateway).
    gateway_entries: BTreeMap<u32, u64>,
    deletion_log: u64,
}

impl Tally {
    /// The tally of what `store` holds (one scan; done at open).
    pub fn rebuild<S>(store: &S) -> Result<Self, StorageError>
    where
        S: BatchStore + FilterStore + GatewayStore + RetentionStore + ?Sized,
    {
        let mut t = Tally::default();
        for m in store.all_batches()? {
            t.batch_added(&m);
        }
        for f in store.all_filters()? {
            t.filter_stored(&f);
        }
        for (day, n) in store.filter_entry_days()? {
            t.gateway_entries.insert(day, n);
        }
        t.deletion_log = store.deletion_log()?.len() as u64;
        Ok(t)
    }

    /// A new batch was committed.
    pub fn batch_added(&mut self, m: &BatchMeta) {
        for b in &m.days {
            let d = self.days.entry(b.day).or_default();
            d.batches += 1;
            d.keys += b.key_count;
            *d.expiries.entry(b.expires_at).or_default() += 1;
        }
        self.sequences
            .entry(m.origin.clone())
            .or_default()
            .insert(m.sequence);
        self.unseen.insert(
            (m.visible_from, m.origin.clone(), m.sequence),
            m.days.iter().map(|d| (d.day, d.key_count)).collect(),
        );
    }

    /// Retention deleted some days of a stored batch, or all of them.
    pub fn batch_pruned(&mut self, e: &ExpiredBatch) {
        let m = &e.meta;
        for b in &e.days {
            if let Some(d) = self.days.get_mut(&b.day) {
                d.batches = d.batches.saturating_sub(1);
                d.keys = d.keys.saturating_sub(b.key_count);
                if let Some(n) = d.expiries.get_mut(&b.expires_at) {
                    *n -= 1;
                    if *n == 0 {
                        d.expiries.remove(&b.expires_at);
                    }
                }
                if d.batches == 0 {
                    self.days.remove(&b.day);
                }
            }
        }
        let unseen = (m.visible_from, m.origin.clone(), m.sequence);
        match &e.kept {
            Some(kept) => {
                if let Some(days) = self.unseen.get_mut(&unseen) {
                    days.retain(|(day, _)| kept.meta.days.iter().any(|d| d.day == *day));
                }
            }
            None => {
                if let Some(s) = self.sequences.get_mut(&m.origin) {
                    s.remove(&m.sequence);
                    if s.is_empty() {
                        self.sequences.remove(&m.origin);
                    }
                }
                self.unseen.remove(&unseen);
            }
        }
    }

    /// A part of a day filter was stored.
    pub fn filter_stored(&mut self, f: &FilterMeta) {
        self.filters.insert(
            (f.origin.clone(), f.day, f.revision),
            (f.entries, f.expires_at()),
        );
    }

    /// A part of a day filter was deleted (retention).
    pub fn filter_removed(&mut self, f: &FilterMeta) {
        self.filters.remove(&(f.origin.clone(), f.day, f.revision));
    }

    /// Filter-form entries were added to a day (gateway).
    pub fn entries_added(&mut self, day: u32, n: u64) {
        *self.gateway_entries.entry(day).or_default() += n;
    }

    /// A day's filter-form entries were deleted (retention).
    pub fn entries_removed(&mut self, day: u32) {
        self.gateway_entries.remove(&day);
    }

    /// An entry was appended to the deletion log.
    pub fn log_appended(&mut self) {
        self.deletion_log += 1;
    }

    /// Entries in the deletion log.
    pub fn deletion_log_len(&self) -> u64 {
        self.deletion_log
    }

    /// The figures at `now`. Costs the batches still embargoed and, per origin,
    /// the walk down from its highest sequence past them; never a scan.
    pub fn at(&mut self, now: u64) -> StoreSummary {
        // Forget what is visible by now (see the module docs).
        let still = self
            .unseen
            .split_off(&(now.saturating_add(1), String::new(), 0));
        self.unseen = still;
        let embargoed: HashSet<(&str, u64)> = self
            .unseen
            .keys()
            .map(|(_, origin, seq)| (origin.as_str(), *seq))
            .collect();
        let mut s = StoreSummary {
            deletion_log_entries: self.deletion_log,
            gateway_filter_entries: self.gateway_entries.values().sum(),
            ..Default::default()
        };
        s.batches = self.sequences.values().map(|q| q.len() as u64).sum();
        for (day, t) in &self.days {
            s.keys += t.keys;
            s.days.insert(
                *day,
                DaySummary {
                    batches: t.batches,
                    keys: t.keys,
                    deleted_by: t.expiries.keys().next_back().copied().unwrap_or(0),
                    ..Default::default()
                },
            );
        }
        for &(day, keys) in self.unseen.values().flatten() {
            if let Some(d) = s.days.get_mut(&day) {
                d.batches -= 1;
                d.keys -= keys;
                d.embargoed_keys += keys;
            }
        }
        for ((_, day, _), &(entries, expires_at)) in &self.filters {
            s.filters += 1;
            s.filter_entries += entries;
            let d = s.days.entry(*day).or_default();
            d.filters += 1;
            d.filter_entries += entries;
            d.deleted_by = d.deleted_by.max(expires_at);
        }
        for (origin, seqs) in &self.sequences {
            if let Some(top) = seqs
                .iter()
                .rev()
                .find(|&&q| !embargoed.contains(&(origin.as_str(), q)))
            {
                s.origins.insert(origin.clone(), *top);
            }
        }
        s
    }
}
