//! The transparency page at `/`: in plain words, what this node holds (key counts
//! per day, never a person), when each day's data will be deleted, what was
//! deleted, which venue warnings it holds (never which venue), which
//! authorities it trusts and which peers it federates with.
//! Server-rendered HTML without scripts; figures carry `data-*` attributes so
//! that tests (and anyone) can read them back.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use crate::clock::{date_of_day, datetime_of_unix};
use crate::federation::witnessing::Book;
use traceless_protocol::log::hex_hash;

use crate::core::Core;
use crate::http::api::{blocking, ApiError};
use crate::http::HttpState;
use crate::storage::warnings::{WarningMeta, WARNING_RETENTION_SECS};

type Shared = State<Arc<HttpState>>;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /`.
pub async fn page(State(http): Shared) -> Result<Html<String>, ApiError> {
    let s = http.core.clone();
    let s2 = s.clone();
    let (snapshot, log, warnings) = blocking(move || {
        Ok((
            s2.public_snapshot(),
            s2.store.deletion_log()?,
            s2.warning_files().list(None, 0)?,
        ))
    })
    .await?;
    let summary = &snapshot.summary;
    let days = &summary.days;
    let view = http.federation.peers();
    // As of the period's boundary, so that the page moves only at boundaries.
    let now = snapshot.boundary;
    let total_keys = summary.served_keys();
    // As `/metrics` counts them (`traceless_embargoed_keys`): a gateway's pool
    // is not shown (SPEC.md §6.4).
    let total_embargoed = summary.embargoed_keys();
    let role = match &s.gateway {
        Some(_) => "This server is the upload gateway of a health authority: it accepts the keys that people who tested positive chose to publish, signs them and passes them on to relay nodes",
        None => "This server relays the keys that people who tested positive chose to publish",
    };

    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Traceless node: what this server holds</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}}
table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}th,td{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}}code{{font-size:.85em;word-break:break-all}}.muted{{color:#666}}</style>
</head><body>
<h1>What this Traceless node holds</h1>
<p>{role}, so that phones can check for
exposure <strong>on the phone itself</strong>. It holds <strong>no names, phone numbers, addresses, locations or
IP addresses</strong>, and it never logs who downloads or uploads. Each published key is a random number that
a phone broadcast on one day; it says nothing about who the person is.</p>
<p id="summary" data-total-keys="{total_keys}" data-embargoed-keys="{total_embargoed}" data-deletion-log-entries="{log_len}">
Right now this node serves <strong>{total_keys}</strong> keys{embargo_sentence}.
Page generated {now_text}.</p>
"#,
        log_len = log.len(),
        embargo_sentence = if total_embargoed > 0 {
            format!(", and holds back <strong>{total_embargoed}</strong> more that are still too fresh to publish (a key is published only 2 hours after the day it was used, so nobody can recognise its owner's phone nearby)")
        } else {
            String::new()
        },
        now_text = datetime_of_unix(now),
    );

    // The clock alarm (SPEC.md §2.1), as of the snapshot.
    if let Some(alert) = snapshot.clock.alert() {
        let _ = writeln!(
            h,
            r#"<p id="clock-alert" role="alert" data-clock-offset-seconds="{}" style="border:2px solid #b00;padding:.5rem"><strong>{}</strong></p>"#,
            snapshot.clock.offset(),
            esc(&alert)
        );
    }
    h.push_str("<h2>Keys per day, and when they will be deleted</h2>\n");
    if days.is_empty() {
        h.push_str("<p id=\"no-days\">This node holds no keys at the moment.</p>\n");
    } else {
        h.push_str("<table id=\"days\"><thead><tr><th>Day the keys were used</th><th>Keys</th><th>Held back (embargo)</th><th>Filter parts</th><th>Filter entries</th><th>Deleted automatically by</th></tr></thead><tbody>\n");
        for (day, d) in days.iter().rev() {
            let _ = writeln!(
                h,
                "<tr class=\"day\" data-day=\"{day}\" data-keys=\"{keys}\" data-embargoed=\"{emb}\" data-filters=\"{filters}\" data-filter-entries=\"{fentries}\" data-deleted-by=\"{del}\"><td>{date}</td><td class=\"n\">{keys}</td><td class=\"n\">{emb}</td><td class=\"n\">{filters}</td><td class=\"n\">{fentries}</td><td>{deleted}</td></tr>",
                keys = d.keys,
                filters = d.filters,
                fentries = d.filter_entries,
                emb = d.embargoed_keys,
                del = d.deleted_by,
                date = date_of_day(*day),
                deleted = datetime_of_unix(d.deleted_by),
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if s.gateway.is_some() {
        let p = &s.config.publication;
        let every = match p.period_seconds {
            3600 => "hour".to_owned(),
            n if n % 60 == 0 => format!("{} minutes", n / 60),
            n => format!("{n} seconds"),
        };
        let _ = writeln!(
            h,
            "<p id=\"publication\" data-period-seconds=\"{period}\" data-min-keys=\"{k}\">Keys this node receives wait, and are published together every {every}, shuffled, with random keys that belong to nobody added so that each publication holds at least <strong>{k}</strong> keys. No phone can match a random key, and nothing here says how many of the keys are real or when any of them arrived.</p>",
            period = p.period_seconds,
            k = p.min_keys,
        );
    }
    h.push_str("<p class=\"muted\">A filter holds, instead of whole keys, scrambled entries for just the 10-minute periods a person chose to share; a phone can test what it heard against it but cannot read anything out of it. Each publication period adds a part holding only what is new. Filters are listed at <a href=\"/v1/filters\">/v1/filters</a>.</p>\n");
    warnings_section(&mut h, &warnings, now);
    h.push_str("<p class=\"muted\">Keys are deleted 14 days after the day they were used. Every deletion is recorded below, signed by this node, so anyone can check that it happened.</p>\n");

    let _ = writeln!(
        h,
        "<h2>Deletion log</h2>\n<p>Signed by this node's key <code id=\"node-id\">{}</code>. Machine-readable and verifiable at <a href=\"/v1/deletion-log\">/v1/deletion-log</a>.</p>",
        hex::encode(s.node_id())
    );
    let size = s.log.size()?;
    if log.is_empty() {
        h.push_str("<p id=\"no-deletions\">Nothing has been deleted yet.</p>\n");
    } else {
        h.push_str("<table id=\"deletions\"><thead><tr><th>#</th><th>When</th><th>Authority</th><th>Day of the keys</th><th>Keys (or filter entries) deleted</th><th>Batches (or filter parts)</th></tr></thead><tbody>\n");
        for e in log.iter().rev() {
            let Ok(r) = e.verify() else { continue };
            for d in &r.deleted {
                let proof = match s.log.deletion_entry(r.index)? {
                    Some(i) => format!(
                        " <a class=\"proof\" href=\"/v1/log/proof/inclusion?index={i}&amp;size={size}\">proof (public record #{i})</a>"
                    ),
                    None => String::new(),
                };
                let _ = writeln!(
                    h,
                    "<tr class=\"deletion\" data-index=\"{}\" data-keys=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}–{}{proof}</td></tr>",
                    r.index, d.key_count, r.index, datetime_of_unix(r.deleted_at), esc(&d.origin),
                    date_of_day(d.day), d.key_count, d.first_sequence, d.last_sequence
                );
            }
        }
        h.push_str("</tbody></table>\n");
    }

    log_section(&mut h, &s, http.federation.witnessing())?;
    statistics_section(&mut h, &s, now)?;

    h.push_str("<h2>Health authorities this node trusts</h2>\n<p>Only keys signed by one of these authorities are stored or passed on, whoever sends them.</p>\n");
    let trust = s.trust.entries();
    if trust.is_empty() {
        h.push_str("<p id=\"no-authorities\">None: this node accepts no keys.</p>\n");
    } else {
        h.push_str("<ul id=\"authorities\">\n");
        for (origin, key_id, key) in trust {
            let _ = writeln!(
                h,
                "<li class=\"authority\" data-origin=\"{o}\">{o} (key {key_id}: <code>{}</code>)</li>",
                hex::encode(key.to_bytes()),
                o = esc(origin)
            );
        }
        h.push_str("</ul>\n");
    }

    h.push_str(&super::exports::transparency_section(&http)?);

    h.push_str("<h2>Nodes this node exchanges keys with</h2>\n");
    let _ = writeln!(
        h,
        "<p>This node is <code id=\"peer-id\">{}</code>.</p>",
        view.local_peer_id
            .map(|p| p.to_string())
            .unwrap_or_default()
    );
    if view.connected.is_empty() {
        h.push_str("<p id=\"no-peers\" data-peers=\"0\">None connected right now.</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<ul id=\"peers\" data-peers=\"{}\">",
            view.connected.len()
        );
        for p in &view.connected {
            let _ = writeln!(h, "<li class=\"peer\"><code>{p}</code></li>");
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<p class=\"muted\">Machine-readable: <a href=\"/v1/origins\">/v1/origins</a>, <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n");
    Ok(Html(h))
}

/// The public record: the transparency log's size, its latest signed
/// checkpoint, and who countersigned it, in plain words.
fn log_section(h: &mut String, s: &Core, book: &Book) -> Result<(), ApiError> {
    let (cp, _) = s.log.checkpoint()?;
    let _ = writeln!(
        h,
        "<h2>Public record</h2>\n<p id=\"log\" data-log-size=\"{size}\" data-log-root=\"{root}\">Everything this node stores, deletes or issues is written into a public record that can only grow: \
nothing in it can be changed or removed later without everyone noticing. It has <strong>{size}</strong> entries. \
Its latest state is signed by this node as <a href=\"/v1/log/checkpoint\">checkpoint</a> <code>{root}</code>; \
anyone can read the <a href=\"/v1/log/entries?start=0&amp;end={size}\">entries</a> and check that any entry is in it, or that today's record extends yesterday's, with the proofs at <code>/v1/log/proof/</code>.</p>",
        size = cp.size,
        root = hex_hash(&cp.root),
    );
    witness_section(h, book);
    Ok(())
}

/// Who countersigned this node's latest checkpoint, and, in red, every node
/// caught showing two different records (with the two signed notes).
fn witness_section(h: &mut String, book: &Book) {
    let witnesses = book.own_witnesses();
    let _ = write!(
        h,
        "<p id=\"witnesses\" data-witnesses=\"{n}\">Other nodes countersign this record as witnesses, so this node cannot show different people different records. ",
        n = witnesses.len()
    );
    if witnesses.is_empty() {
        h.push_str("No witness has countersigned the latest checkpoint yet.</p>\n");
    } else {
        let _ = write!(
            h,
            "<strong>{}</strong> witnesses countersigned the latest checkpoint:</p>\n<ul>",
            witnesses.len()
        );
        for w in &witnesses {
            let _ = write!(h, "<li><code>{}</code></li>", esc(w));
        }
        h.push_str("</ul>\n");
    }
    let caught = book.equivocations();
    if caught.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<div id=\"equivocation\" data-equivocations=\"{}\" style=\"border:2px solid #b00;background:#fee;color:#600;padding:.5rem 1rem;margin:1rem 0\">",
        caught.len()
    );
    for e in &caught {
        let whose = match &e.authority {
            Some(a) => format!("the upload gateway of <strong>{}</strong>", esc(a)),
            None => "another node".into(),
        };
        let _ = writeln!(
            h,
            "<p><strong>Warning: {whose} showed different people different versions of its public record.</strong> \
It signed two records of the same length ({size} entries) with different contents, which an honest node never does. \
This node no longer countersigns that node's record{stop}. Both signed versions are below, so anyone can check them \
(also at <a href=\"/v1/witness/equivocations\">/v1/witness/equivocations</a>).</p>\n<pre>{first}</pre>\n<pre>{second}</pre>",
            size = e.size,
            stop = if e.authority.is_some() {
                " and no longer passes on its keys"
            } else {
                ""
            },
            first = esc(&String::from_utf8_lossy(&e.first)),
            second = esc(&String::from_utf8_lossy(&e.second)),
        );
    }
    h.push_str("</div>\n");
}

/// Every listed day's public figures as of `now` (SPEC.md §8.4); gateways only.
fn public_days(
    s: &Core,
    now: u64,
) -> Result<Option<Vec<crate::operators::statistics::DayFigures>>, ApiError> {
    if s.gateway.is_none() {
        return Ok(None);
    }
    Ok(Some(crate::operators::statistics::public_days(
        &s.upload_stats,
        &s.log,
        now,
    )?))
}

/// Uploads, keys and codes issued per day, where a day is published (SPEC.md
/// §8.4); a withheld day says "fewer than 10" and nothing else.
fn statistics_section(h: &mut String, s: &Core, now: u64) -> Result<(), ApiError> {
    use crate::operators::statistics::{MIN_UPLOADS, WITHHOLD_SECONDS};
    let Some(days) = public_days(s, now)? else {
        return Ok(());
    };
    let _ = writeln!(
        h,
        "<h2>Uploads and codes per day</h2>\n<p>How many people published their keys through this health authority each day, how many keys that was, and how many upload codes its staff handed out (every code issued is also in the public record, with the name of the staff account). A day is shown only once it is over, and only if it had at least {MIN_UPLOADS} uploads or ended {} hours ago, so that a small number cannot point to a person. Machine-readable at <a href=\"/v1/statistics\">/v1/statistics</a>.</p>",
        WITHHOLD_SECONDS / 3600
    );
    h.push_str("<table id=\"statistics\"><thead><tr><th>Day</th><th>Uploads</th><th>Keys</th><th>Codes issued</th></tr></thead><tbody>\n");
    for d in days {
        match (d.uploads, d.keys, d.codes_issued) {
            (Some(u), Some(k), Some(c)) => {
                let _ = writeln!(
                    h,
                    "<tr class=\"stat\" data-day=\"{}\" data-published=\"true\" data-uploads=\"{u}\" data-keys=\"{k}\" data-codes=\"{c}\"><td>{}</td><td class=\"n\">{u}</td><td class=\"n\">{k}</td><td class=\"n\">{c}</td></tr>",
                    d.day,
                    date_of_day(d.day)
                );
            }
            _ => {
                let _ = writeln!(
                    h,
                    "<tr class=\"stat\" data-day=\"{}\" data-published=\"false\"><td>{}</td><td colspan=\"3\">fewer than {MIN_UPLOADS} uploads so far: figures shown {} hours after the day</td></tr>",
                    d.day,
                    date_of_day(d.day),
                    WITHHOLD_SECONDS / 3600
                );
            }
        }
    }
    h.push_str("</tbody></table>\n");
    Ok(())
}

/// `GET /v1/statistics`: the same figures as JSON, as of the period boundary.
pub async fn statistics(State(http): Shared) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let s = http.core.clone();
    let days = blocking(move || {
        let now = s.public_snapshot().boundary;
        public_days(&s, now)
    })
    .await?
    .ok_or_else(|| crate::http::api::not_found("statistics exist only on a gateway"))?;
    Ok(axum::Json(serde_json::json!({
        "min_uploads": crate::operators::statistics::MIN_UPLOADS,
        "withhold_seconds": crate::operators::statistics::WITHHOLD_SECONDS,
        "days": days,
    })))
}

/// The venue warning batches held as of `as_of` (the snapshot's boundary):
/// when each was published, how many hours of venues it warns about, when it
/// goes. Never a venue: its identity is sealed in the warning itself.
fn warnings_section(h: &mut String, warnings: &[WarningMeta], as_of: u64) {
    let shown: Vec<&WarningMeta> = warnings.iter().filter(|w| w.created_at <= as_of).collect();
    h.push_str("<h2>Venue warnings</h2>\n<p class=\"muted\">When a health authority and a venue's owner together warn the people who were at a place at certain hours, the warning is published here for phones to check. It does not say which place: only a phone that was there can read it. Each row is one publication; each hour of a place counts as one warning. Listed at <a href=\"/v1/warnings\">/v1/warnings</a>.</p>\n");
    if shown.is_empty() {
        h.push_str("<p id=\"no-warnings\">This node holds no venue warnings at the moment.</p>\n");
        return;
    }
    h.push_str("<table id=\"warnings\"><thead><tr><th>Published</th><th>Authority</th><th>Hours warned about</th><th>Deleted automatically by</th></tr></thead><tbody>\n");
    for w in shown {
        let deleted_by = w.created_at.saturating_add(WARNING_RETENTION_SECS);
        let _ = writeln!(
            h,
            "<tr class=\"warning\" data-origin=\"{origin}\" data-sequence=\"{seq}\" data-warnings=\"{n}\" data-created-at=\"{at}\" data-deleted-by=\"{deleted_by}\"><td>{published}</td><td>{origin}</td><td class=\"n\">{n}</td><td>{deleted}</td></tr>",
            origin = esc(&w.origin),
            seq = w.sequence,
            n = w.warnings,
            at = w.created_at,
            published = datetime_of_unix(w.created_at),
            deleted = datetime_of_unix(deleted_by),
        );
    }
    h.push_str("</tbody></table>\n");
}
