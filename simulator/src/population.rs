//! The people of the city: households, workplaces or schools, commuting, and who
//! runs the app. Built once from the seed.

use rand::Rng;
use rand_distr::{Distribution, Poisson, WeightedIndex};

use crate::scenario::Scenario;
use crate::seed::{rng, Stream};

/// Index of a person (and of their phone).
pub type PersonId = u32;

/// One person.
#[derive(Clone, Debug)]
pub struct Person {
    /// Household index.
    pub household: u32,
    /// Workplace or school, if any.
    pub workplace: Option<u32>,
    /// Transit line, for commuters.
    pub transit_line: Option<u32>,
    /// Whether the person runs the app.
    pub app: bool,
}

/// Everyone, grouped.
#[derive(Clone, Debug)]
pub struct Population {
    /// People by id.
    pub people: Vec<Person>,
    /// Members of each household.
    pub households: Vec<Vec<PersonId>>,
    /// Members of each workplace.
    pub workplaces: Vec<Vec<PersonId>>,
    /// Number of venues.
    pub venues: u32,
    /// Number of transit lines.
    pub transit_lines: u32,
}

impl Population {
    /// Builds the population of `s`.
    pub fn build(s: &Scenario) -> Population {
        let mut r = rng(s.seed, Stream::Population, &[]);
        let n = s.population;
        let sizes = WeightedIndex::new(&s.city.household_sizes).expect("validated weights");
        let mut people = Vec::with_capacity(n as usize);
        let mut households = Vec::new();
        while (people.len() as u32) < n {
            let size = (sizes.sample(&mut r) as u32 + 1).min(n - people.len() as u32);
            let h = households.len() as u32;
            let mut members = Vec::with_capacity(size as usize);
            for _ in 0..size {
                members.push(people.len() as PersonId);
                people.push(Person {
                    household: h,
                    workplace: None,
                    transit_line: None,
                    app: r.gen_bool(s.app.adoption),
                });
            }
            households.push(members);
        }
        // Workplaces: sizes 1 + Poisson(mean - 1), filled in random order.
        let mut workers: Vec<PersonId> = (0..n)
            .filter(|_| r.gen_bool(s.city.worker_fraction))
            .collect();
        shuffle(&mut workers, &mut r);
        let extra = Poisson::new((s.city.workplace_mean_size - 1.0).max(0.01)).expect("positive");
        let mut workplaces = Vec::new();
        let mut i = 0;
        while i < workers.len() {
            let size = (1 + extra.sample(&mut r) as usize).min(workers.len() - i);
            let w = workplaces.len() as u32;
            for &p in &workers[i..i + size] {
                people[p as usize].workplace = Some(w);
            }
            workplaces.push(workers[i..i + size].to_vec());
            i += size;
        }
        let transit_lines = (n / 2000).max(1);
        for &p in &workers {
            if r.gen_bool(s.city.transit_fraction) {
                people[p as usize].transit_line = Some(r.gen_range(0..transit_lines));
            }
        }
        let venues = ((f64::from(n) / s.city.people_per_venue).ceil() as u32).max(1);
        Population {
            people,
            households,
            workplaces,
            venues,
            transit_lines,
        }
    }

    /// Number of people.
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// Whether nobody lives here.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Number of app users.
    pub fn app_users(&self) -> usize {
        self.people.iter().filter(|p| p.app).count()
    }
}

/// Fisher-Yates.
pub fn shuffle<T>(v: &mut [T], r: &mut impl Rng) {
    for i in (1..v.len()).rev() {
        let j = r.gen_range(0..=i);
        v.swap(i, j);
    }
}
