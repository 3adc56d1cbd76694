//! What phones would download in period batches (SPEC.md §5.9), which
//! gateways do not publish yet: the keys the gateway published in a day's
//! version 1 batches, re-signed by the scenario's authority as one period
//! batch per publication boundary (the batches of one boundary share their
//! `created_at`), served as nodes would serve them to phones (without export
//! signatures) in one gzip-encoded `BatchList`. A projection from the run's
//! own keys, not a download from a node.

use std::collections::BTreeMap;
use std::io::Write;

use traceless_protocol::wire::Publication;
use traceless_protocol::{Batch, BatchList, PeriodBatch, SignedBatch};

use crate::nodes::Nodes;

/// Length of `bytes` gzip-encoded at the fastest level, as a node's
/// compression layer encodes a batch list (SPEC.md §6.1).
pub fn gzip_len(bytes: &[u8]) -> u64 {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("writes to memory");
    e.finish().expect("writes to memory").len() as u64
}

/// Numbers the projected period batches of one run.
#[derive(Default)]
pub struct PeriodForm {
    next_sequence: u64,
}

impl PeriodForm {
    /// The gzip-encoded length of the list of period batches holding the keys
    /// of `batches` (version 1 `SignedBatch` encodings), and of `batches`
    /// themselves in one list, both encoded by [`gzip_len`] so that the two
    /// compare like for like.
    pub fn list_lengths(&mut self, nodes: &Nodes, batches: &[&[u8]], now: u64) -> (u64, u64) {
        let mut periods: BTreeMap<u64, Vec<_>> = BTreeMap::new();
        for bytes in batches {
            let Ok(batch) =
                SignedBatch::decode(bytes).and_then(|sb| Batch::decode_body(&sb.body, now))
            else {
                continue;
            };
            periods
                .entry(batch.created_at)
                .or_default()
                .extend(batch.keys);
        }
        let publication = Publication {
            export: Some((&nodes.export_key.certificate, &nodes.export_key.signing_key)),
            risk_config: Some(&nodes.risk_config),
        };
        let mut list = BatchList::default();
        for (created_at, keys) in periods {
            self.next_sequence += 1;
            let period = PeriodBatch::from_keys(
                &nodes.authority.origin,
                self.next_sequence,
                created_at,
                keys,
            );
            let signed = period
                .sign_with(&nodes.authority, publication)
                .expect("the authority's own keys, certificate valid at its batches' times");
            list.batches
                .push(signed.without_export_signatures().encode());
        }
        let v1 = BatchList {
            batches: batches.iter().map(|b| b.to_vec()).collect(),
        };
        (gzip_len(&list.encode()), gzip_len(&v1.encode()))
    }
}
