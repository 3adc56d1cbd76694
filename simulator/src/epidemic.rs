//! The disease and people's behaviour: transmission by proximity and duration,
//! incubation, symptoms, testing with delay and adherence, upload adherence, and
//! isolation after a positive result. Then the ground truth the app is judged
//! against: who was truly close (`close_minutes` within `close_distance_m`) to
//! someone whose keys were published.

use std::collections::{HashMap, HashSet};

use rand::Rng;
use rand_distr::{Distribution, Poisson};

use crate::channel;
use crate::mobility::{day_plan, Encounter};
use crate::population::{PersonId, Population};
use crate::scenario::Scenario;
use crate::seed::{rng, Stream};

/// Seconds in a day.
pub const DAY_S: u64 = 86_400;

/// The course of one infection (days relative to simulated day 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Course {
    /// Day of infection.
    pub infected_day: i32,
    /// Day of symptom onset (for asymptomatic cases, when it would have been).
    pub onset_day: i32,
    /// Whether symptoms show.
    pub symptomatic: bool,
    /// Day of a positive test result, if tested.
    pub result_day: Option<i32>,
}

/// A planned upload of a tested app user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedUpload {
    /// Who.
    pub person: PersonId,
    /// Seconds since the start of simulated day 0.
    pub at: u64,
    /// Onset day (relative).
    pub onset_day: i32,
}

impl PlannedUpload {
    /// Simulated day of the upload.
    pub fn day(&self) -> u32 {
        (self.at / DAY_S) as u32
    }

    /// Days whose keys the upload publishes (the SDK's default window), within
    /// the simulation.
    pub fn window(&self, before_onset: u32) -> std::ops::RangeInclusive<u32> {
        let first = (self.onset_day - before_onset as i32).max(0) as u32;
        first..=self.day()
    }
}

/// The whole outbreak.
#[derive(Clone, Debug, Default)]
pub struct Outbreak {
    /// Course by person (None: never infected).
    pub courses: Vec<Option<Course>>,
    /// Uploads in time order.
    pub uploads: Vec<PlannedUpload>,
    /// New infections per simulated day.
    pub new_infections: Vec<u32>,
    /// People who tested positive during the simulation.
    pub positives: u32,
}

impl Outbreak {
    /// Whether `p` stays home on day `d`.
    pub fn isolating(&self, s: &Scenario, p: PersonId, d: u32) -> bool {
        s.epidemic.isolate_after_test
            && self.courses[p as usize]
                .and_then(|c| c.result_day)
                .is_some_and(|r| r <= d as i32)
    }

    fn infectious(&self, s: &Scenario, p: PersonId, d: u32) -> bool {
        self.courses[p as usize].is_some_and(|c| {
            let d = d as i32;
            d >= c.onset_day - s.epidemic.presymptomatic_days as i32
                && d <= c.onset_day + s.epidemic.infectious_days_after_onset as i32
                && d >= c.infected_day
        })
    }

    /// Total infections (including the initial ones).
    pub fn infected(&self) -> usize {
        self.courses.iter().flatten().count()
    }
}

fn course(s: &Scenario, p: PersonId, infected_day: i32) -> Course {
    let e = &s.epidemic;
    let mut r = rng(s.seed, Stream::Testing, &[u64::from(p)]);
    let extra = Poisson::new((e.incubation_mean_days - 2.0).max(0.01)).expect("positive");
    let onset_day = infected_day + 2 + extra.sample(&mut r) as i32;
    let symptomatic = r.gen_bool(e.symptomatic_fraction);
    let result_day = (symptomatic && r.gen_bool(e.test_adherence))
        .then(|| onset_day + r.gen_range(e.test_delay_days[0]..=e.test_delay_days[1]) as i32);
    Course {
        infected_day,
        onset_day,
        symptomatic,
        result_day,
    }
}

/// Runs the outbreak over the simulated days.
pub fn simulate(s: &Scenario, pop: &Population) -> Outbreak {
    let mut o = Outbreak {
        courses: vec![None; pop.len()],
        new_infections: vec![0; s.days as usize],
        ..Default::default()
    };
    let mut r = rng(s.seed, Stream::Infection, &[u64::MAX]);
    let mut seeded = 0;
    while seeded < s.epidemic.initial_infected {
        let p = r.gen_range(0..pop.len() as PersonId);
        if o.courses[p as usize].is_none() {
            o.courses[p as usize] = Some(course(s, p, r.gen_range(-6..=0)));
            seeded += 1;
        }
    }
    for d in 0..s.days {
        let plan = day_plan(s, pop, d, &|p| o.isolating(s, p, d));
        let mut new = Vec::new();
        for e in &plan.encounters {
            for (src, dst) in [(e.a, e.b), (e.b, e.a)] {
                if o.courses[dst as usize].is_none()
                    && !new.iter().any(|&(p, _)| p == dst)
                    && o.infectious(s, src, d)
                {
                    let w = 1.0 / f64::from(e.distance_m.max(0.5)).powi(2);
                    let minutes = f64::from(e.duration) / 60.0;
                    let p_inf = 1.0 - (-s.epidemic.beta_per_minute * minutes * w).exp();
                    let mut r = rng(
                        s.seed,
                        Stream::Infection,
                        &[
                            u64::from(d),
                            u64::from(src),
                            u64::from(dst),
                            u64::from(e.start),
                        ],
                    );
                    if r.gen_bool(p_inf.clamp(0.0, 1.0)) {
                        new.push((dst, d));
                    }
                }
            }
        }
        o.new_infections[d as usize] = new.len() as u32;
        for (p, d) in new {
            o.courses[p as usize] = Some(course(s, p, d as i32));
        }
    }
    for (p, c) in o.courses.iter().enumerate() {
        let Some(result) = c.and_then(|c| c.result_day) else {
            continue;
        };
        if result < 0 || result >= s.days as i32 {
            continue;
        }
        o.positives += 1;
        let mut r = rng(s.seed, Stream::Testing, &[u64::from(p as u32), 1]);
        if pop.people[p].app && r.gen_bool(s.epidemic.upload_adherence) {
            o.uploads.push(PlannedUpload {
                person: p as PersonId,
                at: result as u64 * DAY_S + 8 * 3600 + r.gen_range(0..12 * 3600),
                onset_day: c.map_or(0, |c| c.onset_day),
            });
        }
    }
    o.uploads.sort_by_key(|u| (u.at, u.person));
    o
}

/// Who should be notified, and who could be.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// App users truly close to an uploader on a day whose key is published in time.
    pub close: HashSet<PersonId>,
    /// Everyone (app or not) truly close to an uploader on a published day.
    pub close_all_people: usize,
    /// (uploader, contact, day) close contacts.
    pub close_pairs: usize,
    /// App users who received at least one advertisement of an uploader on a
    /// published day (the only phones whose matching can find anything).
    pub heard_uploader: HashSet<PersonId>,
}

/// Seconds of `e` before `limit` (seconds after midnight).
fn clipped(e: &Encounter, limit: u32) -> u32 {
    e.end().min(limit).saturating_sub(e.start)
}

/// Computes the ground truth of the outbreak's uploads.
pub fn ground_truth(s: &Scenario, pop: &Population, o: &Outbreak, before_onset: u32) -> Truth {
    let mut t = Truth::default();
    let mut all_close = HashSet::new();
    let by_person: HashMap<PersonId, &PlannedUpload> =
        o.uploads.iter().map(|u| (u.person, u)).collect();
    for d in 0..s.days {
        let plan = day_plan(s, pop, d, &|p| o.isolating(s, p, d));
        let mut minutes: HashMap<(PersonId, PersonId), f64> = HashMap::new();
        for e in &plan.encounters {
            for (u, other) in [(e.a, e.b), (e.b, e.a)] {
                let Some(up) = by_person.get(&u) else {
                    continue;
                };
                if !up.window(before_onset).contains(&d) {
                    continue;
                }
                // On the upload day, the key in use is retired at the upload.
                let limit = if d == up.day() {
                    (up.at % DAY_S) as u32
                } else {
                    u32::MAX
                };
                let mut clip = *e;
                clip.duration = clipped(e, limit);
                if clip.duration == 0 {
                    continue;
                }
                let app = pop.people[other as usize].app;
                if app && !channel::scans(s, d, &clip, other, u).is_empty() {
                    t.heard_uploader.insert(other);
                }
                // A key of the last day is only served after the simulation ends.
                let published_in_time = d < up.day() || up.day() + 1 < s.days;
                if published_in_time && f64::from(e.distance_m) <= s.epidemic.close_distance_m {
                    *minutes.entry((u, other)).or_default() += f64::from(clip.duration) / 60.0;
                }
            }
        }
        for ((_, other), m) in minutes {
            if m >= s.epidemic.close_minutes {
                if pop.people[other as usize].app {
                    t.close.insert(other);
                    t.close_pairs += 1;
                } else {
                    all_close.insert(other);
                }
            }
        }
    }
    t.close_all_people = all_close.len() + t.close.len();
    t
}
