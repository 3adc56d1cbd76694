//! A protocol-level phone and authority: just the key schedule, no storage or
//! transport, so end-to-end tests can drive the protocol across parties.

use traceless_protocol::*;

/// A phone as the protocol sees it: one TEK per day, tokens heard from others.
pub struct Phone {
    teks: Vec<(u32, Tek)>,
    /// What this phone heard.
    pub heard: Vec<Observation>,
}

impl Default for Phone {
    fn default() -> Self {
        Self::new()
    }
}

impl Phone {
    /// A phone with no keys yet.
    pub fn new() -> Self {
        Phone {
            teks: Vec::new(),
            heard: Vec::new(),
        }
    }

    /// The TEK of `day`, drawn on first use.
    pub fn tek(&mut self, day: u32) -> Tek {
        if let Some((_, t)) = self.teks.iter().find(|(d, _)| *d == day) {
            return t.clone();
        }
        let t = Tek::generate();
        self.teks.push((day, t.clone()));
        t
    }

    /// What the phone broadcasts at `unix` seconds.
    pub fn advertise(&mut self, unix: u64) -> Advertisement {
        let interval = interval_number(unix);
        self.tek(day_of_interval(interval))
            .advertisement(interval, Metadata::new(-10))
    }

    /// Records an advertisement heard at `unix` seconds.
    pub fn hear(&mut self, ad: Advertisement, unix: u64, attenuation_db: u8, duration_s: u16) {
        self.heard.push(Observation {
            rpi: ad.rpi,
            interval: interval_number(unix),
            attenuation_db,
            duration_s,
        });
    }

    /// The diagnosis keys of the given days (the upload after a positive test).
    pub fn diagnosis_keys(&mut self, days: &[u32], onset_day: u32) -> Vec<DiagnosisKey> {
        days.iter()
            .map(|&d| DiagnosisKey {
                tek: self.tek(d),
                rolling_start: day_start_interval(d),
                rolling_period: INTERVALS_PER_DAY,
                transmission_risk: 6,
                days_since_onset: (i64::from(d) - i64::from(onset_day)) as i8,
            })
            .collect()
    }

    /// Matches published keys and scores them, as the SDK will.
    pub fn exposure(&self, published: &[DiagnosisKey]) -> Vec<DaySummary> {
        let index = ObservationIndex::new(&self.heard);
        let matches = match_keys(&index, published);
        let windows = exposure_windows(published, &self.heard, &matches);
        RiskParameters::default().daily_summaries(&windows)
    }
}

/// A health authority with its gateway's signing key and a per-origin sequence.
pub struct Authority {
    /// The signing key.
    pub key: AuthorityKey,
    next_sequence: u64,
}

impl Authority {
    /// A new authority `origin` with key id 1.
    pub fn new(origin: &str) -> Self {
        Authority {
            key: AuthorityKey::generate(origin, 1),
            next_sequence: 1,
        }
    }

    /// The trust list entry phones and nodes configure.
    pub fn trust_list(&self) -> TrustList {
        let mut t = TrustList::new();
        t.insert(
            self.key.origin.clone(),
            self.key.key_id,
            self.key.verifying_key(),
        );
        t
    }

    /// Signs `keys` into one batch per key day, as a gateway does.
    pub fn publish(&mut self, keys: &[DiagnosisKey], now: u64) -> Vec<Vec<u8>> {
        let mut days: Vec<u32> = keys
            .iter()
            .map(|k| day_of_interval(k.rolling_start))
            .collect();
        days.sort_unstable();
        days.dedup();
        days.into_iter()
            .map(|day| {
                let batch = Batch {
                    origin: self.key.origin.clone(),
                    sequence: self.next_sequence,
                    created_at: now,
                    day,
                    keys: keys
                        .iter()
                        .filter(|k| day_of_interval(k.rolling_start) == day)
                        .cloned()
                        .collect(),
                };
                self.next_sequence += 1;
                batch.sign(&self.key).expect("origin matches").encode()
            })
            .collect()
    }
}
