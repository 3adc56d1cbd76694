//! "Where is my data" and publication proofs for Kotlin, Swift and Python
//! (SPEC.md §8.3.1–2): the same calls as [`crate::Sdk`]'s, with records apps
//! can show.

use traceless_protocol::ed25519_dalek::VerifyingKey;

use super::{fixed, invalid, SyncResult, TracelessError, TracelessSdk};

/// One node's log holding (and perhaps having deleted) one of the batches.
#[derive(uniffi::Record)]
pub struct NodePresence {
    /// The label the app gave the node (its URL, say).
    pub node: String,
    /// The node's Ed25519 key (32 bytes): whose log it is.
    pub node_id: Vec<u8>,
    /// Leaf index of the publication in that log.
    pub log_index: u64,
    /// Tree size of the checkpoint the proof was checked against.
    pub tree_size: u64,
    /// Trusted witnesses that cosigned it.
    pub witnesses: u32,
    /// When the node stored the batch, unix seconds.
    pub published_at: u64,
    /// When the phone checked the proof.
    pub checked_at: u64,
    /// When the node deleted the batch (its signed, logged record).
    pub deleted_at: Option<u64>,
}

/// A batch that carries some of this phone's uploaded keys.
#[derive(uniffi::Record)]
pub struct DataPublication {
    /// The authority that signed it.
    pub origin: String,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of the batch as served (32 bytes): its content id in the logs.
    pub content_id: Vec<u8>,
    /// UTC day of its keys.
    pub day: u32,
    /// Keys in it.
    pub keys: u32,
    /// Of them, this phone's.
    pub own_keys: u32,
    /// When the phone found it.
    pub found_at: u64,
    /// Nodes whose logs were shown to hold it.
    pub nodes: Vec<NodePresence>,
}

/// Where this phone's uploaded keys went.
#[derive(uniffi::Record)]
pub struct DataReport {
    /// When the last upload was prepared; none: no report.
    pub uploaded_at: Option<u64>,
    /// Keys uploaded since the report began.
    pub keys_uploaded: u64,
    /// Batches found carrying them.
    pub publications: Vec<DataPublication>,
}

impl From<crate::DataPublication> for DataPublication {
    fn from(p: crate::DataPublication) -> Self {
        DataPublication {
            origin: p.origin,
            sequence: p.sequence,
            content_id: p.content_id.to_vec(),
            day: p.day,
            keys: p.keys,
            own_keys: p.own_keys,
            found_at: p.found_at,
            nodes: p
                .nodes
                .into_iter()
                .map(|n| NodePresence {
                    node: n.node,
                    node_id: n.node_id.to_vec(),
                    log_index: n.log_index,
                    tree_size: n.tree_size,
                    witnesses: n.witnesses,
                    published_at: n.published_at,
                    checked_at: n.checked_at,
                    deleted_at: n.deleted_at,
                })
                .collect(),
        }
    }
}

#[uniffi::export]
impl TracelessSdk {
    /// Counts the cosignatures of the relay with this 32-byte Ed25519 node key
    /// on publication proofs' checkpoints. Not kept across opens.
    pub fn trust_witness(&self, public_key: Vec<u8>) -> Result<(), TracelessError> {
        let key = VerifyingKey::from_bytes(&fixed::<32>(&public_key, "witness key")?)
            .map_err(|e| invalid(format!("witness key: {e}")))?;
        self.with(|sdk| {
            sdk.trust_witness(key);
            Ok(())
        })
    }

    /// From now on accept batches only through `sync_batch_proven`, with at
    /// least `witnesses` trusted cosignatures; 0 (the default) turns it off.
    pub fn require_log_proofs(&self, witnesses: u32) -> Result<(), TracelessError> {
        self.with(|sdk| {
            sdk.require_log_proofs(witnesses as usize);
            Ok(())
        })
    }

    /// Like `sync_batch`, with the serving node's publication proof
    /// (`GET /v1/log/proof/batch/{origin}/{sequence}`); `Log` if refused.
    pub fn sync_batch_proven(
        &self,
        bytes: Vec<u8>,
        proof: Vec<u8>,
    ) -> Result<SyncResult, TracelessError> {
        self.with(|sdk| sdk.sync_batch_proven(&bytes, &proof))
            .map(Into::into)
    }

    /// Adds node `node`'s publication proof for one of the report's batches;
    /// `Log` if refused, `InvalidArgument` if the batch is not this phone's.
    pub fn record_log_proof(
        &self,
        node: String,
        proof: Vec<u8>,
    ) -> Result<DataPublication, TracelessError> {
        self.with(|sdk| sdk.record_log_proof(&node, &proof))
            .map(Into::into)
    }

    /// Where this phone's uploaded keys went.
    pub fn data_report(&self) -> Result<DataReport, TracelessError> {
        self.with(|sdk| sdk.data_report()).map(|r| DataReport {
            uploaded_at: r.uploaded_at,
            keys_uploaded: r.keys_uploaded as u64,
            publications: r.publications.into_iter().map(Into::into).collect(),
        })
    }

    /// Destroys the report; the uploads stay published.
    pub fn forget_data_report(&self) -> Result<(), TracelessError> {
        self.with(|sdk| sdk.forget_data_report())
    }
}
