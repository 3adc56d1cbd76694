//! One simulation run: the world model (population, mobility, epidemic, ground
//! truth), then the phones and the network day by day, then the figures.
//!
//! A day of the phone phase: regenerate the day's encounters; sample what each
//! SDK phone's scans receive; let every SDK phone broadcast (its SDK makes the
//! advertisements, and a phone due to upload builds its diagnosis upload on the
//! way); POST the uploads over HTTP in time order with the nodes' clock at each
//! upload; hand each phone what it heard; move the nodes' clock to the sync hour
//! and release embargoes; wait for the batches to reach every relay over libp2p;
//! download new batches from every relay over HTTP once (every phone of a relay
//! downloads the same bytes, which are accounted to each); and let the SDK phones
//! sync them and read their exposure summaries. In filter form the gateway
//! rebuilds its day filters at the sync hour instead, and phones download every
//! day filter whose revision changed.
//!
//! Uploads take the product's anonymous path (SPEC.md §5.6–5.7). At its upload
//! time on its own clock, a phone buys one token from the authority's issuer
//! with its single-use code (`POST /v1/tokens` on the gateway) and seals its
//! upload (keys, or filter-form intervals) with that token to the gateway's key.
//! It does so while its SDK builds the day's advertisements, so in parallel with
//! other phones and before the nodes' clock gets there: the issuer checks only
//! the code. The sealed bytes are then posted, in time order as above, to the
//! relay the phone downloads from (`POST /v1/relay/{origin}`), which forwards
//! them over libp2p to the gateway. Dummy uploads are sealed and relayed the same
//! way. The relay's answer is a fixed status, so the batches an upload published
//! are read off the gateway's sequence counter around it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rayon::prelude::*;
use traceless_protocol::wire::HeldRevisions;
use traceless_protocol::{
    interval_number, BatchList, DayFilter, DiagnosisKey, FilterParts, PublishedBatch, SignedFilter,
    TokenDeriver, TrustList, RETENTION_DAYS,
};
use traceless_sdk::SdkConfig;

use crate::channel;
use crate::epidemic::{self, DAY_S};
use crate::http;
use crate::mobility::day_plan;
use crate::nodes::{Nodes, NodesError, ORIGIN};
use crate::phones::{Broadcast, GatewayKeys, Heard, NoiseKeys, Payload, Phone, UploadFailure};
use crate::population::{PersonId, Population};
use crate::privacy::{self, Logged};
use crate::report::{self, Cost, Daily, NetworkFigures, Outcome, Report, RunFigures};
use crate::scenario::{Publication, Scenario, SdkPhones};
use crate::seed::{rng, Stream};
use crate::{venue_figures, venues};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The nodes could not start.
    #[error(transparent)]
    Nodes(#[from] NodesError),
    /// Files.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An SDK instance could not be created.
    #[error("SDK: {0}")]
    Sdk(#[from] traceless_sdk::SdkError),
    /// Talking to a node failed.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The gateway's upload keys could not be read.
    #[error(transparent)]
    GatewayKeys(#[from] UploadFailure),
}

const NONE: u32 = u32::MAX;

/// How uploads travel, for the report.
const UPLOAD_PATH: &str = "sealed via relays";

/// Runs `s`; node data lives in a temporary directory under `work_dir`.
pub fn run(s: &Scenario, opts: &RunOptions, work_dir: &Path) -> Result<Report, RunError> {
    let t0 = Instant::now();
    let bar = if opts.progress {
        let b = ProgressBar::new(2 * u64::from(s.days) + 1);
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg:24} [{bar:40}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    bar.set_message("world");
    let pop = Population::build(s);
    let outbreak = epidemic::simulate(s, &pop);
    let config = SdkConfig {
        tx_power_dbm: s.channel.tx_power_dbm,
        assumed_tx_power_dbm: s.channel.tx_power_dbm,
        // The SDK reads the cadence from the sightings; this is only the period
        // assumed for a sender heard once (at most the SDK's 300 s).
        scan_period_s: s.channel.scan_period_s.min(300) as u16,
        ..SdkConfig::default()
    };
    let before_onset = config.infectious_days_before_onset;
    let truth = epidemic::ground_truth(s, &pop, &outbreak, before_onset);
    let checkin_on = s.app.checkin_adoption > 0.0;
    let world = if checkin_on {
        venues::World::build(s, &pop, &outbreak, before_onset)
    } else {
        venues::World::default()
    };
    bar.inc(s.days.into());
    let world_seconds = t0.elapsed().as_secs_f64();

    // Which phones run an SDK instance.
    let upload_of: HashMap<PersonId, usize> = outbreak
        .uploads
        .iter()
        .enumerate()
        .map(|(i, u)| (u.person, i))
        .collect();
    let app: Vec<PersonId> = (0..pop.len() as PersonId)
        .filter(|&p| pop.people[p as usize].app)
        .collect();
    let mut sample = HashSet::new();
    if s.app.sdk_phones == SdkPhones::Contacts && !app.is_empty() {
        let mut r = rng(s.seed, Stream::Phone, &[u64::MAX]);
        for _ in 0..s.app.full_sync_sample.min(app.len() as u32) * 4 {
            if sample.len() >= s.app.full_sync_sample as usize {
                break;
            }
            sample.insert(app[r.gen_range(0..app.len())]);
        }
    }
    let sdk_people: Vec<PersonId> = match s.app.sdk_phones {
        SdkPhones::All => app.clone(),
        SdkPhones::Contacts => app
            .iter()
            .copied()
            .filter(|p| {
                upload_of.contains_key(p)
                    || truth.heard_uploader.contains(p)
                    || sample.contains(p)
                    || world.reachable.contains(p)
            })
            .collect(),
    };
    let mut sidx = vec![NONE; pop.len()];
    for (i, &p) in sdk_people.iter().enumerate() {
        sidx[p as usize] = i as u32;
    }

    let seized = venue_figures::seized_sample(&world, &sdk_people);
    let day0 = u64::from(s.start_day) * DAY_S;
    let tmp = tempfile::Builder::new()
        .prefix("traceless-sim-")
        .tempdir_in(work_dir)?;
    let nodes = Nodes::start_network(
        tmp.path(),
        &s.network,
        day0,
        outbreak.uploads.len().max(1),
        (u64::from(s.days) + 2) * DAY_S,
    )?;
    let authority = nodes.authority.verifying_key();
    let mut trust = TrustList::new();
    trust.insert(
        nodes.authority.origin.clone(),
        nodes.authority.key_id,
        authority,
    );
    let gateway_keys = GatewayKeys::fetch(nodes.gateway.http_addr)?;
    let relay_path = format!("/v1/relay/{ORIGIN}");
    let full_all = s.app.sdk_phones == SdkPhones::All;
    let phone_dirs = tmp.path().join("phones");
    let mut phones: Vec<Phone> = sdk_people
        .par_iter()
        .map(|&p| {
            let dir = phone_dirs.join(format!("phone-{p}"));
            Phone::new(
                p,
                day0,
                config.clone(),
                authority,
                full_all || sample.contains(&p),
                s.app.publication,
                s.seed,
                world.adopters.contains(&p),
                seized.contains(&p).then_some(dir.as_path()),
            )
        })
        .collect::<Result<_, _>>()?;
    let mut registry = venues::Registry::new(gateway_keys.seal);
    let mut traced: Vec<venues::Traced> = Vec::new();
    let mut trace_errors = 0usize;
    let mut warning_cursors = vec![0u64; nodes.relays.len()];
    let mut warning_total = 0f64;
    let mut warning_list_total = 0f64;
    let mut warning_timeouts = 0u32;
    // Every body a network observer between phones and relays sees (uploads,
    // key batches and warning downloads), scanned at the end.
    let mut observed: Vec<Vec<u8>> = Vec::new();

    let relays: Vec<_> = nodes.relays.iter().map(|r| r.http_addr).collect();
    let mut cursors = vec![0u64; relays.len()];
    let users_per_relay: Vec<u64> = (0..relays.len())
        .map(|r| {
            app.iter()
                .filter(|&&p| p as usize % relays.len() == r)
                .count() as u64
        })
        .collect();
    let mut uploader_rpis: HashMap<[u8; 16], PersonId> = HashMap::new();
    let mut batch_upload_at: HashMap<u64, u64> = HashMap::new();
    let mut all_batches: Vec<Vec<u8>> = Vec::new();
    // Filter form: the newest filter of each day, revisions downloaded, the
    // revision each relay's phones hold per day, and when each uploader uploaded.
    // Every part of every day filter downloaded (their `SignedFilter` bytes).
    let mut all_parts: Vec<Vec<u8>> = Vec::new();
    let mut filter_revisions = 0u64;
    let mut filter_seen: Vec<HeldRevisions> = vec![HeldRevisions::new(); relays.len()];
    let mut uploaded_at: HashMap<PersonId, u64> = HashMap::new();
    // Milliseconds from a rebuild to the newest filters on every relay.
    let mut filter_propagation: Vec<f64> = Vec::new();
    let mut logs: Vec<Logged> = Vec::new();
    let watch = nodes.watch();
    let mut propagation_timeouts = 0u32;
    let mut uploads_ok = 0usize;
    let mut uploads_refused = 0usize;
    let mut upload_sizes: HashSet<usize> = HashSet::new();
    let mut dummies_sent = 0u64;
    let mut dummies_refused = 0u64;
    let mut daily = Vec::new();
    let mut download_total = 0f64;
    let mut floor_total = 0f64;
    let mut deriver = TokenDeriver::new();
    let uploads_by_day: HashMap<u32, Vec<usize>> =
        outbreak
            .uploads
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (i, u)| {
                m.entry(u.day()).or_default().push(i);
                m
            });

    for d in 0..s.days {
        bar.set_message(format!("phones: day {}/{}", d + 1, s.days));
        let day_start = day0 + u64::from(d) * DAY_S;
        let unix_day = s.start_day + d;
        let plan = day_plan(s, &pop, d, &|p| outbreak.isolating(s, p, d));

        // What each SDK phone's scans receive.
        let mut by_listener: Vec<Vec<(u32, PersonId)>> = vec![Vec::new(); phones.len()];
        for (k, e) in plan.encounters.iter().enumerate() {
            for (l, sp) in [(e.a, e.b), (e.b, e.a)] {
                let li = sidx[l as usize];
                if li != NONE && pop.people[sp as usize].app {
                    by_listener[li as usize].push((k as u32, sp));
                }
            }
        }
        let heard: Vec<Vec<Heard>> = by_listener
            .par_iter()
            .zip(phones.par_iter())
            .map(|(list, phone)| {
                let mut out = Vec::new();
                for &(k, sp) in list {
                    let e = &plan.encounters[k as usize];
                    for sc in channel::scans(s, d, e, phone.person, sp) {
                        out.push(Heard {
                            at: day_start + u64::from(sc.at),
                            speaker: sp,
                            attenuation_db: sc.attenuation_db,
                        });
                    }
                }
                out.sort_by_key(|h| (h.at, h.speaker));
                out
            })
            .collect();
        drop(by_listener);

        // Which advertisements each SDK phone must produce.
        let first_interval = interval_number(day_start);
        let mut demand: Vec<Vec<u32>> = vec![vec![first_interval]; phones.len()];
        for list in &heard {
            for h in list {
                let si = sidx[h.speaker as usize];
                if si != NONE {
                    demand[si as usize].push(interval_number(h.at));
                }
            }
        }
        let mut sniffed_presence = Vec::new();
        for pr in &plan.presence {
            // Sniffers could stand at any public place: log there, choose later.
            if pr.place.is_public() && upload_of.contains_key(&pr.person) {
                let si = sidx[pr.person as usize];
                let mut t = day_start + u64::from(pr.start);
                while t < day_start + u64::from(pr.end) {
                    demand[si as usize].push(interval_number(t));
                    sniffed_presence.push((pr.person, pr.place, t));
                    t += 600;
                }
            }
        }
        for v in &mut demand {
            v.sort_unstable();
            v.dedup();
        }
        let todays: HashMap<u32, (u64, String, u32)> = uploads_by_day
            .get(&d)
            .into_iter()
            .flatten()
            .map(|&i| {
                let u = &outbreak.uploads[i];
                let onset = (i64::from(s.start_day) + i64::from(u.onset_day)).max(0) as u32;
                (
                    sidx[u.person as usize],
                    (day0 + u.at, nodes.codes[i].clone(), onset),
                )
            })
            .collect();
        let broadcast: Vec<Broadcast> = phones
            .par_iter_mut()
            .zip(demand.par_iter())
            .enumerate()
            .map(|(i, (phone, want))| {
                let up = todays
                    .get(&(i as u32))
                    .map(|(at, code, onset)| (*at, code.as_bytes(), *onset));
                phone.broadcast(want, up, day_start + DAY_S, &gateway_keys)
            })
            .collect();
        drop(demand);
        let mut ads: Vec<Vec<(u32, Payload)>> = Vec::with_capacity(phones.len());
        let mut bundles = Vec::new();
        for (i, b) in broadcast.into_iter().enumerate() {
            let person = phones[i].person;
            if upload_of.contains_key(&person) {
                for (_, payload) in &b.ads {
                    let mut rpi = [0u8; 16];
                    rpi.copy_from_slice(&payload[..16]);
                    uploader_rpis.insert(rpi, person);
                }
            }
            match b.upload {
                Some(Ok(u)) => {
                    let at = todays.get(&(i as u32)).map_or(day_start, |t| t.0);
                    bundles.push((at, person, u, true));
                }
                // The issuer refused the code, or the SDK the upload.
                Some(Err(_)) => uploads_refused += 1,
                None => {}
            }
            for (at, d) in b.dummies {
                bundles.push((at, person, d, false));
            }
            ads.push(b.ads);
        }
        let ad_of = |p: PersonId, i: u32| -> Option<Payload> {
            let list = &ads[sidx[p as usize] as usize];
            list.binary_search_by_key(&i, |x| x.0)
                .ok()
                .map(|k| list[k].1)
        };
        for (person, place, t) in sniffed_presence {
            if let Some(payload) = ad_of(person, interval_number(t)) {
                logs.push(Logged {
                    place,
                    at: t,
                    payload,
                    owner: person,
                });
            }
        }

        // Check-ins: each adopter scans the venue's code at arrival and checks
        // out at departure, on its own clock (venues get codes on first use).
        if checkin_on {
            let mut today: Vec<Vec<(u32, u64, u64)>> = vec![Vec::new(); phones.len()];
            for st in venues::stays_of(&plan.presence, day_start) {
                let i = sidx[st.person as usize];
                if i != NONE && phones[i as usize].checks_in && registry.ensure(st.venue).is_some()
                {
                    today[i as usize].push((st.venue, st.start, st.end));
                }
            }
            let reg = &registry;
            phones
                .par_iter_mut()
                .zip(today.par_iter())
                .for_each(|(phone, list)| {
                    for &(v, arrival, departure) in list {
                        if let Some(venue) = reg.get(v) {
                            phone.visit(v, &venue.url, arrival, departure);
                        }
                    }
                });
        }

        // Sealed uploads over HTTP, in time order, with the nodes' clock at each,
        // each to the relay its phone downloads from.
        bundles.sort_by_key(|b| (b.0, b.1));
        let mut uploads_today = 0;
        for (at, person, bundle, real) in &bundles {
            if *real {
                // Embargo releases happen at the clock values the simulator sets,
                // whether this call or the nodes' own timer gets there first.
                // Dummies (carrying no keys) leave the clock alone: a day's
                // dummies run past the sync hour, which the clock must not.
                nodes.clock.set(*at);
                for q in nodes.release_due() {
                    watch.published(q);
                }
            }
            upload_sizes.insert(bundle.len());
            if checkin_on {
                observed.push(bundle.clone());
            }
            let relay = relays[*person as usize % relays.len()];
            let next_before = nodes.gateway_next_sequence();
            let r = http::request(relay, "POST", &relay_path, bundle)?;
            if !real {
                dummies_sent += 1;
                if r.status != 200 {
                    dummies_refused += 1;
                }
                continue;
            }
            if r.status == 200 {
                uploads_ok += 1;
                uploads_today += 1;
                uploaded_at.insert(*person, *at);
                // The answer names no batch. The batches this upload published
                // (the gateway gossiped them before answering) are those it
                // numbered meanwhile: nothing else runs at this clock value, and
                // dummies publish nothing.
                for seq in next_before..nodes.gateway_next_sequence() {
                    watch.published(seq);
                    batch_upload_at.insert(seq, *at);
                }
                // The authority traces the case's own check-ins of its upload
                // window, learnt in the interview (SPEC.md §12.5).
                let i = sidx[*person as usize];
                if checkin_on && i != NONE && phones[i as usize].checks_in {
                    let u = &outbreak.uploads[upload_of[person]];
                    let from = day0 + u64::from(*u.window(before_onset).start()) * DAY_S;
                    let (t, refused) = venues::trace_case(
                        &nodes,
                        &registry,
                        *person,
                        &phones[i as usize].visits,
                        from,
                    );
                    traced.extend(t);
                    trace_errors += refused;
                }
            } else {
                uploads_refused += 1;
            }
        }

        // Each SDK phone hears what its scans received.
        let tx = s.channel.tx_power_dbm;
        phones
            .par_iter_mut()
            .zip(heard.into_par_iter())
            .for_each(|(phone, list)| {
                let mut noise = NoiseKeys::new(s.seed, tx);
                let with_payload: Vec<(Heard, Payload)> = list
                    .into_iter()
                    .filter_map(|h| {
                        let i = interval_number(h.at);
                        let payload = if sidx[h.speaker as usize] != NONE {
                            ad_of(h.speaker, i)?
                        } else {
                            noise.payload(h.speaker, unix_day, i)
                        };
                        if upload_of.contains_key(&h.speaker) {
                            phone.heard_uploaders.insert(h.speaker);
                        }
                        Some((h, payload))
                    })
                    .collect();
                phone.listen(&with_payload, tx);
            });
        drop(ads);

        // The sync hour: embargoes end, batches spread, phones download and match.
        let sync_at = day_start + u64::from(s.app.sync_hour) * 3600;
        nodes.clock.set(sync_at);
        nodes.run_retention();
        for q in nodes.release_due() {
            watch.published(q);
        }
        if !watch.wait() {
            propagation_timeouts += 1;
        }
        let day_floor: f64;
        let mut body_per_relay = vec![0u64; relays.len()];
        let day_bytes = match s.app.publication {
            Publication::Keys => {
                let mut new_batches: Vec<Downloaded> = Vec::new();
                let mut bytes_per_relay = vec![0u64; relays.len()];
                for (r, &addr) in relays.iter().enumerate() {
                    let (batches, traffic) = download_new(addr, &mut cursors[r])?;
                    bytes_per_relay[r] = traffic.wire;
                    body_per_relay[r] = traffic.body;
                    if r == 0 {
                        new_batches = batches;
                    }
                }
                let day_bytes = per_phone_day(&bytes_per_relay, &users_per_relay, app.len());
                day_floor = new_batches
                    .iter()
                    .map(|(_, b)| batch_keys(b, &trust, sync_at).len() as f64 * KEY_FLOOR_BYTES)
                    .sum();

                // Shared work: each published key's tokens derived once, to know whose
                // batch it is (for the delay figure and for the contacts shortcut).
                let mut owners: Vec<HashSet<PersonId>> = Vec::new();
                let mut batch_at: Vec<Option<u64>> = Vec::new();
                for (seq, bytes) in &new_batches {
                    let set = owners_of(bytes, &trust, sync_at, &uploader_rpis, &mut deriver);
                    let at = batch_upload_at.get(seq).copied().or_else(|| {
                        set.iter()
                            .filter_map(|p| {
                                upload_of.get(p).map(|&i| day0 + outbreak.uploads[i].at)
                            })
                            .min()
                    });
                    owners.push(set);
                    batch_at.push(at);
                }
                phones.par_iter_mut().for_each(|phone| {
                    let list: Vec<(&[u8], Option<u64>)> = new_batches
                        .iter()
                        .zip(&owners)
                        .zip(&batch_at)
                        .filter(|((_, o), _)| {
                            phone.full_sync || o.iter().any(|p| phone.heard_uploaders.contains(p))
                        })
                        // A period batch carries every upload of its period
                        // (SPEC.md §5.9): the delay runs from the earliest
                        // upload in it by an uploader this phone heard (the
                        // contact that notifies it), else from the batch's time.
                        .map(|(((_, b), o), at)| {
                            let heard = o
                                .iter()
                                .filter(|p| phone.heard_uploaders.contains(p))
                                .filter_map(|p| uploaded_at.get(p).copied())
                                .min();
                            (b.as_slice(), heard.or(*at))
                        })
                        .collect();
                    phone.sync(sync_at + 60, &list);
                });
                all_batches.extend(new_batches.into_iter().map(|b| b.1));
                day_bytes
            }
            Publication::Filter => {
                nodes.rebuild_filters();
                match nodes.wait_for_filters() {
                    Some(ms) => filter_propagation.push(ms),
                    None => propagation_timeouts += 1,
                }
                let mut new_filters = Vec::new();
                let mut bytes_per_relay = vec![0u64; relays.len()];
                for (r, &addr) in relays.iter().enumerate() {
                    let (filters, traffic) = download_filters(addr, &mut filter_seen[r])?;
                    bytes_per_relay[r] = traffic.wire;
                    body_per_relay[r] = traffic.body;
                    if r == 0 {
                        new_filters = filters;
                    }
                }
                // Parts are disjoint: each new part's entries are new today.
                let parts: Vec<Vec<u8>> = new_filters
                    .iter()
                    .flat_map(|body| FilterParts::decode(body).map_or(Vec::new(), |p| p.parts))
                    .collect();
                filter_revisions += parts.len() as u64;
                day_floor = parts
                    .iter()
                    .map(|p| filter_entries(p, sync_at) as f64 * FILTER_FLOOR_BYTES)
                    .sum();
                // A filter names no uploader: the delay runs from the earliest
                // upload, by an uploader this phone heard, before the sync.
                phones.par_iter_mut().for_each(|phone| {
                    if !phone.full_sync && phone.heard_uploaders.is_empty() {
                        return;
                    }
                    let at = phone
                        .heard_uploaders
                        .iter()
                        .filter_map(|p| uploaded_at.get(p).copied())
                        .min();
                    let list: Vec<(&[u8], Option<u64>)> =
                        new_filters.iter().map(|b| (b.as_slice(), at)).collect();
                    phone.sync(sync_at + 60, &list);
                });
                all_parts.extend(parts);
                per_phone_day(&bytes_per_relay, &users_per_relay, app.len())
            }
        };
        // Venue warnings: published at the boundaries the clock passed, spread
        // to every relay; each relay's list and new batches downloaded once
        // over HTTP; phones that check in match them.
        let mut warning_day = 0.0;
        if checkin_on {
            if !nodes.wait_for_warnings() {
                warning_timeouts += 1;
            }
            let mut new_warnings = Vec::new();
            let mut bytes_per_relay = vec![0u64; relays.len()];
            let mut list_per_relay = vec![0u64; relays.len()];
            for (r, &addr) in relays.iter().enumerate() {
                let got = venues::download_warnings(addr, &mut warning_cursors[r])?;
                bytes_per_relay[r] = got.wire_bytes;
                list_per_relay[r] = got.list_bytes;
                observed.extend(got.bodies);
                if r == 0 {
                    new_warnings = got.batches;
                }
            }
            warning_day = per_phone_day(&bytes_per_relay, &users_per_relay, app.len());
            warning_list_total += per_phone_day(&list_per_relay, &users_per_relay, app.len());
            let list: Vec<&[u8]> = new_warnings.iter().map(|(_, b)| b.as_slice()).collect();
            phones
                .par_iter_mut()
                .for_each(|phone| phone.sync_warnings(sync_at + 60, &list));
        }
        warning_total += warning_day;
        download_total += day_bytes;
        floor_total += day_floor;
        let notified = phones.iter().filter(|p| p.notified_at.is_some()).count() as u32;
        let tp = phones
            .iter()
            .filter(|p| p.notified_at.is_some() && truth.close.contains(&p.person))
            .count() as u32;
        daily.push(Daily {
            day: d,
            new_infections: outbreak.new_infections[d as usize],
            uploads: uploads_today,
            notified,
            true_positives: tp,
            download_bytes_per_phone: day_bytes,
            download_body_bytes_per_phone: per_phone_day(
                &body_per_relay,
                &users_per_relay,
                app.len(),
            ),
            payload_floor_bytes: day_floor,
            batches: all_batches.len() as u64 + filter_revisions,
            venue_warned: phones
                .iter()
                .filter(|p| p.venue_warned_at.is_some())
                .count() as u32,
            venue_true_positives: 0,
            warning_bytes_per_phone: warning_day,
        });
        bar.inc(1);
    }
    let mut propagation = watch.finish();
    propagation.extend(filter_propagation);
    let storage = nodes.storage();
    let upload_traffic = nodes.upload_traffic()?;
    let end_time = day0 + u64::from(s.days) * DAY_S;
    let warning_batches = nodes.warning_batches();
    let node_dirs = nodes.data_dirs();
    nodes.shutdown();
    bar.finish_and_clear();

    // Figures.
    let t_calibration = Instant::now();
    let calibration = crate::calibration::calibrate(&mut phones, &truth.close);
    let calibration_seconds = t_calibration.elapsed().as_secs_f64();
    let t_checkins = Instant::now();
    let checkins = if checkin_on {
        all_batches.iter().for_each(|b| observed.push(b.clone()));
        let input = venue_figures::Input {
            s,
            pop: &pop,
            world: &world,
            phones: &mut phones,
            registry: &registry,
            traced: &traced,
            trace_errors,
            warning_batches,
            warning_bytes: warning_total / f64::from(s.days),
            warning_list_bytes: warning_list_total / f64::from(s.days),
            warning_timeouts,
            node_dirs: &node_dirs,
            observed: &observed,
            close: &truth.close,
            seized: &seized,
        };
        venue_figures::figures(input, &mut daily, day0)
    } else {
        report::CheckInFigures::default()
    };
    let checkin_figures_seconds = t_checkins.elapsed().as_secs_f64();
    let notified: Vec<&Phone> = phones.iter().filter(|p| p.notified_at.is_some()).collect();
    let tp = notified
        .iter()
        .filter(|p| truth.close.contains(&p.person))
        .count();
    let mut delays: Vec<f64> = notified
        .iter()
        .filter_map(|p| Some((p.notified_at? as f64 - p.first_matched_upload_at? as f64) / 3600.0))
        .collect();
    let full: Vec<&Phone> = phones.iter().filter(|p| p.full_sync).collect();
    let matching_ms = if full.is_empty() {
        0.0
    } else {
        full.iter().map(|p| p.sync_ns as f64).sum::<f64>()
            / full.len() as f64
            / f64::from(s.days)
            / 1e6
    };
    let sample_outside = phones
        .iter()
        .filter(|p| sample.contains(&p.person) && !truth.heard_uploader.contains(&p.person))
        .map(|p| p.windows)
        .sum();
    let keys: u64 = storage.first().map_or(0, |n| n.keys);
    let link = |k: u32| {
        let sniffed = privacy::place_sniffers(s, &pop, k);
        let uploaders = outbreak.uploads.len();
        match s.app.publication {
            Publication::Keys => {
                privacy::link_keys(&logs, &sniffed, &all_batches, &trust, end_time, uploaders)
            }
            Publication::Filter => {
                privacy::link_filters(&logs, &sniffed, &all_parts, end_time, uploaders)
            }
        }
    };
    let privacy = link(s.privacy.sniffers);
    let privacy_sweep = s.privacy.sniffer_sweep.iter().map(|&k| link(k)).collect();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let phones_seconds = t0.elapsed().as_secs_f64() - world_seconds;
    Ok(Report {
        scenario: s.name.clone(),
        seed: s.seed,
        population: s.population,
        days: s.days,
        app_users: app.len(),
        sdk_phones: phones.len(),
        full_sync_phones: full.len(),
        outcome: Outcome {
            infected: outbreak.infected(),
            positives: outbreak.positives,
            uploads: uploads_ok,
            truly_close: truth.close.len(),
            truly_close_all_people: truth.close_all_people,
            heard_an_uploader: truth.heard_uploader.len(),
            notified: notified.len(),
            true_positives: tp,
            precision: ratio(tp, notified.len()),
            recall: ratio(tp, truth.close.len()),
            delay_hours_p50: report::quantile(&mut delays, 0.5),
            delay_hours_p90: report::quantile(&mut delays, 0.9),
            sample_windows_outside_contacts: sample_outside,
        },
        cost: Cost {
            download_bytes_per_phone_per_day: download_total / f64::from(s.days),
            payload_floor_bytes_per_phone_per_day: floor_total / f64::from(s.days),
            download_over_floor: ratio_f(download_total, floor_total),
            upload_bytes: upload_sizes.iter().copied().max().unwrap_or(0),
            upload_sizes_seen: upload_sizes.len(),
            dummy_uploads: dummies_sent,
            dummy_uploads_refused: dummies_refused,
            matching_ms_per_phone_per_day: matching_ms,
            sightings: phones.iter().map(|p| p.sightings).sum(),
            sightings_refused: phones.iter().map(|p| p.sightings_refused).sum(),
            batches_synced: phones.iter().map(|p| p.batches_synced).sum(),
            sync_errors: phones.iter().map(|p| p.sync_errors).sum(),
        },
        network: NetworkFigures {
            relays: s.network.relays,
            batches: all_batches.len() as u64 + filter_revisions,
            keys,
            storage,
            propagation_ms_p50: report::quantile(&mut propagation, 0.5),
            propagation_ms_p99: report::quantile(&mut propagation, 0.99),
            uploads_refused,
            upload_path: UPLOAD_PATH.into(),
            upload_traffic,
            propagation_timeouts,
        },
        privacy,
        privacy_sweep,
        sweep: Vec::new(),
        forms: Vec::new(),
        calibration,
        checkins,
        daily,
        run: RunFigures {
            seconds: t0.elapsed().as_secs_f64(),
            world_seconds,
            phones_seconds,
            calibration_seconds,
            checkin_figures_seconds,
            peak_rss_mib: report::peak_rss_mib(),
            threads: rayon::current_num_threads(),
        },
    })
}

/// Bytes a phone downloaded in a day, averaged over app users: each relay's
/// download counts for the users of that relay.
fn per_phone_day(bytes_per_relay: &[u64], users_per_relay: &[u64], app_users: usize) -> f64 {
    bytes_per_relay
        .iter()
        .zip(users_per_relay)
        .map(|(b, u)| *b as f64 * *u as f64)
        .sum::<f64>()
        / (app_users.max(1) as f64)
}

/// Downloads, over HTTP, the parts of every day filter of a relay above the
/// highest revision `seen` holds for its day (raising it), in one request as
/// the host client does (`GET /v1/filter-parts/{origin}?held=`, again only
/// while the node says `rel="next"`); returns the response bodies
/// (`FilterParts`) and the traffic.
fn download_filters(
    addr: std::net::SocketAddr,
    seen: &mut HeldRevisions,
) -> Result<(Vec<DownloadedFilter>, Traffic), RunError> {
    let mut traffic = Traffic::default();
    let mut out = Vec::new();
    // Bounded: each round the node cut short brings a part above `seen`, or stops.
    for _ in 0..=(u64::from(RETENTION_DAYS) + 1) * traceless_protocol::filter::MAX_FILTER_PARTS {
        let path = format!("/v1/filter-parts/{ORIGIN}?held={}", seen.query());
        let b = http::request(addr, "GET", &path, b"")?;
        traffic.add(&b);
        let more = names_next_page(&b);
        let Some(parts) = (b.status == 200)
            .then(|| FilterParts::decode(&b.body).ok())
            .flatten()
        else {
            break;
        };
        let before = seen.clone();
        for f in parts
            .parts
            .iter()
            .filter_map(|p| SignedFilter::decode(p).ok())
            .filter_map(|p| DayFilter::decode_body(&p.body, u64::MAX / 2).ok())
        {
            seen.hold(f.day, f.revision);
        }
        let grew = *seen != before;
        if !parts.parts.is_empty() {
            out.push(b.body);
        }
        if !more || !grew {
            break;
        }
    }
    Ok((out, traffic))
}

/// What a phone's downloads cost: the bytes on the wire (heads, framing, gzip
/// bodies) and the bodies decoded. Only the second is a function of the seed:
/// gzip's output length depends on the random keys and signatures it carries.
#[derive(Clone, Copy, Default)]
struct Traffic {
    wire: u64,
    body: u64,
}

impl Traffic {
    fn add(&mut self, r: &http::Response) {
        self.wire += r.wire_bytes as u64;
        self.body += r.body.len() as u64;
    }
}

/// Payload floor of one published key: its TEK (SPEC.md §4; the interval
/// numbers and risk fields are shared by a day's keys in an ideal encoding).
const KEY_FLOOR_BYTES: f64 = 16.0;

/// Payload floor of one filter entry: the Bloom optimum at the filter's
/// false-positive target of one whole-day filter, `1.44 · log2(1/ε)` = 58 bits
/// (SPEC.md §5.8; parts spend 70, sized for the budget shared by 384 parts).
const FILTER_FLOOR_BYTES: f64 = 58.0 / 8.0;

/// `a / b`, or 0 when `b` is 0.
fn ratio_f(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The keys of a batch of either version (none if it does not verify).
pub(crate) fn batch_keys(bytes: &[u8], trust: &TrustList, now: u64) -> Vec<DiagnosisKey> {
    PublishedBatch::decode(bytes)
        .and_then(|b| b.verify(trust, now))
        .map_or(Vec::new(), |b| b.keys)
}

/// Entries in a signed day filter (0 if it does not decode).
fn filter_entries(bytes: &[u8], now: u64) -> u64 {
    SignedFilter::decode(bytes)
        .ok()
        .and_then(|sf| DayFilter::decode_body(&sf.body, now).ok())
        .map_or(0, |f| f.filter.entries())
}

/// Whether a response names a next page (`Link: <…>; rel="next"`, SPEC.md §6.1).
fn names_next_page(r: &http::Response) -> bool {
    r.headers
        .iter()
        .any(|(n, v)| n == "link" && traceless_protocol::wire::names_next(v))
}

/// A download of parts of day filters: the `FilterParts` body.
type DownloadedFilter = Vec<u8>;

/// A downloaded batch: sequence number and signed bytes.
type Downloaded = (u64, Vec<u8>);

/// Downloads, over HTTP, every batch of a relay after `cursor` (moving it on),
/// as the host client does (`GET /v1/batch-list/{origin}?after=`, again only
/// while the node says `rel="next"`); returns the batches and the traffic.
fn download_new(
    addr: std::net::SocketAddr,
    cursor: &mut u64,
) -> Result<(Vec<Downloaded>, Traffic), RunError> {
    let mut out = Vec::new();
    let mut traffic = Traffic::default();
    // Bounded: each round moves the cursor past at least one batch, or stops.
    for _ in 0..10_000 {
        let path = format!("/v1/batch-list/{ORIGIN}?after={cursor}");
        let b = http::request(addr, "GET", &path, b"")?;
        traffic.add(&b);
        let batches = (b.status == 200)
            .then(|| BatchList::decode(&b.body).ok())
            .flatten()
            .map_or(Vec::new(), |l| l.batches);
        let more = names_next_page(&b);
        let before = *cursor;
        for batch in batches {
            let Some(seq) = PublishedBatch::decode(&batch)
                .ok()
                .and_then(|b| b.claimed_sequence())
            else {
                continue;
            };
            *cursor = (*cursor).max(seq);
            out.push((seq, batch));
        }
        if *cursor <= before || !more {
            break;
        }
    }
    Ok((out, traffic))
}

/// Whose keys a batch holds: each key's tokens derived once and looked up among
/// the advertisements uploaders broadcast.
fn owners_of(
    bytes: &[u8],
    trust: &TrustList,
    now: u64,
    uploader_rpis: &HashMap<[u8; 16], PersonId>,
    deriver: &mut TokenDeriver,
) -> HashSet<PersonId> {
    let mut set = HashSet::new();
    for k in &batch_keys(bytes, trust, now) {
        for block in deriver.rpis(&k.tek, k.rolling_start, k.rolling_period) {
            let mut rpi = [0u8; 16];
            rpi.copy_from_slice(&block[..]);
            if let Some(&p) = uploader_rpis.get(&rpi) {
                set.insert(p);
            }
        }
    }
    set
}
