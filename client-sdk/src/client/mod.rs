//! The host side of the network, for apps that do not bring their own (cargo
//! feature `client`, off by default): given node URLs it pages through the
//! batch list from the SDK's cursor and hands each batch to the SDK, fetches
//! the parts of day filters it lacks (every day's in one request), fetches the venue
//! warning batches above the SDK's warning cursor ([`warnings`]), buys upload tokens
//! from the issuer, and posts sealed uploads and dummies through a relay that
//! is neither the gateway nor the download node. Blocking HTTP over rustls
//! ([`http`]), bounded retries with back-off; no libp2p, no QUIC.
//!
//! The client holds the SDK only for each SDK call ([`Phone`]), never across a
//! download, so a host recording sightings from a Bluetooth callback is not
//! blocked by a slow network.

pub mod http;
mod warnings;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use traceless_protocol::filter::MAX_FILTER_PARTS;
use traceless_protocol::{BatchList, PublishedBatch, TokenPublicKey, RETENTION_DAYS};

/// Most `GET /v1/batch-list/{origin}` rounds of one sync: each brings up to 1,000
/// batches, so this covers any retention window's worth.
const MAX_BATCH_ROUNDS: usize = 10_000;

/// Most `GET /v1/filter-parts/{origin}` rounds of one sync: each brings at
/// least one part of a kept day's filter.
const MAX_FILTER_ROUNDS: u64 = (RETENTION_DAYS as u64 + 1) * MAX_FILTER_PARTS;

use crate::{Sdk, SdkError};
pub use http::HttpOptions;
use http::{Answer, Http};

/// Why a network step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node URLs do not keep the upload anonymous, or are malformed.
    #[error("client configuration: {0}")]
    Config(String),
    /// No answer after every retry (connection, TLS, timeout).
    #[error("{url}: {reason}")]
    Network {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A node answered with an unexpected status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// A node answered 200 with a body that is not what the API describes.
    #[error("{url}: unexpected answer: {reason}")]
    BadAnswer {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SDK refused a step.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// The SDK handle was closed.
    #[error("the SDK handle is closed")]
    Closed,
}

/// How the client reaches the SDK: one call at a time, released in between.
pub trait Phone {
    /// Runs `f` on the SDK.
    fn with<T>(&self, f: impl FnOnce(&mut Sdk) -> crate::Result<T>) -> Result<T, ClientError>;
}

impl Phone for Mutex<Sdk> {
    fn with<T>(&self, f: impl FnOnce(&mut Sdk) -> crate::Result<T>) -> Result<T, ClientError> {
        let mut sdk = self.lock().map_err(|_| ClientError::Closed)?;
        Ok(f(&mut sdk)?)
    }
}

/// Where the client goes.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL of the node batches and filters are downloaded from.
    pub download_node: String,
    /// Base URL of the relay sealed uploads go through: another node than the
    /// gateway (which must not see the phone's address) and than the download node.
    pub relay: String,
    /// Base URL of the authority's gateway (keys, token issuer).
    pub gateway: String,
    /// The authority's origin (what is synced, where uploads go).
    pub origin: String,
    /// Timeouts, retries, pinning.
    pub http: HttpOptions,
}

/// What one [`Client::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncTotals {
    /// Batches synced.
    pub batches: usize,
    /// Responses of day-filter parts synced (one a sync unless a size cap
    /// cut it).
    pub filters: usize,
    /// Keys (and filter entries) matched.
    pub keys: usize,
    /// New exposure windows found.
    pub new_windows: usize,
    /// Venue warning batches synced.
    pub warning_batches: usize,
    /// New venue matches (check-ins at a traced venue and hour) found.
    pub venue_matches: usize,
    /// Downloads the SDK rejected (skipped; the rest still synced).
    pub rejected: usize,
}

/// The gateway's public keys (`GET /v1/gateway-keys`).
#[derive(Clone, Debug)]
pub struct GatewayKeys {
    /// X25519 key sealed uploads are sealed to.
    pub seal: [u8; 32],
    /// The issuer's token keys, oldest first.
    pub tokens: Vec<TokenPublicKey>,
    /// The `mpk` of the gateway's self-reported codes (SPEC.md §12.11), if it
    /// publishes one.
    pub venue: Option<[u8; 96]>,
}

/// The host's network client.
pub struct Client {
    config: ClientConfig,
    http: Http,
    /// ETag of each revalidated download (day filters, risk configuration,
    /// warning batches), by URL.
    etags: Mutex<HashMap<String, String>>,
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Client {
    /// A client for `config`. `Config` if the relay is the gateway or the
    /// download node, or a URL is not http(s).
    pub fn new(mut config: ClientConfig) -> Result<Client, ClientError> {
        for url in [
            &mut config.download_node,
            &mut config.relay,
            &mut config.gateway,
        ] {
            *url = base(url);
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ClientError::Config(format!("{url} is not an http(s) URL")));
            }
        }
        if config.relay == config.gateway || config.relay == config.download_node {
            return Err(ClientError::Config(
                "the relay must be another node than the gateway and the download node".into(),
            ));
        }
        let http = Http::new(&config.http);
        Ok(Client {
            config,
            http,
            etags: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn expect_ok(url: &str, answer: Answer) -> Result<Vec<u8>, ClientError> {
        if answer.status == 200 {
            return Ok(answer.body);
        }
        let body = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned();
        Err(ClientError::Status {
            url: url.to_owned(),
            status: answer.status,
            body,
        })
    }

    fn json(&self, url: &str) -> Result<Value, ClientError> {
        let body = Self::expect_ok(url, self.http.get(url, None)?)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }

    /// GET `url` with the ETag of its last download kept, if any (304 then
    /// if unchanged).
    fn get_revalidated(&self, url: &str) -> Result<Answer, ClientError> {
        let etag = self.etags.lock().ok().and_then(|t| t.get(url).cloned());
        self.http.get(url, etag.as_deref())
    }

    /// Keeps `url`'s ETag for [`Client::get_revalidated`].
    fn keep_etag(&self, url: String, tag: Option<String>) {
        if let (Some(tag), Ok(mut tags)) = (tag, self.etags.lock()) {
            tags.insert(url, tag);
        }
    }

    /// A download's URL: relative paths are on the download node.
    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.config.download_node)
        } else {
            url.to_owned()
        }
    }

    /// Hands one download to the SDK: a rejected one is counted and skipped, an
    /// already synced one ignored.
    fn hand_over(
        &self,
        phone: &impl Phone,
        totals: &mut SyncTotals,
        sync: impl FnOnce(&mut Sdk) -> crate::Result<crate::SyncReport>,
    ) -> Result<bool, ClientError> {
        match phone.with(sync) {
            Ok(report) => {
                totals.keys += report.keys;
                totals.new_windows += report.new_windows;
                Ok(true)
            }
            Err(ClientError::Sdk(SdkError::Rejected(_) | SdkError::Log(_))) => {
                totals.rejected += 1;
                Ok(false)
            }
            Err(ClientError::Sdk(SdkError::AlreadySynced(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Downloads everything new for the origin and syncs it: every page of
    /// batches after the SDK's cursor, then every page of the parts of day
    /// filters above those the phone holds, then each venue warning batch
    /// above the SDK's warning cursor ([`Client::sync_warnings`]).
    pub fn sync(&self, phone: &impl Phone) -> Result<SyncTotals, ClientError> {
        let origin = &self.config.origin;
        let node = &self.config.download_node;
        let mut totals = SyncTotals::default();
        let proofs = phone.with(|s| Ok(s.log_proofs_required()))? > 0;
        let mut after = phone.with(|s| s.cursor(origin))?.unwrap_or(0);
        // Bounded: each round moves the cursor past at least one batch, or stops.
        // A list the node did not cut short (no `rel="next"`, SPEC.md §6.1)
        // holds everything there is: no second request to learn that.
        for _ in 0..MAX_BATCH_ROUNDS {
            let url = format!("{node}/v1/batch-list/{origin}?after={after}");
            let answer = self.http.get(&url, None)?;
            let more = answer.next_page;
            let body = Self::expect_ok(&url, answer)?;
            let list = BatchList::decode(&body).map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let mut highest = after;
            for bytes in &list.batches {
                let claimed = PublishedBatch::decode(bytes).ok();
                let Some(sequence) = claimed.and_then(|b| b.claimed_sequence()) else {
                    totals.rejected += 1;
                    continue;
                };
                highest = highest.max(sequence);
                let synced = if proofs {
                    let proof = self.publication_proof(node, sequence)?;
                    let synced =
                        self.hand_over(phone, &mut totals, |s| s.sync_batch_proven(bytes, &proof))?;
                    // A batch of this phone's own upload: the download node holds it.
                    if synced {
                        self.note_presence(phone, node, &proof)?;
                    }
                    synced
                } else {
                    self.hand_over(phone, &mut totals, |s| s.sync_batch(bytes))?
                };
                if synced {
                    totals.batches += 1;
                }
            }
            if highest <= after || !more {
                break;
            }
            after = highest;
        }
        // Every day's new parts in one request (SPEC.md §6.1). Bounded: each
        // round the node cut short holds a part the phone lacked, or stops.
        for _ in 0..MAX_FILTER_ROUNDS {
            let held = phone.with(|s| s.filter_held(origin))?;
            let url = format!("{node}/v1/filter-parts/{origin}?held={}", held.query());
            let answer = self.http.get(&url, None)?;
            let more = answer.next_page;
            let bytes = Self::expect_ok(&url, answer)?;
            if !bytes.is_empty() && self.hand_over(phone, &mut totals, |s| s.sync_filter(&bytes))? {
                totals.filters += 1;
            }
            if !more || phone.with(|s| s.filter_held(origin))? == held {
                break;
            }
        }
        let warnings = self.sync_warnings(phone)?;
        totals.warning_batches = warnings.warning_batches;
        totals.venue_matches = warnings.venue_matches;
        totals.rejected += warnings.rejected;
        Ok(totals)
    }

    /// `node`'s publication proof of batch `sequence` of the origin.
    fn publication_proof(&self, node: &str, sequence: u64) -> Result<Vec<u8>, ClientError> {
        let url = format!(
            "{node}/v1/log/proof/batch/{}/{sequence}",
            self.config.origin
        );
        Self::expect_ok(&url, self.http.get(&url, None)?)
    }

    /// Records `node` in the data report if `proof` is of one of its batches.
    fn note_presence(
        &self,
        phone: &impl Phone,
        node: &str,
        proof: &[u8],
    ) -> Result<bool, ClientError> {
        match phone.with(|s| s.record_log_proof(node, proof)) {
            Ok(_) => Ok(true),
            Err(ClientError::Sdk(SdkError::InvalidArgument(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `(sequence, days)` of every batch of the origin `node` lists.
    fn listed(&self, node: &str) -> Result<Vec<(u64, Vec<u32>)>, ClientError> {
        let origin = &self.config.origin;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let url = format!("{node}/v1/batches?origin={origin}&after={after}&limit=1000");
            let list = self.json(&url)?;
            let entries = list["batches"].as_array().cloned().unwrap_or_default();
            for e in &entries {
                let days: Option<Vec<u32>> = e["days"].as_array().and_then(|days| {
                    days.iter()
                        .map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()))
                        .collect()
                });
                let (Some(sequence), Some(days)) = (e["sequence"].as_u64(), days) else {
                    return Err(ClientError::BadAnswer {
                        url,
                        reason: "a batch without sequence or days".into(),
                    });
                };
                out.push((sequence, days));
            }
            match list["next_after"].as_u64() {
                Some(next) if next > after && !entries.is_empty() => after = next,
                _ => return Ok(out),
            }
        }
    }

    /// Asks each of `nodes` (base URLs) for publication proofs and records
    /// what verifies for the phone's data report: where its keys are and, once
    /// a node deleted them, when (SPEC.md §8.3.2). A node that never held a
    /// batch (404) is skipped. Returns the proofs recorded.
    ///
    /// What a node learns from the requests: not which batches are this
    /// phone's, only which key days it asks about. For each day of the report
    /// it asks for every batch of that day the node still lists (and for the
    /// report's own batches, which a node stops listing once deleted).
    pub fn refresh_data_report(
        &self,
        phone: &impl Phone,
        nodes: &[String],
    ) -> Result<usize, ClientError> {
        let report = phone.with(|s| s.data_report())?;
        let own: Vec<_> = report
            .publications
            .iter()
            .filter(|p| p.origin == self.config.origin)
            .collect();
        if own.is_empty() {
            return Ok(0);
        }
        let days: std::collections::BTreeSet<u32> = own.iter().map(|p| p.day).collect();
        let mut recorded = 0;
        for node in nodes.iter().map(|n| base(n)) {
            let mut wanted: std::collections::BTreeSet<u64> =
                own.iter().map(|p| p.sequence).collect();
            wanted.extend(
                self.listed(&node)?
                    .into_iter()
                    .filter(|(_, listed)| listed.iter().any(|d| days.contains(d)))
                    .map(|(sequence, _)| sequence),
            );
            for sequence in wanted {
                match self.publication_proof(&node, sequence) {
                    Ok(proof) => recorded += usize::from(self.note_presence(phone, &node, &proof)?),
                    Err(ClientError::Status { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(recorded)
    }

    /// The gateway's seal key and token keys.
    pub fn gateway_keys(&self) -> Result<GatewayKeys, ClientError> {
        let url = format!("{}/v1/gateway-keys", self.config.gateway);
        let v = self.json(&url)?;
        let bad = |reason: &str| ClientError::BadAnswer {
            url: url.clone(),
            reason: reason.into(),
        };
        let hex32 =
            |v: &Value| -> Option<[u8; 32]> { hex::decode(v.as_str()?).ok()?.try_into().ok() };
        let seal = hex32(&v["seal_public_key"]).ok_or_else(|| bad("seal_public_key"))?;
        let mut tokens = Vec::new();
        for k in v["token_keys"].as_array().cloned().unwrap_or_default() {
            let epoch = k["epoch"]
                .as_u64()
                .and_then(|e| u32::try_from(e).ok())
                .ok_or_else(|| bad("token key epoch"))?;
            let key = hex32(&k["public_key"]).ok_or_else(|| bad("token public_key"))?;
            tokens.push(TokenPublicKey { epoch, key });
        }
        let venue = match &v["venue_public_key"] {
            Value::Null => None,
            key => Some(
                key.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("venue_public_key"))?,
            ),
        };
        Ok(GatewayKeys {
            seal,
            tokens,
            venue,
        })
    }

    /// Fetches the export keys listed by the download node (`GET
    /// /v1/export-keys`) and has the SDK verify each of the origin's
    /// certificates against its trust list before it trusts the key for GAEN
    /// export files (SPEC.md §6.2); returns how many it trusted. A certificate
    /// the SDK refuses is an error (`Sdk(Rejected)`): the node served a key its
    /// authority did not certify.
    pub fn trust_export_keys(&self, phone: &impl Phone) -> Result<usize, ClientError> {
        let url = format!("{}/v1/export-keys", self.config.download_node);
        let list = self.json(&url)?;
        let mut trusted = 0;
        for entry in list["export_keys"].as_array().cloned().unwrap_or_default() {
            if entry["origin"].as_str() != Some(self.config.origin.as_str()) {
                continue;
            }
            let cert = entry["certificate"]
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| ClientError::BadAnswer {
                    url: url.clone(),
                    reason: "an export key without a hex certificate".into(),
                })?;
            phone.with(|s| s.trust_export_certificate(&cert))?;
            trusted += 1;
        }
        Ok(trusted)
    }

    /// Fetches the origin's signed risk configuration from the download node
    /// (`GET /v1/risk-config`, revalidated with its ETag) and has the SDK apply
    /// it, which it does only after verifying the authority's signature and
    /// that the revision is above the one applied (SPEC.md §7.3). Returns the
    /// revision applied, or `None` if the node has none or it is unchanged.
    /// A forged or older configuration is an error (`Sdk(Rejected)`,
    /// `Sdk(AlreadySynced)`) and leaves the configuration as it was.
    pub fn update_risk_config(&self, phone: &impl Phone) -> Result<Option<u64>, ClientError> {
        let url = format!(
            "{}/v1/risk-config?origin={}",
            self.config.download_node, self.config.origin
        );
        let answer = self.get_revalidated(&url)?;
        if answer.status == 304 || answer.status == 404 {
            return Ok(None);
        }
        let tag = answer.etag.clone();
        let bytes = Self::expect_ok(&url, answer)?;
        let revision = phone.with(|s| s.apply_risk_config(&bytes))?;
        self.keep_etag(url, tag);
        Ok(Some(revision))
    }

    /// Buys `count` upload tokens with the authority's code from the issuer of
    /// the gateway's newest token key; returns how many were stored.
    pub fn buy_tokens(
        &self,
        phone: &impl Phone,
        code: &[u8],
        count: usize,
    ) -> Result<usize, ClientError> {
        let keys = self.gateway_keys()?;
        let key = keys
            .tokens
            .iter()
            .max_by_key(|k| k.epoch)
            .cloned()
            .ok_or_else(|| ClientError::Config("the gateway issues no tokens".into()))?;
        let request = phone.with(|s| s.token_request(key.epoch, count, code))?;
        let url = format!("{}/v1/tokens", self.config.gateway);
        let response = Self::expect_ok(&url, self.http.post(&url, &request)?)?;
        phone.with(|s| s.token_finalize(&response, &key))
    }

    /// Posts sealed bytes to the relay. (If an attempt arrived but its answer
    /// was lost, the retry is answered 409, token already redeemed: reported
    /// as `Status`, as the SDK has spent the token either way.)
    fn post_sealed(&self, sealed: &[u8]) -> Result<(), ClientError> {
        let url = format!("{}/v1/relay/{}", self.config.relay, self.config.origin);
        let answer = self.http.post(&url, sealed)?;
        Self::expect_ok(&url, answer).map(drop)
    }

    /// Seals a positive diagnosis (keys from `onset_day`, minus `exclude_days`)
    /// with one stored token and posts it through the relay.
    pub fn upload_diagnosis(
        &self,
        phone: &impl Phone,
        onset_day: u32,
        exclude_days: &[u32],
    ) -> Result<(), ClientError> {
        let seal = self.gateway_keys()?.seal;
        let sealed = phone.with(|s| s.sealed_diagnosis_upload(&seal, onset_day, exclude_days))?;
        self.post_sealed(&sealed)
    }

    /// Seals the self-reported venue stays of a diagnosis with symptom onset on
    /// `onset_day` (one stored token per upload, see
    /// [`Sdk::sealed_stay_uploads`]) and posts each through the relay; returns
    /// how many uploads were sent (0: nothing to report).
    pub fn upload_stays(&self, phone: &impl Phone, onset_day: u32) -> Result<usize, ClientError> {
        let seal = self.gateway_keys()?.seal;
        let uploads = phone.with(|s| s.sealed_stay_uploads(&seal, onset_day))?;
        for sealed in &uploads {
            self.post_sealed(sealed)?;
        }
        Ok(uploads.len())
    }

    /// The dummy schedule: if the next dummy upload is due at `now`, sends one
    /// through the relay (and the SDK draws the next time). Returns whether it
    /// sent one.
    pub fn run_dummy_schedule(&self, phone: &impl Phone, now: u64) -> Result<bool, ClientError> {
        if phone.with(|s| s.next_dummy_upload_at())? > now {
            return Ok(false);
        }
        let seal = self.gateway_keys()?.seal;
        let dummy = phone.with(|s| s.sealed_dummy_upload(&seal))?;
        self.post_sealed(&dummy)?;
        Ok(true)
    }
}
