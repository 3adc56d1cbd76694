//! Venue check-ins (SPEC.md §12) in the simulated city: who scans the QR code
//! at a venue, the venues' real entry codes and owners' trace secrets, the
//! authority's traces of a diagnosed user's check-ins through the gateway, the
//! download of warning batches from a relay, and the ground truth the venue
//! warnings are judged against.
//!
//! Ground truth: a checked-in visit is *exposed* when it overlaps in time, at
//! the same venue, a stay the authority traced. It is in the *aerosol window*
//! when it does not overlap the stay but overlaps the extension Corona-Warn-App
//! adds after it (`min(stay, 30 min)`, SPEC.md §12.7): the rule warns those on
//! purpose. Any other visit of the same venue and day is *another time*: a
//! venue warning there is a false alarm, as is one with no traced venue at all.

use std::collections::{HashMap, HashSet};

use rand::Rng;
use traceless_protocol::venue::{create_venue, CreatedVenue, PreTrace, VenueDescription};
use traceless_protocol::Clock;

use crate::epidemic::{Outbreak, DAY_S};
use crate::http;
use crate::mobility::{day_plan, Place};
use crate::nodes::{Nodes, ORIGIN};
use crate::population::{PersonId, Population};
use crate::scenario::Scenario;
use crate::seed::{rng, Stream};

/// Where the posters' QR codes point (the payload travels after `#`).
pub const ENTRY_BASE_URL: &str = "https://checkin.traceless.example/c";

/// The transmission risk level the authority gives every trace: 5 weighs 1.0
/// (SPEC.md §12.7), so a phone's weighted minutes are its overlap minutes and
/// it is high risk at 10 minutes of overlap with the extended stay.
pub const TRACE_RISK_LEVEL: u32 = 5;

/// The message warned visitors read.
pub const TRACE_MESSAGE: &str = "A person who tested positive was here while you were.";

/// One visit of a venue (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stay {
    /// Who.
    pub person: PersonId,
    /// Which venue.
    pub venue: u32,
    /// Arrival.
    pub start: u64,
    /// Departure.
    pub end: u64,
}

/// Whether `p` scans venue codes: an app user, drawn once from the seed.
pub fn adopts(s: &Scenario, pop: &Population, p: PersonId) -> bool {
    pop.people[p as usize].app
        && s.app.checkin_adoption > 0.0
        && rng(s.seed, Stream::CheckIn, &[u64::from(p)]).gen_bool(s.app.checkin_adoption)
}

/// The venue visits of a day plan (seconds after midnight) as [`Stay`]s.
pub fn stays_of(presence: &[crate::mobility::Presence], day_start: u64) -> Vec<Stay> {
    presence
        .iter()
        .filter_map(|pr| match pr.place {
            Place::Venue(v) => Some(Stay {
                person: pr.person,
                venue: v,
                start: day_start + u64::from(pr.start),
                end: day_start + u64::from(pr.end),
            }),
            _ => None,
        })
        .collect()
}

/// The check-in world, known before the phones run: every venue visit of the
/// simulated period and who would be traced.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Every venue visit, by everyone (what a paper register would hold).
    pub stays: Vec<Stay>,
    /// Who scans codes.
    pub adopters: HashSet<PersonId>,
    /// Adopters who visit a venue on a day a planned case (an uploader who
    /// checks in) visits it before uploading: the phones a trace can reach.
    pub reachable: HashSet<PersonId>,
    /// Of them, those whose visit overlaps the case's.
    pub planned_exposed: HashSet<PersonId>,
}

impl World {
    /// Every venue visit of the period, and who a trace could reach.
    pub fn build(s: &Scenario, pop: &Population, o: &Outbreak, before_onset: u32) -> World {
        let day0 = u64::from(s.start_day) * DAY_S;
        let mut stays = Vec::new();
        for d in 0..s.days {
            let plan = day_plan(s, pop, d, &|p| o.isolating(s, p, d));
            stays.extend(stays_of(&plan.presence, day0 + u64::from(d) * DAY_S));
        }
        let adopters: HashSet<PersonId> = (0..pop.len() as PersonId)
            .filter(|&p| adopts(s, pop, p))
            .collect();
        // Each uploading adopter's upload window: [first day, upload time).
        let windows: HashMap<PersonId, (u64, u64)> = o
            .uploads
            .iter()
            .filter(|u| adopters.contains(&u.person))
            .map(|u| {
                let first = day0 + u64::from(*u.window(before_onset).start()) * DAY_S;
                (u.person, (first, day0 + u.at))
            })
            .collect();
        let cases: Vec<Stay> = stays
            .iter()
            .filter(|st| {
                windows
                    .get(&st.person)
                    .is_some_and(|&(first, at)| st.start >= first && st.end <= at)
            })
            .copied()
            .collect();
        let by_venue_day: HashMap<(u32, u64), Vec<Stay>> =
            cases.iter().fold(HashMap::new(), |mut m, c| {
                m.entry((c.venue, c.start / DAY_S)).or_default().push(*c);
                m
            });
        let mut reachable = HashSet::new();
        let mut planned_exposed = HashSet::new();
        for st in &stays {
            if !adopters.contains(&st.person) {
                continue;
            }
            let Some(cs) = by_venue_day.get(&(st.venue, st.start / DAY_S)) else {
                continue;
            };
            for c in cs.iter().filter(|c| c.person != st.person) {
                reachable.insert(st.person);
                if overlap(st, c) > 0 {
                    planned_exposed.insert(st.person);
                }
            }
        }
        World {
            stays,
            adopters,
            reachable,
            planned_exposed,
        }
    }
}

/// Seconds two stays share.
pub fn overlap(a: &Stay, b: &Stay) -> u64 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// The city's venues that have an entry code: created for the authority's
/// venue key the first time an adopter visits, each with the trace secret its
/// simulated owner keeps.
pub struct Registry {
    authority: [u8; 32],
    venues: HashMap<u32, Venue>,
    /// Codes refused at creation (a bug if not 0).
    pub errors: u64,
}

/// One venue's code and its owner's secret.
pub struct Venue {
    /// What the poster and the owner hold.
    pub created: CreatedVenue,
    /// The URL in the poster's QR code.
    pub url: String,
}

/// The name on venue `v`'s poster: its first 16 bytes are unique to it.
pub fn venue_name(v: u32) -> String {
    format!("Venue {v:06} of the simulated city")
}

/// Venue `v`'s address: its first 16 bytes are unique to it.
pub fn venue_address(v: u32) -> String {
    format!("{v:06} Market Street, Simtown")
}

impl Registry {
    /// No venue yet, for the authority whose venue key (the gateway's seal key)
    /// is `authority`.
    pub fn new(authority: [u8; 32]) -> Self {
        Registry {
            authority,
            venues: HashMap::new(),
            errors: 0,
        }
    }

    /// Venue `v`'s code, created on first use.
    pub fn ensure(&mut self, v: u32) -> Option<&Venue> {
        if !self.venues.contains_key(&v) {
            let d = VenueDescription::new(&venue_name(v), &venue_address(v), 3, 30, 120);
            match create_venue(&d, &self.authority) {
                Ok(created) => {
                    let url = created.entry.to_url(ENTRY_BASE_URL);
                    self.venues.insert(v, Venue { created, url });
                }
                Err(_) => {
                    self.errors += 1;
                    return None;
                }
            }
        }
        self.venues.get(&v)
    }

    /// Venue `v`, if it has a code.
    pub fn get(&self, v: u32) -> Option<&Venue> {
        self.venues.get(&v)
    }

    /// Venues with a code.
    pub fn len(&self) -> usize {
        self.venues.len()
    }

    /// Whether no venue has a code.
    pub fn is_empty(&self) -> bool {
        self.venues.is_empty()
    }

    /// Every venue with a code.
    pub fn all(&self) -> impl Iterator<Item = &Venue> {
        self.venues.values()
    }
}

/// A case stay the authority traced.
#[derive(Clone, Debug)]
pub struct Traced {
    /// The case's stay (its own check-in).
    pub stay: Stay,
    /// Hour slots (warnings) traced.
    pub slots: usize,
    /// What the tracer was shown: description, address, room and window.
    pub view: String,
}

/// The authority traces each of a case's own check-ins `visits` (venue,
/// arrival, departure) that began on or after `from` and ended by now: the
/// owner makes the pre-trace for the stay's window with the trace secret, it
/// travels as bytes, and the gateway completes and queues it
/// (`Core::trace_venue`) for the next period boundary. Returns the traces and
/// how many were refused.
pub fn trace_case(
    nodes: &Nodes,
    registry: &Registry,
    case: PersonId,
    visits: &[(u32, u64, u64)],
    from: u64,
) -> (Vec<Traced>, usize) {
    let now = nodes.clock.now();
    let mut out = Vec::new();
    let mut refused = 0;
    for &(venue, start, end) in visits {
        if start < from || end > now {
            continue;
        }
        let Some(v) = registry.get(venue) else {
            refused += 1;
            continue;
        };
        let traced = v
            .created
            .trace_secret
            .pre_trace(start, end, now)
            .map_err(|e| e.to_string())
            .and_then(|pre| PreTrace::decode(&pre.encode()).map_err(|e| e.to_string()))
            .and_then(|pre| {
                nodes
                    .gateway
                    .core
                    .trace_venue(&pre, TRACE_MESSAGE, TRACE_RISK_LEVEL)
                    .map_err(|e| e.to_string())
            });
        match traced {
            Ok((view, slots)) => out.push(Traced {
                stay: Stay {
                    person: case,
                    venue,
                    start,
                    end,
                },
                slots,
                view: format!(
                    "{} | {} | {} | {}-{}",
                    view.description, view.address, view.room, view.window_start, view.window_end
                ),
            }),
            Err(_) => refused += 1,
        }
    }
    (out, refused)
}

/// A downloaded warning batch: sequence and signed bytes.
pub type WarningDownload = (u64, Vec<u8>);

/// What one download of a relay's warnings brought.
#[derive(Debug, Default)]
pub struct Downloaded {
    /// New batches, by ascending sequence.
    pub batches: Vec<WarningDownload>,
    /// HTTP bytes received on the wire.
    pub wire_bytes: u64,
    /// Of them, the list's (`GET /v1/warnings?origin=&after=`: the batches above the cursor).
    pub list_bytes: u64,
    /// Every response body (what a network observer sees).
    pub bodies: Vec<Vec<u8>>,
}

/// Lists a relay's warning batches above `cursor` (`GET
/// /v1/warnings?origin=&after=`) and downloads them by ascending sequence
/// (moving the cursor on), as the host client does.
pub fn download_warnings(
    addr: std::net::SocketAddr,
    cursor: &mut u64,
) -> Result<Downloaded, http::HttpError> {
    let list = http::request(
        addr,
        "GET",
        &format!("/v1/warnings?origin={ORIGIN}&after={cursor}"),
        b"",
    )?;
    let list_bytes = list.wire_bytes as u64;
    let mut bytes = list_bytes;
    let mut entries: Vec<(u64, String)> = list
        .try_json()
        .and_then(|j| {
            j["warnings"].as_array().map(|a| {
                a.iter()
                    .filter_map(|e| Some((e["sequence"].as_u64()?, e["url"].as_str()?.to_owned())))
                    .collect()
            })
        })
        .unwrap_or_default();
    entries.sort();
    let mut bodies = vec![list.body];
    let mut out = Vec::new();
    for (seq, url) in entries {
        if seq <= *cursor {
            continue;
        }
        let b = http::request(addr, "GET", &url, b"")?;
        bytes += b.wire_bytes as u64;
        if b.status == 200 {
            *cursor = seq;
            out.push((seq, b.body.clone()));
        }
        bodies.push(b.body);
    }
    Ok(Downloaded {
        batches: out,
        wire_bytes: bytes,
        list_bytes,
        bodies,
    })
}

/// How each checked-in phone relates to the traced stays (ground truth).
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// Checked-in phones with a visit overlapping a traced stay of another person.
    pub exposed: HashSet<PersonId>,
    /// Checked-in phones not exposed, with a visit in a stay's aerosol window.
    pub aerosol_only: HashSet<PersonId>,
    /// Checked-in phones neither of the above, at a traced venue on a traced day.
    pub other_time: HashSet<PersonId>,
    /// Everyone (app or not, checked in or not) whose visit overlaps a traced stay.
    pub exposed_all_people: HashSet<PersonId>,
}

/// The extension Corona-Warn-App adds after a traced stay (SPEC.md §12.7).
fn aerosol_end(c: &Stay) -> u64 {
    c.end + (c.end - c.start).min(1800)
}

/// Classifies every phone's own check-ins (`visits[person]`) and every visit
/// of the world (`stays`) against the stays the authority traced.
pub fn truth(
    traced: &[Stay],
    visits: &HashMap<PersonId, Vec<(u32, u64, u64)>>,
    stays: &[Stay],
) -> Truth {
    let by_venue_day: HashMap<(u32, u64), Vec<Stay>> =
        traced.iter().fold(HashMap::new(), |mut m, c| {
            m.entry((c.venue, c.start / DAY_S)).or_default().push(*c);
            m
        });
    let near = |st: &Stay| -> Vec<Stay> {
        by_venue_day
            .get(&(st.venue, st.start / DAY_S))
            .map(|cs| {
                cs.iter()
                    .filter(|c| c.person != st.person)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut t = Truth::default();
    for st in stays {
        if near(st).iter().any(|c| overlap(st, c) > 0) {
            t.exposed_all_people.insert(st.person);
        }
    }
    let mut aerosol = HashSet::new();
    let mut other = HashSet::new();
    for (&person, list) in visits {
        for &(venue, start, end) in list {
            let st = Stay {
                person,
                venue,
                start,
                end,
            };
            for c in near(&st) {
                let extended = Stay {
                    start: c.end,
                    end: aerosol_end(&c),
                    ..c
                };
                if overlap(&st, &c) > 0 {
                    t.exposed.insert(person);
                } else if overlap(&st, &extended) > 0 {
                    aerosol.insert(person);
                } else {
                    other.insert(person);
                }
            }
        }
    }
    t.aerosol_only = aerosol.difference(&t.exposed).copied().collect();
    t.other_time = other
        .into_iter()
        .filter(|p| !t.exposed.contains(p) && !t.aerosol_only.contains(p))
        .collect();
    t
}

/// Byte runs that would name a venue: 16-byte prefixes of its name and
/// address, every whole 16-byte run of its QR payload, and the first 16 bytes
/// of its master public key, its `preid` and its URL fragment.
#[derive(Clone, Debug, Default)]
pub struct Needles(HashSet<[u8; 16]>);

/// The first 16 bytes of `b`, if it has them.
fn run16(b: &[u8]) -> Option<[u8; 16]> {
    b.get(..16)?.try_into().ok()
}

impl Needles {
    /// The needles of every venue in `registry`.
    pub fn of(registry: &Registry) -> Self {
        let mut set = HashSet::new();
        for v in registry.all() {
            let e = &v.created.entry;
            let payload = e.payload();
            let nonces = traceless_protocol::venue::VenueNonces::derive(payload);
            let preid = traceless_protocol::venue::preid(payload, &nonces);
            let fragment = v.url.split_once('#').map_or("", |f| f.1);
            set.extend(
                payload
                    .chunks_exact(16)
                    .filter_map(run16)
                    .chain(run16(e.venue.description.as_bytes()))
                    .chain(run16(e.venue.address.as_bytes()))
                    .chain(run16(&e.master_public.to_bytes()))
                    .chain(run16(&preid))
                    .chain(run16(fragment.as_bytes())),
            );
        }
        Needles(set)
    }

    /// How many needles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Positions in `hay` where a needle starts.
    pub fn hits(&self, hay: &[u8]) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        hay.windows(16)
            .filter(|w| <[u8; 16]>::try_from(*w).is_ok_and(|k| self.0.contains(&k)))
            .count() as u64
    }

    /// Needle positions in every file under `dir`, and the bytes read.
    pub fn scan_dir(&self, dir: &std::path::Path) -> (u64, u64) {
        let (mut hits, mut bytes) = (0, 0);
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(b) = std::fs::read(&p) {
                    bytes += b.len() as u64;
                    hits += self.hits(&b);
                }
            }
        }
        (hits, bytes)
    }
}

/// Scans `dir` for `needles`, then checks the scanner: a file holding
/// `control` (a venue's payload) in clear, planted in `dir`, must be found.
/// Returns (hits, bytes scanned, control found).
pub fn scan_with_control(
    needles: &Needles,
    dir: &std::path::Path,
    control: &[u8],
) -> (u64, u64, bool) {
    let (hits, bytes) = needles.scan_dir(dir);
    let planted = dir.join("planted-control");
    let found = std::fs::write(&planted, control).is_ok() && needles.scan_dir(dir).0 > hits;
    let _ = std::fs::remove_file(&planted);
    (hits, bytes, found)
}
