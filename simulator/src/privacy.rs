//! The sniffer experiment: an adversary puts K Bluetooth sniffers at fixed public
//! places (transit platforms, workplace entrances, venues), logs every advertisement they hear, then
//! downloads the published keys like any phone, derives their tokens and links
//! the sightings of each key. A diagnosed user's path is *linked* when one
//! published unit ties sightings at two or more sniffed places together. In key
//! form the unit is a whole-day key. In filter form the adversary can test each
//! logged token against the day filters, but a hit says only "some diagnosed
//! person, at this interval": the unit is one token (about ten minutes).

use std::collections::{HashMap, HashSet};

use rand::Rng;
use serde::Serialize;
use traceless_protocol::filter::probe_filter;
use traceless_protocol::{
    interval_number, DayFilter, Observation, Rpi, SignedFilter, TokenDeriver, TrustList,
};

use crate::mobility::Place;
use crate::phones::Payload;
use crate::population::{PersonId, Population};
use crate::scenario::Scenario;
use crate::seed::{rng, Stream};

/// Where `k` sniffers stand: drawn in turn from transit platforms, workplaces and
/// venues. The first `k` of one fixed order, so more sniffers only add places.
pub fn place_sniffers(s: &Scenario, pop: &Population, k: u32) -> HashSet<Place> {
    let mut r = rng(s.seed, Stream::Sniffers, &[]);
    let public = u64::from(pop.venues) + u64::from(pop.transit_lines) + pop.workplaces.len() as u64;
    let want = u64::from(k).min(public);
    let mut out = HashSet::new();
    for _ in 0..10_000_000 {
        if out.len() as u64 >= want {
            break;
        }
        let place = match r.gen_range(0..3) {
            0 => Place::Transit(r.gen_range(0..pop.transit_lines)),
            1 if !pop.workplaces.is_empty() => {
                Place::Work(r.gen_range(0..pop.workplaces.len() as u32))
            }
            _ => Place::Venue(r.gen_range(0..pop.venues)),
        };
        out.insert(place);
    }
    out
}

/// One advertisement a sniffer logged.
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    /// Where.
    pub place: Place,
    /// Unix seconds.
    pub at: u64,
    /// What was heard.
    pub payload: Payload,
    /// Ground truth: whose phone it was (the adversary does not see this).
    pub owner: PersonId,
}

/// What the adversary achieved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrivacyResult {
    /// Sniffers placed.
    pub sniffers: u32,
    /// Diagnosed users who uploaded.
    pub uploaders: usize,
    /// Uploaders with at least one published unit (key, or token in a filter)
    /// heard by a sniffer.
    pub seen: usize,
    /// Uploaders with one published unit that links two or more sniffed places.
    pub linked: usize,
    /// `linked / uploaders`.
    pub linked_fraction: f64,
    /// Mean distinct sniffed places per linked uploader.
    pub mean_places_linked: f64,
    /// Publication form evaluated.
    pub form: String,
}

/// The logs of sniffed places, by heard RPI.
fn heard_at(logs: &[Logged], sniffed: &HashSet<Place>) -> HashMap<[u8; 16], Vec<usize>> {
    let mut heard: HashMap<[u8; 16], Vec<usize>> = HashMap::new();
    for (i, l) in logs.iter().enumerate() {
        if sniffed.contains(&l.place) {
            let mut rpi = [0u8; 16];
            rpi.copy_from_slice(&l.payload[..16]);
            heard.entry(rpi).or_default().push(i);
        }
    }
    heard
}

/// Links the sniffer logs with every published key in `batches` (key form).
pub fn link_keys(
    logs: &[Logged],
    sniffed: &HashSet<Place>,
    batches: &[Vec<u8>],
    trust: &TrustList,
    now: u64,
    uploaders: usize,
) -> PrivacyResult {
    let heard = heard_at(logs, sniffed);
    let mut deriver = TokenDeriver::new();
    // Places per published key, and whose key it was (ground truth, for scoring).
    let mut per_unit: Vec<(PersonId, HashSet<Place>)> = Vec::new();
    for bytes in batches {
        for k in &crate::run::batch_keys(bytes, trust, now) {
            let mut places = HashSet::new();
            let mut owner = None;
            for block in deriver.rpis(&k.tek, k.rolling_start, k.rolling_period) {
                let mut rpi = [0u8; 16];
                rpi.copy_from_slice(&block[..]);
                for &i in heard.get(&rpi).into_iter().flatten() {
                    places.insert(logs[i].place);
                    owner = Some(logs[i].owner);
                }
            }
            if let Some(o) = owner {
                per_unit.push((o, places));
            }
        }
    }
    score(per_unit, sniffed.len() as u32, uploaders, "keys")
}

/// Links the sniffer logs with the day filters in `filters` (filter form): every
/// logged token is probed like a phone probes it; a hit links only the sightings
/// of that one token.
pub fn link_filters(
    logs: &[Logged],
    sniffed: &HashSet<Place>,
    filters: &[Vec<u8>],
    now: u64,
    uploaders: usize,
) -> PrivacyResult {
    let heard = heard_at(logs, sniffed);
    let days: Vec<DayFilter> = filters
        .iter()
        .filter_map(|b| DayFilter::decode_body(&SignedFilter::decode(b).ok()?.body, now).ok())
        .collect();
    let mut per_unit: Vec<(PersonId, HashSet<Place>)> = Vec::new();
    for (rpi, sightings) in &heard {
        let observations: Vec<Observation> = sightings
            .iter()
            .map(|&i| Observation {
                rpi: Rpi(*rpi),
                interval: interval_number(logs[i].at),
                attenuation_db: 0,
                duration_s: 0,
            })
            .collect();
        let hit = days
            .iter()
            .any(|f| !probe_filter(&f.filter, f.day, f.created_at, &observations).is_empty());
        if hit {
            let places = sightings.iter().map(|&i| logs[i].place).collect();
            per_unit.push((logs[sightings[0]].owner, places));
        }
    }
    score(per_unit, sniffed.len() as u32, uploaders, "filter")
}

/// Scores linkable units: an uploader is linked when one unit spans two places.
fn score(
    per_unit: Vec<(PersonId, HashSet<Place>)>,
    sniffers: u32,
    uploaders: usize,
    form: &str,
) -> PrivacyResult {
    let mut best: HashMap<PersonId, usize> = HashMap::new();
    for (o, places) in per_unit {
        let e = best.entry(o).or_default();
        *e = (*e).max(places.len());
    }
    let linked: Vec<usize> = best.values().copied().filter(|&n| n >= 2).collect();
    PrivacyResult {
        sniffers,
        uploaders,
        seen: best.len(),
        linked: linked.len(),
        linked_fraction: if uploaders == 0 {
            0.0
        } else {
            linked.len() as f64 / uploaders as f64
        },
        mean_places_linked: if linked.is_empty() {
            0.0
        } else {
            linked.iter().sum::<usize>() as f64 / linked.len() as f64
        },
        form: form.into(),
    }
}
