//! [`Sdk`]: one phone's state and everything the host app calls.

use std::path::Path;
use std::sync::Arc;

use traceless_protocol::ed25519_dalek::VerifyingKey;
use traceless_protocol::log::{NoteKey, PublicationProof};
use traceless_protocol::p256::ecdsa::VerifyingKey as ExportKey;
use traceless_protocol::token::MAX_TOKEN_MESSAGE_LEN;
use traceless_protocol::wire::HeldRevisions;
use traceless_protocol::{
    day_of_unix, interval_number, Advertisement, DaySummary, DiagnosisKey, ExportKeyCertificate,
    FilterParts, IntervalMask, SharedClock, SignedExportKey, SignedRiskConfig, TokenPublicKey,
    TokenRequest, TokenResponse, TrustList, UploadToken, WireError, RETENTION_DAYS,
};

use zeroize::Zeroizing;

use crate::checkins::{self, CheckIn};
use crate::config::SdkConfig;
use crate::data_report::{self, DataPublication, DataReport};
use crate::error::{Result, SdkError};
use crate::filters;
use crate::own_keys;
use crate::sightings::{self, Counters, ObservationSet, Sighting};
use crate::storage::{MemoryStorage, SledStorage, Storage};
use crate::sync::{self, SyncReport, Verified};
use crate::tokens;
use crate::upload;
use crate::vault::{MasterKey, Vault};

/// Counts that tell the app how its store is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// UTC days whose data is kept (and decryptable).
    pub days_kept: Vec<u32>,
    /// Scan instances stored over all kept days.
    pub scan_instances: usize,
    /// Records that exist but cannot be decrypted or decoded (damaged storage).
    pub unreadable_records: usize,
}

/// What a diagnosis upload publishes.
#[derive(Clone, Copy)]
enum Form<'a> {
    /// Whole keys (SPEC.md §5.3), minus the days left out.
    Keys { exclude_days: &'a [u32] },
    /// Chosen intervals (SPEC.md §5.8), minus the unix-second ranges left out.
    Filter { exclude: &'a [(u64, u64)] },
}

/// The phone side of Traceless. Not thread-safe by itself: one call at a time
/// (the C ABI serialises calls per handle).
pub struct Sdk {
    vault: Vault,
    clock: SharedClock,
    config: SdkConfig,
    trust: TrustList,
    /// Highest risk-configuration revision applied, per origin.
    risk_revisions: std::collections::HashMap<String, u64>,
    export_keys: Vec<ExportKey>,
    counters: Counters,
    /// Every stored sighting, decrypted and indexed for matching: built by the
    /// first sync (or [`Sdk::status`]) that needs it and kept between calls, so
    /// that a host syncing many batches, export files and day filters in a row
    /// decrypts and indexes once instead of once per download. Dropped (and its
    /// observations wiped, see [`ObservationSet`]) when a sighting is recorded,
    /// when a day is shredded (the retention pass at the first call of each
    /// day shreds one as soon as the phone is 15 days old) and whenever the host
    /// calls [`Sdk::expire`]; [`Sdk::observations`] also drops a set that is
    /// older than the vault's sighting records however they changed.
    ///
    /// Trade-off: between calls the process memory holds, in clear, the tokens,
    /// times and signal strengths of up to 15 days that are otherwise only on
    /// disk, sealed. That widens what a dump of the app's memory reveals only a
    /// little: the vault holds every live day key in memory for the SDK's whole
    /// life, so such a dump could decrypt the disk anyway. The set lives until
    /// one of the events above (on a phone in use, the next sighting, minutes
    /// away), and is wiped on drop as far as that is cheap (best effort: see
    /// [`ObservationSet`]).
    observations: Option<ObservationSet>,
    /// Day of the last retention pass.
    expired_through: Option<u32>,
    /// The token request awaiting the issuer's answer (memory only).
    pending_tokens: Option<TokenRequest>,
    /// Witnesses whose cosignatures count (host-set at each open, like the trust list).
    witnesses: Vec<NoteKey>,
    /// Trusted cosignatures a batch's publication proof needs; 0: proofs off.
    required_witnesses: usize,
    /// The data report's content, read at open (`None`: no report).
    data_report: Option<data_report::State>,
}

impl Sdk {
    /// Opens (or creates) the phone's store under `dir` with the host's master key.
    pub fn open(
        dir: &Path,
        master_key: &MasterKey,
        config: SdkConfig,
        clock: SharedClock,
    ) -> Result<Self> {
        Self::with_storage(Arc::new(SledStorage::open(dir)?), master_key, config, clock)
    }

    /// An SDK kept entirely in memory (simulations, tests).
    pub fn in_memory(config: SdkConfig, clock: SharedClock) -> Result<Self> {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        Self::with_storage(
            Arc::new(MemoryStorage::new()),
            &MasterKey(key),
            config,
            clock,
        )
    }

    /// Opens the SDK over any [`Storage`].
    pub fn with_storage(
        storage: Arc<dyn Storage>,
        master_key: &MasterKey,
        config: SdkConfig,
        clock: SharedClock,
    ) -> Result<Self> {
        config.validate()?;
        let vault = Vault::open(storage, master_key)?;
        sightings::migrate(&vault)?;
        // No retention pass here: the first call that reads the clock runs it
        // (`now`), so that a host can set its clock (a test, a simulation)
        // before anything is shredded by the system's time.
        Ok(Sdk {
            data_report: data_report::open(&vault)?,
            vault,
            clock,
            config,
            trust: TrustList::new(),
            risk_revisions: Default::default(),
            export_keys: Vec::new(),
            counters: Counters::default(),
            observations: None,
            expired_through: None,
            pending_tokens: None,
            witnesses: Vec::new(),
            required_witnesses: 0,
        })
    }

    /// Trusts batches signed by `(origin, key_id, key)`. Errors: an origin that
    /// is not 1..=64 characters of `[a-z0-9.-]` (SPEC.md §5.2), as
    /// [`SdkError::Rejected`] with [`WireError::InvalidField`] `origin`.
    pub fn trust_authority(&mut self, origin: &str, key_id: u32, key: VerifyingKey) -> Result<()> {
        Ok(self.trust.try_insert(origin, key_id, key)?)
    }

    /// Replaces the configuration (after checking it). Takes effect for the
    /// next sighting, sync and summary; windows already stored keep their
    /// durations, and the summary is scored with the new risk parameters.
    pub fn set_config(&mut self, config: SdkConfig) -> Result<()> {
        config.validate()?;
        if config.assumed_tx_power_dbm != self.config.assumed_tx_power_dbm
            || config.scan_period_s != self.config.scan_period_s
        {
            self.observations = None;
        }
        self.config = config;
        Ok(())
    }

    /// Verifies a risk configuration signed by a trusted authority (SPEC.md
    /// §7.3) and applies its parameters; returns its revision. Errors: anything
    /// malformed, untrusted or forged ([`SdkError::Rejected`]), and a revision
    /// not above the last one applied from that origin
    /// ([`SdkError::AlreadySynced`]). The host applies the latest signed
    /// configuration again after each open, as it configures the trust list.
    pub fn apply_risk_config(&mut self, bytes: &[u8]) -> Result<u64> {
        let now = self.now()?;
        let config =
            SignedRiskConfig::decode(bytes)?.verify(&self.trust, now, &self.config.risk)?;
        let applied = self.risk_revisions.get(&config.origin).copied();
        if applied.is_some_and(|r| r >= config.revision) {
            return Err(SdkError::AlreadySynced(format!(
                "risk config {} revision {} (revision {} is applied)",
                config.origin,
                config.revision,
                applied.unwrap_or_default()
            )));
        }
        let mut next = self.config.clone();
        next.risk = config.parameters;
        next.validate()?;
        self.config = next;
        self.risk_revisions.insert(config.origin, config.revision);
        Ok(config.revision)
    }

    /// Trusts GAEN export files signed by `key`.
    pub fn trust_export_key(&mut self, key: ExportKey) {
        self.export_keys.push(key);
    }

    /// Verifies an authority's export key certificate (a `SignedExportKey`,
    /// SPEC.md §6.2, as listed by `GET /v1/export-keys`) against the trust
    /// list and the clock, then trusts its key for export files; returns it.
    /// [`SdkError::Rejected`] if malformed, untrusted, forged or outside its
    /// validity: no key is trusted then.
    pub fn trust_export_certificate(&mut self, bytes: &[u8]) -> Result<ExportKeyCertificate> {
        let now = self.now()?;
        let cert = SignedExportKey::decode(bytes)?.verify(&self.trust, now)?;
        if !self.export_keys.contains(&cert.public_key) {
            self.export_keys.push(cert.public_key);
        }
        Ok(cert)
    }

    /// The configuration in use.
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    fn now(&mut self) -> Result<u64> {
        let now = self.clock.now();
        if self.expired_through != Some(day_of_unix(now)) {
            self.expire_at(now)?;
        }
        Ok(now)
    }

    /// Destroys every day older than the retention window (its key is overwritten,
    /// its records removed) and forgets stale sync bookkeeping. Runs by itself at
    /// the first call of each day; returns the days destroyed. Called by the
    /// host, it also drops the sightings decrypted for matching, so that none
    /// stay in memory (the next sync decrypts them again).
    pub fn expire(&mut self) -> Result<Vec<u32>> {
        self.observations = None;
        let now = self.clock.now();
        self.expire_at(now)
    }

    fn expire_at(&mut self, now: u64) -> Result<Vec<u32>> {
        let today = day_of_unix(now);
        let oldest_kept = today.saturating_sub(RETENTION_DAYS);
        let due: Vec<u32> = self
            .vault
            .live_days()
            .into_iter()
            .filter(|&d| d < oldest_kept)
            .collect();
        for &day in &due {
            self.vault.destroy_day(day)?;
        }
        checkins::tick(&mut self.vault, now)?;
        data_report::expire(&self.vault, &mut self.data_report, now)?;
        sync::prune_synced(&self.vault, now)?;
        self.counters
            .prune(oldest_kept, interval_number(now).saturating_sub(1));
        if !due.is_empty() {
            // Shredded days must not live on in memory.
            self.observations = None;
            self.vault.storage().flush()?;
        }
        self.expired_through = Some(today);
        Ok(due)
    }

    /// The 20 bytes to broadcast now (RPI || AEM). Draws today's key on first use.
    pub fn advertisement(&mut self) -> Result<Advertisement> {
        let now = self.now()?;
        own_keys::advertisement(&mut self.vault, now, self.config.tx_power_dbm)
    }

    /// Records one received advertisement. Errors: a payload that is not 20 bytes,
    /// a time in the future or before the retention window, or a cap reached.
    pub fn record_sighting(
        &mut self,
        payload: &[u8],
        rssi_dbm: i8,
        tx_power_dbm: Option<i8>,
        seen_at: u64,
    ) -> Result<()> {
        let now = self.now()?;
        let sighting = Sighting::new(payload, rssi_dbm, tx_power_dbm, seen_at)?;
        if seen_at > now.saturating_add(self.config.max_future_skew_s) {
            return Err(SdkError::InFuture {
                what: "sighting",
                at: seen_at,
                now,
            });
        }
        if day_of_unix(seen_at) < day_of_unix(now).saturating_sub(RETENTION_DAYS) {
            return Err(SdkError::TooOld {
                what: "sighting",
                at: seen_at,
                days: RETENTION_DAYS,
            });
        }
        self.observations = None;
        sightings::record(
            &mut self.vault,
            &mut self.counters,
            &self.config.caps,
            &sighting,
        )
    }

    /// Makes everything recorded so far durable (call when the app goes to the
    /// background; sync calls it by itself).
    pub fn flush(&self) -> Result<()> {
        self.vault.storage().flush()
    }

    /// The cached [`ObservationSet`], (re)loaded if there is none or the vault's
    /// sighting records changed since it was loaded.
    fn observations(&mut self) -> Result<&ObservationSet> {
        let version = self.vault.sightings_version();
        if self
            .observations
            .as_ref()
            .is_some_and(|set| set.version != version)
        {
            self.observations = None;
        }
        if self.observations.is_none() {
            self.observations = Some(sightings::load(
                &self.vault,
                self.config.scan_period_s,
                self.config.assumed_tx_power_dbm,
            )?);
        }
        Ok(self.observations.as_ref().expect("loaded above"))
    }

    /// Verifies a signed batch (bytes as downloaded from any node) against the
    /// trusted authorities, matches its keys against the stored sightings and
    /// keeps what matched. Rejects anything unsigned, untrusted, expired,
    /// malformed or already synced.
    ///
    /// While [`Sdk::require_log_proofs`] is on, refuses every batch
    /// ([`SdkError::LogProofRequired`]): use [`Sdk::sync_batch_proven`].
    pub fn sync_batch(&mut self, bytes: &[u8]) -> Result<SyncReport> {
        if self.required_witnesses > 0 {
            return Err(SdkError::LogProofRequired {
                required: self.required_witnesses,
            });
        }
        let now = self.now()?;
        let verified = sync::verify_batch(bytes, &self.trust, now)?;
        self.apply_batch(now, verified)
    }

    /// Like [`Sdk::sync_batch`], with the serving node's publication proof
    /// (`GET /v1/log/proof/batch/{origin}/{sequence}`, SPEC.md §8.3.1): the
    /// batch is accepted only if that node's log, at a checkpoint cosigned by
    /// at least [`Sdk::require_log_proofs`] trusted witnesses, holds exactly
    /// these bytes as this batch. A refused proof is [`SdkError::Log`] and
    /// changes nothing.
    pub fn sync_batch_proven(&mut self, bytes: &[u8], proof: &[u8]) -> Result<SyncReport> {
        let now = self.now()?;
        let verified = sync::verify_batch(bytes, &self.trust, now)?;
        let (origin, sequence) = verified.cursor.clone().expect("a batch has a cursor");
        PublicationProof::decode(proof)?.verify(
            &origin,
            sequence,
            &verified.content_id,
            &self.witnesses,
            self.required_witnesses,
        )?;
        self.apply_batch(now, verified)
    }

    /// Counts `key`'s cosignatures on checkpoints (a relay's node key; its
    /// witness name is `traceless.witness/<hex key>`).
    pub fn trust_witness(&mut self, key: VerifyingKey) {
        let key = NoteKey::witness_of_node(key);
        if !self.witnesses.contains(&key) {
            self.witnesses.push(key);
        }
    }

    /// From now on, accept batches only through [`Sdk::sync_batch_proven`],
    /// with a checkpoint cosigned by at least `witnesses` trusted witnesses;
    /// 0 (the default) turns the requirement off.
    pub fn require_log_proofs(&mut self, witnesses: usize) {
        self.required_witnesses = witnesses;
    }

    /// Trusted cosignatures a batch's proof needs (0: proofs off).
    pub fn log_proofs_required(&self) -> usize {
        self.required_witnesses
    }

    /// Notes the batch in the data report if it carries this phone's uploaded
    /// keys (once: noting is idempotent), then matches it.
    fn apply_batch(&mut self, now: u64, verified: Verified) -> Result<SyncReport> {
        if let Some((origin, sequence)) = &verified.cursor {
            data_report::note_batch(
                &self.vault,
                &mut self.data_report,
                now,
                origin,
                *sequence,
                verified.content_id,
                &verified.keys,
            )?;
        }
        self.apply(verified)
    }

    /// Where this phone's uploaded keys went: the batches that carry them (found
    /// while syncing) and, for each, the nodes whose logs were shown to hold
    /// and later to have deleted it ([`Sdk::record_log_proof`]). Empty if this
    /// phone has not uploaded in the last
    /// [`KEEP_DAYS`](crate::data_report::KEEP_DAYS) days.
    pub fn data_report(&mut self) -> Result<DataReport> {
        self.now()?;
        Ok(data_report::view(&self.data_report))
    }

    /// Adds a node's publication proof for one of the report's batches (the
    /// host fetched it from that node and labels it `node`, e.g. by its URL).
    /// [`SdkError::Log`] for a refused proof, `InvalidArgument` for a batch
    /// that carries none of this phone's keys; nothing changes then.
    pub fn record_log_proof(&mut self, node: &str, proof: &[u8]) -> Result<DataPublication> {
        let now = self.now()?;
        data_report::record_proof(
            &self.vault,
            &mut self.data_report,
            now,
            node,
            proof,
            &self.witnesses,
            self.required_witnesses,
        )
    }

    /// Destroys the data report (overwritten in place). Uploads stay published.
    pub fn forget_data_report(&mut self) -> Result<()> {
        data_report::forget(&self.vault)?;
        self.data_report = None;
        Ok(())
    }

    /// Like [`Sdk::sync_batch`] for a GAEN export zip (`export.bin` + `export.sig`),
    /// verified against the trusted export keys.
    pub fn sync_export(&mut self, zip: &[u8]) -> Result<SyncReport> {
        let now = self.now()?;
        let verified = sync::verify_export(zip, &self.export_keys, now)?;
        self.apply(verified)
    }

    fn apply(&mut self, verified: Verified) -> Result<SyncReport> {
        sync::check_not_synced(&self.vault, &verified)?;
        self.observations()?;
        let set = self.observations.as_ref().expect("loaded above");
        let windows = sync::match_verified(&verified, set, &self.config);
        let new_windows = sync::store_windows(&self.vault, &verified.keys, &windows)?;
        sync::mark_synced(&self.vault, &verified)?;
        self.vault.storage().flush()?;
        Ok(SyncReport {
            keys: verified.keys.len(),
            new_windows,
        })
    }

    /// The highest batch sequence number synced from `origin` (the cursor to list
    /// newer batches from).
    pub fn cursor(&self, origin: &str) -> Result<Option<u64>> {
        sync::cursor(&self.vault, origin)
    }

    /// Syncs the body of `GET /v1/filters/{origin}/{day}[?after=r]` (SPEC.md
    /// §5.8, §6.1): a `FilterParts` of signed parts of day filters, from any
    /// node. Every part is verified against the trusted authorities first; then
    /// the stored sightings of each part's day and the day either side (only
    /// those recorded before the part's `created_at`) are probed against each
    /// part not held yet. Parts may arrive in any order and in any response: a
    /// new part adds its hits to its (origin, day)'s, which feed
    /// [`Sdk::exposure_summary`] like key matches (a scan instance that hit
    /// several parts or filters counts once); a part held already is skipped.
    /// The report sums the new parts (all zeros if none was new). Rejects the
    /// whole body if any part is unsigned, untrusted, expired or malformed,
    /// changing nothing.
    pub fn sync_filter(&mut self, bytes: &[u8]) -> Result<SyncReport> {
        let now = self.now()?;
        let mut verified = Vec::new();
        for part in FilterParts::decode(bytes)?.parts {
            let filter = filters::verify(&part, &self.trust, now)?;
            if filter.day < day_of_unix(now).saturating_sub(RETENTION_DAYS) {
                // Verified in its last second, but its day is no longer kept here.
                return Err(WireError::Expired {
                    expired_at: filter.expires_at(),
                    now,
                }
                .into());
            }
            verified.push(filter);
        }
        let mut report = SyncReport {
            keys: 0,
            new_windows: 0,
        };
        for filter in verified {
            let held = filters::parts(&self.vault, &filter.origin, filter.day)?;
            if held.binary_search(&filter.revision).is_ok() {
                continue;
            }
            let hits = filters::probe(&filter, self.observations()?);
            report.new_windows += filters::store(&mut self.vault, &filter, hits)?;
            report.keys += usize::try_from(filter.filter.entries()).unwrap_or(usize::MAX);
        }
        if report.keys > 0 {
            self.vault.storage().flush()?;
        }
        Ok(report)
    }

    /// The highest part `r` of the day filter of `(origin, day)` such that every
    /// part `1..=r` is held (synced), if any: the host downloads only the parts
    /// after it (`GET /v1/filters/{origin}/{day}?after=r`).
    pub fn filter_revision(&self, origin: &str, day: u32) -> Result<Option<u64>> {
        filters::revision(&self.vault, origin, day)
    }

    /// [`Sdk::filter_revision`] of every kept day: the `held` query of
    /// `GET /v1/filter-parts/{origin}` (SPEC.md §6.1), which fetches the new
    /// parts of every day at once.
    pub fn filter_held(&mut self, origin: &str) -> Result<HeldRevisions> {
        let today = day_of_unix(self.now()?);
        let mut held = HeldRevisions::new();
        for day in today.saturating_sub(RETENTION_DAYS)..=today {
            if let Some(revision) = filters::revision(&self.vault, origin, day)? {
                held.hold(day, revision);
            }
        }
        Ok(held)
    }

    /// Per day and kind of exposure (ascending by day, proximity before venue):
    /// minutes, weighted minutes, score, and whether the day crosses the
    /// threshold. Nothing about which token, key, venue or time matched.
    pub fn exposure_summary(&mut self) -> Result<Vec<DaySummary>> {
        let now = self.now()?;
        checkins::tick(&mut self.vault, now)?;
        let (windows, _) = sync::load_windows(&self.vault)?;
        let mut days = self.config.risk.daily_summaries(&windows);
        days.extend(checkins::summaries(&self.vault)?);
        days.sort_by_key(|d| (d.day, d.kind));
        Ok(days)
    }

    /// Checks in at a venue from the URL its poster's QR code holds (SPEC.md
    /// §12.1), with no network; a visit still open is checked out first.
    /// Errors: a URL or code the venue rules refuse, or a code outside its
    /// validity period, as [`SdkError::Venue`] naming the fault; nothing is
    /// stored then.
    pub fn check_in(&mut self, url: &str) -> Result<CheckIn> {
        let now = self.now()?;
        checkins::check_in(&mut self.vault, now, url)
    }

    /// Checks the open visit out now. `InvalidArgument` if none is open.
    pub fn check_out(&mut self) -> Result<CheckIn> {
        let now = self.now()?;
        checkins::check_out(&mut self.vault, now)
    }

    /// Changes the open visit's arrival and (optionally) departure; a departure
    /// already past checks it out at that time. [`SdkError::Venue`] with
    /// `BadWindow` for an arrival in the future or over a day ago, or a
    /// departure not after arrival within the venue's maximum stay.
    pub fn edit_check_in(&mut self, arrival: u64, departure: Option<u64>) -> Result<CheckIn> {
        let now = self.now()?;
        checkins::edit(&mut self.vault, now, arrival, departure)
    }

    /// The phone's own check-ins of the kept days, newest first: the open one
    /// with its venue, closed ones by their times only. Checks out a visit whose
    /// automatic check-out is due.
    pub fn check_ins(&mut self) -> Result<Vec<CheckIn>> {
        let now = self.now()?;
        checkins::list(&mut self.vault, now)
    }

    /// Verifies a venue warning batch (as downloaded from any node) against the
    /// trusted authorities and matches it against the sealed check-in records,
    /// locally; matches feed [`Sdk::exposure_summary`] as
    /// [`ExposureKind::Venue`](traceless_protocol::ExposureKind). Returns how
    /// many matches are new, and raises [`Sdk::warning_cursor`] to its sequence
    /// (a batch synced again adds no match twice). [`SdkError::Venue`] for a
    /// batch malformed, unsigned or signed by an untrusted key: nothing is
    /// stored then, the cursor included.
    pub fn sync_venue_warnings(&mut self, bytes: &[u8]) -> Result<usize> {
        let now = self.now()?;
        checkins::tick(&mut self.vault, now)?;
        checkins::sync_warnings(&mut self.vault, &self.trust, bytes)
    }

    /// The highest venue warning batch sequence synced from `origin` (warning
    /// sequences start at 0): a host lists `GET /v1/warnings?origin=` and
    /// downloads only the batches above it. `None` if none was synced.
    pub fn warning_cursor(&self, origin: &str) -> Result<Option<u64>> {
        checkins::cursor::get(&self.vault, origin)
    }

    /// Asks for `count` anonymous upload tokens of the issuing key of `epoch`:
    /// blinds fresh random inputs and returns the request (a `TokenIssueRequest`,
    /// authorized by the authority's `authorization_code`) for the host to post to
    /// the issuer (`POST /v1/tokens` on the gateway). The blinding state stays in
    /// memory until [`Sdk::token_finalize`]; a new request replaces a pending one.
    pub fn token_request(
        &mut self,
        epoch: u32,
        count: usize,
        authorization_code: &[u8],
    ) -> Result<Vec<u8>> {
        let request = TokenRequest::new(epoch, count)
            .map_err(|e| SdkError::InvalidArgument(e.to_string()))?;
        let encoded = request.encode(authorization_code);
        if encoded.len() > MAX_TOKEN_MESSAGE_LEN {
            return Err(SdkError::InvalidArgument(format!(
                "the authorization code makes the token request longer than \
                 {MAX_TOKEN_MESSAGE_LEN} bytes"
            )));
        }
        self.pending_tokens = Some(request);
        Ok(encoded)
    }

    /// Takes the issuer's answer (`TokenIssueResponse` bytes) to the pending
    /// request: verifies the proof that every token was evaluated under
    /// `public_key`, unblinds, and stores the tokens durably, sealed under
    /// today's key. Returns how many were added. Errors: `InvalidArgument` with no
    /// pending request; `Rejected` for a malformed response, another epoch or a
    /// bad proof (nothing is stored, and the request stays pending).
    pub fn token_finalize(
        &mut self,
        response: &[u8],
        public_key: &TokenPublicKey,
    ) -> Result<usize> {
        let now = self.now()?;
        let request = self.pending_tokens.as_ref().ok_or_else(|| {
            SdkError::InvalidArgument("no pending token request: call token_request first".into())
        })?;
        let response = TokenResponse::decode(response)?;
        let new = request.finalize(&response, public_key)?;
        tokens::store(&mut self.vault, day_of_unix(now), &new)?;
        self.pending_tokens = None;
        Ok(new.len())
    }

    /// How many upload tokens are stored and unspent.
    pub fn tokens_available(&mut self) -> Result<usize> {
        self.now()?;
        Ok(tokens::all(&self.vault)?.len())
    }

    /// The keys of a positive diagnosis, shared by every upload variant: the keys
    /// of the days from `infectious_days_before_onset` before `onset_day` through
    /// today, minus `exclude_days`. With `retire`, the key in use is retired
    /// first, so that today's key is published only up to now and a fresh key is
    /// broadcast from now on.
    fn diagnosis_keys(
        &mut self,
        onset_day: u32,
        exclude_days: &[u32],
        retire: bool,
    ) -> Result<Vec<DiagnosisKey>> {
        let now = self.now()?;
        let today = day_of_unix(now);
        if onset_day > today {
            return Err(SdkError::InFuture {
                what: "symptom onset",
                at: u64::from(onset_day) * 86_400,
                now,
            });
        }
        if retire {
            own_keys::retire_current_key(&mut self.vault, now)?;
        }
        let mut own = Vec::new();
        for day in upload::window_days(onset_day, self.config.infectious_days_before_onset, today) {
            for key in own_keys::keys_of_day(&self.vault, day)? {
                own.push((day, key));
            }
        }
        upload::diagnosis_keys(&own, onset_day, exclude_days)
    }

    /// The keys of a filter-form upload and their masks: the keys of
    /// [`Sdk::diagnosis_keys`] (no day excluded), each with every interval that
    /// has ended minus those overlapping `exclude`. Checked before the key in use
    /// is retired, so that a refused request changes nothing (retiring only cuts
    /// intervals that have not ended).
    fn filter_keys(
        &mut self,
        onset_day: u32,
        exclude: &[(u64, u64)],
    ) -> Result<(Vec<DiagnosisKey>, Vec<IntervalMask>)> {
        let now = self.now()?;
        upload::filter_masks(self.diagnosis_keys(onset_day, &[], false)?, now, exclude)?;
        upload::filter_masks(self.diagnosis_keys(onset_day, &[], true)?, now, exclude)
    }

    /// The padded request of a positive diagnosis in either form, authorized by
    /// `code` or `token`.
    fn diagnosis_request(
        &mut self,
        code: &[u8],
        token: Option<UploadToken>,
        onset_day: u32,
        form: Form<'_>,
    ) -> Result<Vec<u8>> {
        match form {
            Form::Keys { exclude_days } => {
                let keys = self.diagnosis_keys(onset_day, exclude_days, true)?;
                let request = upload::encode(code, token, keys.clone(), Vec::new())?;
                let now = self.now()?;
                data_report::note_upload(&self.vault, &mut self.data_report, now, &keys)?;
                Ok(request)
            }
            Form::Filter { exclude } => {
                let (keys, masks) = self.filter_keys(onset_day, exclude)?;
                upload::encode(code, token, keys, masks)
            }
        }
    }

    /// Spends one stored token on a request in `form` and seals it to
    /// `gateway_key`; the token is removed durably before this returns.
    fn sealed_upload(
        &mut self,
        gateway_key: &[u8; 32],
        onset_day: u32,
        form: Form<'_>,
    ) -> Result<Vec<u8>> {
        self.now()?;
        let (day, token) = tokens::next(&self.vault)?.ok_or_else(|| {
            SdkError::InvalidArgument(
                "no upload token: request tokens from the authority first".into(),
            )
        })?;
        // The plaintext request holds the TEKs: wiped once sealed.
        let request = Zeroizing::new(self.diagnosis_request(&[], Some(token), onset_day, form)?);
        let sealed = upload::seal(gateway_key, &request)?;
        tokens::remove(&self.vault, day, &token)?;
        Ok(sealed)
    }

    /// The padded plaintext upload request of a positive diagnosis, authorized by
    /// the authority's single-use `upload_code`: for gateways without the
    /// anonymous path (prefer [`Sdk::sealed_diagnosis_upload`]). Keys as
    /// described there.
    pub fn diagnosis_upload(
        &mut self,
        upload_code: &[u8],
        onset_day: u32,
        exclude_days: &[u32],
    ) -> Result<Vec<u8>> {
        self.diagnosis_request(upload_code, None, onset_day, Form::Keys { exclude_days })
    }

    /// The default upload of a positive diagnosis: the keys of the days from
    /// `infectious_days_before_onset` before `onset_day` through today, minus
    /// `exclude_days`, authorized by one stored anonymous token, padded and
    /// sealed to the gateway's X25519 key `gateway_key` (always
    /// [`SEALED_UPLOAD_LEN`](traceless_protocol::SEALED_UPLOAD_LEN) bytes, for any
    /// relay to carry). The key in use is retired first, so that today's key is
    /// published only up to now and a fresh key is broadcast from now on. The
    /// token is removed durably before this returns: it cannot be spent twice.
    pub fn sealed_diagnosis_upload(
        &mut self,
        gateway_key: &[u8; 32],
        onset_day: u32,
        exclude_days: &[u32],
    ) -> Result<Vec<u8>> {
        self.sealed_upload(gateway_key, onset_day, Form::Keys { exclude_days })
    }

    /// Like [`Sdk::diagnosis_upload`] in the filter form (SPEC.md §5.8): the same
    /// keys (no day excluded), each with a mask choosing every interval that has
    /// ended, minus every interval overlapping an excluded half-open range
    /// `[start, end)` of unix seconds (a visit the patient leaves out). Keys left
    /// with no interval are dropped; `InvalidArgument` if nothing is left or a
    /// range ends before it starts (nothing is changed then). The gateway
    /// publishes one unlinkable entry per chosen interval instead of the key.
    /// Padded to the same length as every other upload.
    pub fn filter_diagnosis_upload(
        &mut self,
        upload_code: &[u8],
        onset_day: u32,
        exclude: &[(u64, u64)],
    ) -> Result<Vec<u8>> {
        self.diagnosis_request(upload_code, None, onset_day, Form::Filter { exclude })
    }

    /// Like [`Sdk::sealed_diagnosis_upload`] in the filter form: keys and masks
    /// as in [`Sdk::filter_diagnosis_upload`], authorized by one stored token
    /// (spent durably), sealed to `gateway_key`; the same length as every sealed
    /// upload, real or dummy.
    pub fn sealed_filter_upload(
        &mut self,
        gateway_key: &[u8; 32],
        onset_day: u32,
        exclude: &[(u64, u64)],
    ) -> Result<Vec<u8>> {
        self.sealed_upload(gateway_key, onset_day, Form::Filter { exclude })
    }

    /// The self-reported venue stays of a positive diagnosis (SPEC.md §12.11):
    /// the sealed stay reports of the visits to self-reported venues from two
    /// days before `onset_day` on, packed into as few uploads as fit the fixed
    /// length (six one-hour stays each), each authorized by one stored token
    /// (spent durably) and sealed to `gateway_key`. Every upload is the length of
    /// every other sealed upload, real or dummy; the host sends each through a
    /// relay like a key upload, ideally spread out in time. Empty when there is
    /// nothing to report. `InvalidArgument`, before any token is spent, when
    /// fewer tokens are stored than the uploads need.
    pub fn sealed_stay_uploads(
        &mut self,
        gateway_key: &[u8; 32],
        onset_day: u32,
    ) -> Result<Vec<Vec<u8>>> {
        let now = self.now()?;
        if onset_day > day_of_unix(now) {
            return Err(SdkError::InFuture {
                what: "symptom onset",
                at: u64::from(onset_day) * 86_400,
                now,
            });
        }
        let reports = checkins::stay_reports(&mut self.vault, now, onset_day)?;
        let needed = upload::encode_stays(onset_day, &reports, |_| tokens::random(0))?.len();
        let mut held = tokens::all(&self.vault)?;
        // In the order single uploads spend them (`tokens::next`).
        held.sort_by_key(|(day, t)| (std::cmp::Reverse(t.epoch), *day));
        if held.len() < needed {
            return Err(SdkError::InvalidArgument(format!(
                "the stays need {needed} uploads, each with a token; {} are stored: request more tokens first",
                held.len()
            )));
        }
        let mut spent = Vec::new();
        let requests = upload::encode_stays(onset_day, &reports, |i| {
            let (day, token) = held[i];
            spent.push((day, token));
            token
        })?;
        let mut sealed = Vec::with_capacity(requests.len());
        for request in requests {
            sealed.push(upload::seal(gateway_key, &Zeroizing::new(request))?);
        }
        for (day, token) in spent {
            tokens::remove(&self.vault, day, &token)?;
        }
        Ok(sealed)
    }

    /// A dummy upload request: same length as a real one. Also draws the next
    /// dummy time.
    pub fn dummy_upload(&mut self) -> Result<Vec<u8>> {
        let now = self.now()?;
        upload::schedule_next_dummy(&self.vault, now, self.config.dummy_uploads_per_day)?;
        upload::encode_dummy()
    }

    /// A dummy of [`Sdk::sealed_diagnosis_upload`]: a random token (of the epoch
    /// the next real upload would use, else 0), no keys, the dummy marker inside
    /// the encryption, sealed to `gateway_key`; the same length as a real sealed
    /// upload. Also draws the next dummy time.
    pub fn sealed_dummy_upload(&mut self, gateway_key: &[u8; 32]) -> Result<Vec<u8>> {
        let now = self.now()?;
        let epoch = tokens::next(&self.vault)?.map_or(0, |(_, t)| t.epoch);
        let request = upload::encode_token_dummy(tokens::random(epoch))?;
        let sealed = upload::seal(gateway_key, &request)?;
        upload::schedule_next_dummy(&self.vault, now, self.config.dummy_uploads_per_day)?;
        Ok(sealed)
    }

    /// Unix time at which the next dummy upload is due (Poisson schedule).
    pub fn next_dummy_upload_at(&mut self) -> Result<u64> {
        let now = self.now()?;
        upload::next_dummy_at(&self.vault, now, self.config.dummy_uploads_per_day)
    }

    /// Counts about the store.
    pub fn status(&mut self) -> Result<Status> {
        self.now()?;
        let (_, unreadable_windows) = sync::load_windows(&self.vault)?;
        let days_kept = self.vault.live_days();
        let set = self.observations()?;
        Ok(Status {
            days_kept,
            scan_instances: set.observations().len(),
            unreadable_records: set.unreadable + unreadable_windows,
        })
    }
}

#[cfg(test)]
mod tests {
    use traceless_protocol::{Clock, ManualClock};

    use super::*;

    /// The decrypted sightings live from the call that needs them until the next
    /// sighting, the next shredded day or the host's call to `expire`.
    #[test]
    fn decrypted_sightings_are_dropped_by_a_sighting_a_shredded_day_and_expire() {
        let clock = ManualClock::new(1_700_000_000);
        let mut sdk = Sdk::in_memory(SdkConfig::default(), Arc::new(clock.clone()))
            .expect("in-memory SDK opens");
        let load = |sdk: &mut Sdk| {
            sdk.status().expect("status");
            assert!(sdk.observations.is_some(), "status loads the sightings");
        };
        sdk.record_sighting(&[7; 20], -60, None, clock.now())
            .expect("records");
        load(&mut sdk);
        sdk.record_sighting(&[8; 20], -60, None, clock.now())
            .expect("records");
        assert!(sdk.observations.is_none(), "a new sighting drops them");
        load(&mut sdk);
        assert_eq!(sdk.expire().expect("expires"), Vec::<u32>::new());
        assert!(sdk.observations.is_none(), "expire drops them, nothing due");
        load(&mut sdk);
        clock.advance(86_400);
        sdk.exposure_summary().expect("summary");
        assert!(
            sdk.observations.is_some(),
            "a new day shredding nothing keeps them"
        );
        clock.advance(u64::from(RETENTION_DAYS) * 86_400);
        sdk.exposure_summary().expect("summary");
        assert!(
            sdk.observations.is_none(),
            "shredding the first day drops them"
        );
        assert_eq!(sdk.status().expect("status").scan_instances, 0);
    }
}
