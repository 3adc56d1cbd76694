//! Daily schedules and who is near whom: households at night and in the evening,
//! workplaces and schools on weekdays, transit cars at rush hour, venues in the
//! early evening. A day's encounters are a pure function of the seed, the day and
//! who is isolating, so every pass of the simulator regenerates the same ones.

use rand::Rng;
use rayon::prelude::*;

use crate::population::{shuffle, PersonId, Population};
use crate::scenario::Scenario;
use crate::seed::{rng, Stream};

/// Where an encounter happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// A household.
    Home(u32),
    /// A workplace or school.
    Work(u32),
    /// A transit line (cars of one line share a platform).
    Transit(u32),
    /// A venue.
    Venue(u32),
}

impl Place {
    /// Whether a sniffer could stand there (not inside a home).
    pub fn is_public(&self) -> bool {
        !matches!(self, Place::Home(_))
    }
}

/// Two people near each other for a while.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Encounter {
    /// One person.
    pub a: PersonId,
    /// The other.
    pub b: PersonId,
    /// Start, seconds after midnight.
    pub start: u32,
    /// Duration, seconds.
    pub duration: u32,
    /// Distance, metres (fixed for the encounter; the channel adds the noise).
    pub distance_m: f32,
    /// Where.
    pub place: Place,
}

impl Encounter {
    /// End, seconds after midnight.
    pub fn end(&self) -> u32 {
        self.start + self.duration
    }
}

/// Someone at a public place for a while (what a sniffer there could hear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    /// Who.
    pub person: PersonId,
    /// Where.
    pub place: Place,
    /// Start, seconds after midnight.
    pub start: u32,
    /// End, seconds after midnight.
    pub end: u32,
}

/// What happens on one day.
#[derive(Clone, Debug, Default)]
pub struct DayPlan {
    /// Every encounter.
    pub encounters: Vec<Encounter>,
    /// Presence at public places.
    pub presence: Vec<Presence>,
}

/// Hour in seconds.
const H: u32 = 3600;

/// Whether `day` (UTC day number) is a Saturday or Sunday.
pub fn is_weekend(day: u32) -> bool {
    // Day 0 (1970-01-01) was a Thursday; 0 = Sunday below.
    matches!((day + 4) % 7, 0 | 6)
}

/// The plan of simulated day `d`. `isolating(p)` tells whether `p` stays home.
pub fn day_plan(
    s: &Scenario,
    pop: &Population,
    d: u32,
    isolating: &(dyn Fn(PersonId) -> bool + Sync),
) -> DayPlan {
    let seed = s.seed;
    let day = u64::from(d);
    let weekend = is_weekend(s.start_day + d);
    let mut encounters: Vec<Encounter> = pop
        .households
        .par_iter()
        .enumerate()
        .flat_map_iter(|(h, members)| {
            let mut r = rng(seed, Stream::Group, &[day, 0, h as u64]);
            let mut out = Vec::new();
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    // Night (separate rooms or the same) and evening.
                    out.push(Encounter {
                        a,
                        b,
                        start: r.gen_range(0..H / 2),
                        duration: 6 * H + r.gen_range(0..H),
                        distance_m: r.gen_range(1.0..6.0),
                        place: Place::Home(h as u32),
                    });
                    let start = 20 * H + r.gen_range(0..H);
                    out.push(Encounter {
                        a,
                        b,
                        start,
                        duration: r.gen_range(H..(24 * H - start)),
                        distance_m: r.gen_range(0.8..5.0),
                        place: Place::Home(h as u32),
                    });
                }
            }
            out
        })
        .collect();
    if !weekend {
        let work: Vec<Encounter> = pop
            .workplaces
            .par_iter()
            .enumerate()
            .flat_map_iter(|(w, members)| {
                let mut r = rng(seed, Stream::Group, &[day, 1, w as u64]);
                let present: Vec<PersonId> =
                    members.iter().copied().filter(|&p| !isolating(p)).collect();
                let mut out = Vec::new();
                near_pairs(&present, s.city.colleagues_per_day, &mut r, |a, b, r| {
                    let duration = r.gen_range(10 * 60..3 * H);
                    out.push(Encounter {
                        a,
                        b,
                        start: 8 * H + r.gen_range(0..(8 * H + H / 2 - duration)),
                        duration,
                        distance_m: r.gen_range(0.8..6.0),
                        place: Place::Work(w as u32),
                    })
                });
                out
            })
            .collect();
        encounters.extend(work);
    }
    let mut presence = Vec::new();
    if !weekend {
        for (w, members) in pop.workplaces.iter().enumerate() {
            for &p in members {
                if !isolating(p) {
                    presence.push(Presence {
                        person: p,
                        place: Place::Work(w as u32),
                        start: 8 * H,
                        end: 16 * H + H / 2,
                    });
                }
            }
        }
    }
    // Transit: commuters of each line are shuffled into cars, morning and evening.
    if !weekend {
        let mut riders: Vec<Vec<PersonId>> = vec![Vec::new(); pop.transit_lines as usize];
        for (p, person) in pop.people.iter().enumerate() {
            if let Some(line) = person.transit_line {
                if !isolating(p as PersonId) {
                    riders[line as usize].push(p as PersonId);
                }
            }
        }
        let transit: Vec<(Vec<Encounter>, Vec<Presence>)> = riders
            .into_par_iter()
            .enumerate()
            .map(|(line, mut riders)| {
                let mut r = rng(seed, Stream::Group, &[day, 2, line as u64]);
                let mut out = Vec::new();
                let mut seen = Vec::new();
                for base in [7 * H + H / 2, 16 * H + H / 2] {
                    shuffle(&mut riders, &mut r);
                    let size = s.city.transit_car_size.max(2) as usize;
                    for car in riders.chunks(size) {
                        let start = base + r.gen_range(0..H / 2);
                        let duration = r.gen_range(10 * 60..40 * 60);
                        for &p in car {
                            seen.push(Presence {
                                person: p,
                                place: Place::Transit(line as u32),
                                start,
                                end: start + duration,
                            });
                        }
                        near_pairs(car, s.city.riders_near, &mut r, |a, b, r| {
                            out.push(Encounter {
                                a,
                                b,
                                start,
                                duration,
                                distance_m: r.gen_range(0.5..3.5),
                                place: Place::Transit(line as u32),
                            })
                        });
                    }
                }
                (out, seen)
            })
            .collect();
        for (e, p) in transit {
            encounters.extend(e);
            presence.extend(p);
        }
    }
    // Venues: visits 18:00-20:00, grouped by venue, near people whose visit overlaps.
    let mut r = rng(seed, Stream::Day, &[day]);
    let p_visit = if weekend {
        (s.city.venue_visit_probability * 1.5).min(1.0)
    } else {
        s.city.venue_visit_probability
    };
    let mut visits: Vec<Vec<(u32, u32, PersonId)>> = vec![Vec::new(); pop.venues as usize];
    for p in 0..pop.len() as PersonId {
        if r.gen_bool(p_visit) && !isolating(p) {
            let v = r.gen_range(0..pop.venues);
            let start = 18 * H + r.gen_range(0..3 * H / 2);
            let end = start + r.gen_range(20 * 60..90 * 60);
            visits[v as usize].push((start, end.min(20 * H), p));
        }
    }
    let venue: Vec<(Vec<Encounter>, Vec<Presence>)> = visits
        .into_par_iter()
        .enumerate()
        .map(|(v, mut vis)| {
            let mut r = rng(seed, Stream::Group, &[day, 3, v as u64]);
            vis.sort_unstable();
            let place = Place::Venue(v as u32);
            let seen = vis
                .iter()
                .map(|&(start, end, person)| Presence {
                    person,
                    place,
                    start,
                    end,
                })
                .collect();
            let mut out = Vec::new();
            for i in 0..vis.len() {
                for _ in 0..s.city.visitors_near {
                    // A neighbour in arrival order: visits that overlap in time.
                    let j = i + 1 + r.gen_range(0..8usize);
                    let Some(&(s2, e2, b)) = vis.get(j) else {
                        continue;
                    };
                    let (s1, e1, a) = vis[i];
                    let (start, end) = (s1.max(s2), e1.min(e2));
                    if end > start + 60 && a != b {
                        out.push(Encounter {
                            a,
                            b,
                            start,
                            duration: end - start,
                            distance_m: r.gen_range(0.5..4.5),
                            place,
                        });
                    }
                }
            }
            (out, seen)
        })
        .collect();
    for (e, p) in venue {
        encounters.extend(e);
        presence.extend(p);
    }
    DayPlan {
        encounters,
        presence,
    }
}

/// Calls `f` for about `k` near neighbours of each member of `group` (all pairs
/// when the group is small).
fn near_pairs(
    group: &[PersonId],
    k: u32,
    r: &mut rand_chacha::ChaCha8Rng,
    mut f: impl FnMut(PersonId, PersonId, &mut rand_chacha::ChaCha8Rng),
) {
    let k = k as usize;
    if group.len() <= k + 1 {
        for (i, &a) in group.iter().enumerate() {
            for &b in &group[i + 1..] {
                f(a, b, r);
            }
        }
        return;
    }
    for (i, &a) in group.iter().enumerate() {
        for _ in 0..k.div_ceil(2) {
            let j = r.gen_range(0..group.len() - 1);
            let j = if j >= i { j + 1 } else { j };
            f(a, group[j], r);
        }
    }
}
