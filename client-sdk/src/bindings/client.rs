//! The network client ([`crate::client`]) for Kotlin, Swift and Python.

use std::sync::Arc;
use std::time::Duration;

use super::{TracelessError, TracelessSdk};
use crate::client::{Client, ClientConfig, ClientError, HttpOptions, Phone};
use crate::Sdk;

impl From<ClientError> for TracelessError {
    fn from(e: ClientError) -> Self {
        let reason = e.to_string();
        match e {
            ClientError::Config(_) => TracelessError::InvalidArgument { reason },
            ClientError::Network { .. } | ClientError::BadAnswer { .. } => {
                TracelessError::Network { reason }
            }
            ClientError::Status { status, .. } => TracelessError::Http { status, reason },
            ClientError::Sdk(e) => e.into(),
            ClientError::Closed => TracelessError::Closed,
        }
    }
}

impl Phone for TracelessSdk {
    fn with<T>(&self, f: impl FnOnce(&mut Sdk) -> crate::Result<T>) -> Result<T, ClientError> {
        let mut guard = self.inner.lock().map_err(|_| ClientError::Closed)?;
        let sdk = guard.as_mut().ok_or(ClientError::Closed)?;
        Ok(f(sdk)?)
    }
}

/// Where the network client goes and how it retries.
#[derive(uniffi::Record)]
pub struct ClientOptions {
    /// Base URL of the node to download batches and filters from.
    pub download_node: String,
    /// Base URL of the relay for sealed uploads (not the gateway, not the download node).
    pub relay: String,
    /// Base URL of the authority's gateway (keys, token issuer).
    pub gateway: String,
    /// The authority's origin.
    pub origin: String,
    /// Per request, milliseconds.
    pub timeout_ms: u64,
    /// Retries after the first attempt (transport errors, 429, 5xx).
    pub retries: u32,
    /// Wait before the first retry, milliseconds; doubled each time.
    pub backoff_ms: u64,
    /// DER certificates to trust instead of the Web PKI roots (empty: the roots).
    pub pinned_certificates: Vec<Vec<u8>>,
}

/// What one network sync did.
#[derive(uniffi::Record)]
pub struct NetworkSync {
    /// Batches synced.
    pub batches: u64,
    /// Day filters synced.
    pub filters: u64,
    /// Keys and filter entries matched.
    pub keys: u64,
    /// New exposure windows.
    pub new_windows: u64,
    /// Venue warning batches synced.
    pub warning_batches: u64,
    /// New venue matches found.
    pub venue_matches: u64,
    /// Downloads the SDK rejected and skipped.
    pub rejected: u64,
}

/// The host's network client: sync, tokens, sealed uploads, dummies.
#[derive(uniffi::Object)]
pub struct TracelessClient(Client);

#[uniffi::export]
impl TracelessClient {
    /// A client for `options`; `InvalidArgument` if the relay is the gateway or
    /// the download node.
    #[uniffi::constructor]
    pub fn new(options: ClientOptions) -> Result<Arc<Self>, TracelessError> {
        let config = ClientConfig {
            download_node: options.download_node,
            relay: options.relay,
            gateway: options.gateway,
            origin: options.origin,
            http: HttpOptions {
                timeout: Duration::from_millis(options.timeout_ms),
                retries: options.retries,
                backoff: Duration::from_millis(options.backoff_ms),
                pinned_certificates: options.pinned_certificates,
            },
        };
        Ok(Arc::new(TracelessClient(Client::new(config)?)))
    }

    /// Downloads and syncs every new batch, newer day filter and venue
    /// warning batch above the SDK's warning cursor.
    pub fn sync(&self, sdk: Arc<TracelessSdk>) -> Result<NetworkSync, TracelessError> {
        let t = self.0.sync(sdk.as_ref())?;
        Ok(NetworkSync {
            batches: t.batches as u64,
            filters: t.filters as u64,
            keys: t.keys as u64,
            new_windows: t.new_windows as u64,
            warning_batches: t.warning_batches as u64,
            venue_matches: t.venue_matches as u64,
            rejected: t.rejected as u64,
        })
    }

    /// Fetches `GET /v1/export-keys` from the download node and trusts each
    /// of the origin's certificates the SDK verifies; returns how many. A
    /// certificate the SDK refuses is `Rejected`.
    pub fn trust_export_keys(&self, sdk: Arc<TracelessSdk>) -> Result<u32, TracelessError> {
        Ok(self.0.trust_export_keys(sdk.as_ref())? as u32)
    }

    /// Fetches the origin's signed risk configuration (with its ETag) and has
    /// the SDK apply it; returns the revision applied, or `None` if the node
    /// has none or it is unchanged. Call it after every open.
    pub fn update_risk_config(
        &self,
        sdk: Arc<TracelessSdk>,
    ) -> Result<Option<u64>, TracelessError> {
        Ok(self.0.update_risk_config(sdk.as_ref())?)
    }

    /// Buys `count` upload tokens with the authority's code; returns how many.
    pub fn buy_tokens(
        &self,
        sdk: Arc<TracelessSdk>,
        code: Vec<u8>,
        count: u32,
    ) -> Result<u32, TracelessError> {
        Ok(self.0.buy_tokens(sdk.as_ref(), &code, count as usize)? as u32)
    }

    /// Seals a positive diagnosis with one token and posts it through the relay.
    pub fn upload_diagnosis(
        &self,
        sdk: Arc<TracelessSdk>,
        onset_day: u32,
        exclude_days: Vec<u32>,
    ) -> Result<(), TracelessError> {
        Ok(self
            .0
            .upload_diagnosis(sdk.as_ref(), onset_day, &exclude_days)?)
    }

    /// Sends a dummy upload through the relay if one is due at `now` (unix
    /// seconds); returns whether it sent one.
    pub fn run_dummy_schedule(
        &self,
        sdk: Arc<TracelessSdk>,
        now: u64,
    ) -> Result<bool, TracelessError> {
        Ok(self.0.run_dummy_schedule(sdk.as_ref(), now)?)
    }
}
