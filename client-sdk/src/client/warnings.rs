//! Venue warnings (SPEC.md §12.10): list `GET /v1/warnings?origin=` on the
//! download node and hand the SDK each batch above its warning cursor, fetched
//! with the ETag of an earlier download of the same URL (so a batch the SDK
//! refused is not downloaded again while the node serves the same bytes).
//!
//! What the node learns: that this phone lists and downloads the origin's
//! warning batches from some sequence on, as every phone does; nothing about
//! its check-ins (matching is local).
//!
//! Limit: the cursor is the highest sequence synced, so a batch that reaches
//! the download node only after a higher one was synced from it is not
//! fetched (nodes do not catch up on warnings yet either, §12.10).

use serde_json::Value;

use super::{Client, ClientError, Phone, SyncTotals};
use crate::SdkError;

/// One listed warning batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    /// Per-origin warning sequence.
    pub sequence: u64,
    /// Where to fetch it (absolute, or relative to the node).
    pub url: String,
}

/// The entries of a `GET /v1/warnings?origin=` answer (`url` is where it came
/// from), by ascending sequence. `BadAnswer` for an answer without a
/// `warnings` array, an entry without origin, sequence or url, an entry of
/// another origin, or a sequence listed twice.
pub(super) fn listed(url: &str, origin: &str, answer: &Value) -> Result<Vec<Listed>, ClientError> {
    let bad = |reason: String| ClientError::BadAnswer {
        url: url.to_owned(),
        reason,
    };
    let entries = answer["warnings"]
        .as_array()
        .ok_or_else(|| bad("no warnings array".into()))?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let (Some(listed_origin), Some(sequence), Some(path)) = (
            entry["origin"].as_str(),
            entry["sequence"].as_u64(),
            entry["url"].as_str(),
        ) else {
            return Err(bad("a warning batch without origin, sequence or url".into()));
        };
        if listed_origin != origin {
            return Err(bad(format!(
                "a warning batch of {listed_origin} in the list of {origin}"
            )));
        }
        out.push(Listed {
            sequence,
            url: path.to_owned(),
        });
    }
    out.sort_by_key(|l| l.sequence);
    if let Some(w) = out.windows(2).find(|w| w[0].sequence == w[1].sequence) {
        return Err(bad(format!("warning batch {} listed twice", w[0].sequence)));
    }
    Ok(out)
}

impl Client {
    /// Lists the origin's venue warning batches on the download node and syncs
    /// each above the SDK's warning cursor, oldest first; returns the warning
    /// counts (`warning_batches`, `venue_matches`, `rejected`; the rest 0). A
    /// batch the SDK refuses (`Sdk(Venue)`: malformed, forged, untrusted) is
    /// counted as rejected and skipped, changing nothing on the phone.
    pub fn sync_warnings(&self, phone: &impl Phone) -> Result<SyncTotals, ClientError> {
        let origin = &self.config.origin;
        let cursor = phone.with(|s| s.warning_cursor(origin))?;
        // Only what lies above the cursor is listed (SPEC.md §12.10).
        let list_url = format!(
            "{}/v1/warnings?origin={origin}&after={}",
            self.config.download_node,
            cursor.unwrap_or(0)
        );
        let entries = listed(&list_url, origin, &self.json(&list_url)?)?;
        let mut totals = SyncTotals::default();
        for entry in entries
            .into_iter()
            .filter(|e| cursor.is_none_or(|c| e.sequence > c))
        {
            let url = self.absolute(&entry.url);
            let answer = self.get_revalidated(&url)?;
            if answer.status == 304 {
                continue;
            }
            let tag = answer.etag.clone();
            let bytes = Self::expect_ok(&url, answer)?;
            match phone.with(|s| s.sync_venue_warnings(&bytes)) {
                Ok(new) => {
                    totals.warning_batches += 1;
                    totals.venue_matches += new;
                }
                Err(ClientError::Sdk(SdkError::Venue(_))) => totals.rejected += 1,
                Err(e) => return Err(e),
            }
            self.keep_etag(url, tag);
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const URL: &str = "http://127.0.0.1:1/v1/warnings?origin=a.health";

    fn entry(origin: &str, sequence: u64) -> Value {
        json!({
            "origin": origin,
            "sequence": sequence,
            "created_at": 0,
            "warning_count": 1,
            "content_id": "00",
            "url": format!("/v1/warnings/{origin}/{sequence}"),
        })
    }

    #[test]
    fn a_list_is_read_by_ascending_sequence() {
        let list = json!({ "warnings": [entry("a.health", 3), entry("a.health", 0)] });
        let got = listed(URL, "a.health", &list).expect("a valid list");
        assert_eq!(
            got.iter().map(|l| l.sequence).collect::<Vec<_>>(),
            vec![0, 3]
        );
        assert_eq!(got[0].url, "/v1/warnings/a.health/0");
        let empty = listed(URL, "a.health", &json!({ "warnings": [] })).expect("empty");
        assert!(empty.is_empty());
    }

    #[test]
    fn a_malformed_list_is_a_bad_answer_naming_the_fault() {
        let mut no_url = entry("a.health", 1);
        no_url.as_object_mut().expect("object").remove("url");
        let mut text_sequence = entry("a.health", 1);
        text_sequence["sequence"] = json!("1");
        for (list, fault) in [
            (json!({ "batches": [] }), "no warnings array"),
            (json!({ "warnings": {} }), "no warnings array"),
            (
                json!({ "warnings": [no_url] }),
                "without origin, sequence or url",
            ),
            (
                json!({ "warnings": [text_sequence] }),
                "without origin, sequence or url",
            ),
            (
                json!({ "warnings": [entry("b.health", 1)] }),
                "of b.health in the list of a.health",
            ),
            (
                json!({ "warnings": [entry("a.health", 2), entry("a.health", 2)] }),
                "listed twice",
            ),
        ] {
            let got = listed(URL, "a.health", &list);
            assert!(
                matches!(&got, Err(ClientError::BadAnswer { url, reason })
                    if url == URL && reason.contains(fault)),
                "{list}: {got:?}"
            );
        }
    }
}
