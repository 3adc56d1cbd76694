//! Venue warnings through the node (SPEC.md §12.10): a gateway completes an
//! owner's pre-trace, queues the warnings durably, and publishes them only at
//! its period boundaries as `SignedWarningBatch`es with `createdAt` = the
//! boundary and their own per-origin sequence; every node stores verified
//! batches, serves them, logs each in its transparency log, and deletes them
//! 14 days after `createdAt` in the retention run (`crate::retention`), which
//! logs the deletion.

use rand::seq::SliceRandom;
use traceless_protocol::venue::{
    batch_runs, complete_trace, PreTrace, SignedWarningBatch, TraceView, VenueError, WarningBatch,
};
use traceless_protocol::GatewaySealKey;

use super::Core;
use crate::log::warning_event;
use crate::storage::warnings::{
    meta_of, WarningFiles, WarningMeta, WarningPut, WARNING_RETENTION_SECS,
};
use crate::storage::StorageError;

/// Why a trace was refused.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Only a gateway (which holds the venue authority key) traces.
    #[error("only a gateway traces venues")]
    NotAGateway,
    /// The pre-trace or the window was refused.
    #[error("trace refused: {0}")]
    Venue(#[from] VenueError),
    /// Queueing failed: nothing will be published.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Why a warning batch from a peer was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WarningIngestError {
    /// Bad bytes, untrusted signer or bad signature.
    #[error("invalid warning batch: {0}")]
    Invalid(#[from] VenueError),
    /// `createdAt` is later than now plus the clock tolerance.
    #[error("warning batch created at {created_at}, in the future (now {now})")]
    Future {
        /// Its `createdAt`.
        created_at: u64,
        /// This node's now.
        now: u64,
    },
    /// Older than the retention period: it would be deleted at once.
    #[error("warning batch created at {created_at} is past retention (now {now})")]
    Expired {
        /// Its `createdAt`.
        created_at: u64,
        /// This node's now.
        now: u64,
    },
    /// Storage failed; not acknowledged.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Completes `pre` with the venue authority key `seal` (a gateway's seal key)
/// and queues the warnings in `files` for the next boundary after `now`;
/// returns what the tracer may see and how many hour slots were traced. The
/// running gateway and the `venue trace` command both trace through this.
pub fn trace_into(
    seal: &GatewaySealKey,
    files: &WarningFiles,
    pre: &PreTrace,
    message: &str,
    risk_level: u32,
    now: u64,
) -> Result<(TraceView, usize), TraceError> {
    let traced = complete_trace(pre, seal, message, risk_level, now)?;
    let slots = traced.warnings.len();
    files.enqueue(traced.warnings, now)?;
    Ok((traced.view, slots))
}

impl Core {
    /// This node's warning files.
    pub fn warning_files(&self) -> WarningFiles {
        WarningFiles::at(&self.config.data_dir)
    }

    /// The health authority traces a venue (gateways only): see [`trace_into`].
    pub fn trace_venue(
        &self,
        pre: &PreTrace,
        message: &str,
        risk_level: u32,
    ) -> Result<(TraceView, usize), TraceError> {
        let g = self.gateway.as_ref().ok_or(TraceError::NotAGateway)?;
        let (view, slots) = trace_into(
            g.venue_authority_key(),
            &self.warning_files(),
            pre,
            message,
            risk_level,
            self.now(),
        )?;
        tracing::info!(slots, "venue traced");
        Ok((view, slots))
    }

    /// At a boundary: signs every trace queued before it into warning batches
    /// created at `boundary` (as many as [`batch_runs`] needs, so that each is
    /// within the count and byte limits every node accepts), stores them and
    /// empties the queue. Nothing when nothing was queued.
    pub fn publish_warnings(&self, boundary: u64) -> Result<Vec<WarningMeta>, TraceError> {
        let g = self.gateway.as_ref().ok_or(TraceError::NotAGateway)?;
        let _guard = g.warning_lock.lock().unwrap_or_else(|e| e.into_inner());
        let files = self.warning_files();
        let (mut warnings, queued) = files.queued_before(boundary)?;
        // Shuffled together: no run of warnings says which trace or upload it was.
        warnings.shuffle(&mut rand::rngs::OsRng);
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let mut sequence = files.next_sequence(g.origin())?;
        let mut signed = Vec::new();
        for chunk in batch_runs(&warnings) {
            let batch = WarningBatch {
                origin: g.origin().to_owned(),
                sequence,
                created_at: boundary,
                warnings: chunk.to_vec(),
            };
            let bytes = g.sign_warnings(&batch)?.encode();
            signed.push((meta_of(&batch, &bytes), bytes));
            sequence += 1;
        }
        files.commit_publication(g.origin(), &signed, sequence, &queued)?;
        for (m, bytes) in &signed {
            self.record(&warning_event(m));
            let _ = self
                .announce
                .send(super::Announcement::Warnings(bytes.clone()));
            tracing::info!(
                sequence = m.sequence,
                warnings = m.warnings,
                boundary,
                "published venue warnings"
            );
        }
        Ok(signed.into_iter().map(|(m, _)| m).collect())
    }

    /// Validates a `SignedWarningBatch` from a peer (canonical bytes, trusted
    /// authority signature, not in the future, not past retention) and stores
    /// its exact bytes. Trusted only for its signature, never for its sender.
    pub fn ingest_warnings(
        &self,
        bytes: &[u8],
    ) -> Result<(WarningPut, WarningMeta), WarningIngestError> {
        let now = self.now();
        // `decode` refuses bytes that do not re-encode identically.
        let batch = SignedWarningBatch::decode(bytes)?.verify(&self.trust)?;
        if batch.created_at > now.saturating_add(self.config.clock.tolerance_secs) {
            return Err(WarningIngestError::Future {
                created_at: batch.created_at,
                now,
            });
        }
        if batch.created_at.saturating_add(WARNING_RETENTION_SECS) <= now {
            return Err(WarningIngestError::Expired {
                created_at: batch.created_at,
                now,
            });
        }
        let meta = meta_of(&batch, bytes);
        let put = self.warning_files().put(&meta, bytes)?;
        if put == WarningPut::New {
            self.record(&warning_event(&meta));
        }
        if put == WarningPut::Conflict {
            tracing::warn!(origin = %meta.origin, sequence = meta.sequence,
                "authority signed two different warning batches under one sequence; keeping the first");
        }
        Ok((put, meta))
    }
}
