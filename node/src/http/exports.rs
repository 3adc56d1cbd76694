//! What authorities publish besides keys, as every node serves it from the
//! batches it holds (SPEC.md §6.2, §7.3): GAEN export files signed by the
//! authority's export key, the export keys with their certificates, and the
//! signed risk configurations.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use traceless_protocol::p256::pkcs8::EncodePublicKey;
use traceless_protocol::{ExportFile, ExportKeyCertificate, PublishedBatch};

use super::api::{not_found, signed_bytes, ApiError, Shared};
use crate::export_keys::{self, Published};

fn published(http: &super::HttpState) -> Result<Vec<(String, Published)>, ApiError> {
    let s = &http.core;
    let own = s.gateway.as_ref().map(|g| (g.origin(), g.publication()));
    Ok(export_keys::latest(
        s.store.as_ref(),
        &s.trust,
        s.now(),
        own,
    )?)
}

/// `GET /v1/exports/{origin}/{sequence}`: the GAEN export zip of a batch of
/// one day (every version 1 batch), signed by its authority's export key (the
/// signature travels in the batch, so every node serves the same file). A
/// period batch has one export per day: [`export_day`].
pub async fn export_batch(
    State(http): Shared,
    Path((origin, sequence)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    export_zip(&http, origin, sequence, None)
}

/// `GET /v1/exports/{origin}/{sequence}/{day}`: the GAEN export zip of one day
/// of a batch (SPEC.md §6.2, §5.9).
pub async fn export_day(
    State(http): Shared,
    Path((origin, sequence, day)): Path<(String, u64, u32)>,
) -> Result<Response, ApiError> {
    export_zip(&http, origin, sequence, Some(day))
}

fn export_zip(
    http: &super::HttpState,
    origin: String,
    sequence: u64,
    day: Option<u32>,
) -> Result<Response, ApiError> {
    let s = http.core.clone();
    let now = s.now();
    let absent = || {
        not_found(format!(
            "no export of batch {origin}/{sequence} is served here"
        ))
    };
    let stored = s
        .store
        .get_batch(&origin, sequence)?
        .filter(|b| b.meta.is_visible(now))
        .ok_or_else(absent)?;
    // Stored batches were verified with their attachments on arrival; this
    // only fails once they have expired meanwhile.
    let verified = PublishedBatch::decode(&stored.bytes)
        .and_then(|b| b.verify_with_attachments(&s.trust, now))
        .map_err(|_| absent())?;
    let held: Vec<u32> = verified.days.iter().map(|d| d.batch.day).collect();
    let export = match day {
        Some(day) => verified.days.iter().find(|d| d.batch.day == day),
        None if verified.days.len() == 1 => verified.days.first(),
        None => {
            return Err(not_found(format!(
                "batch {origin}/{sequence} holds the days {held:?}: its exports are /v1/exports/{origin}/{sequence}/{{day}}"
            )))
        }
    }
    .ok_or_else(|| {
        not_found(format!(
            "batch {origin}/{sequence} holds no keys of that day (it holds {held:?})"
        ))
    })?;
    let (Some(certificate), Some(der)) = (&verified.export_key, export.der_signature()) else {
        return Err(not_found(format!(
            "batch {origin}/{sequence} carries no export signature (its authority has no export key)"
        )));
    };
    let cert = ExportKeyCertificate::decode_body(&certificate.body).map_err(|_| absent())?;
    let zip = ExportFile::of_batch(&export.batch, &cert).to_zip_signed(&der);
    let name = match day {
        Some(day) => format!("export-{origin}-{sequence}-{day}.zip"),
        None => format!("export-{origin}-{sequence}.zip"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
        ],
        zip,
    )
        .into_response())
}

/// `GET /v1/export-keys`: each origin's export key (SEC1 and SPKI), its GAEN
/// metadata, validity and the authority's certificate (hex `SignedExportKey`;
/// verify it against the trust list before trusting the key).
pub async fn export_keys(State(http): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let keys: Vec<_> = published(&http)?
        .into_iter()
        .filter_map(|(origin, p)| {
            let signed = p.export_key?;
            let c = ExportKeyCertificate::decode_body(&signed.body).ok()?;
            Some(json!({
                "origin": origin,
                "key_id": c.signer.key_id,
                "key_version": c.signer.key_version,
                "region": c.region,
                "public_key_sec1": hex::encode(c.public_key.to_encoded_point(false).as_bytes()),
                "public_key_spki": hex::encode(c.public_key.to_public_key_der().ok()?.as_bytes()),
                "not_before": c.not_before,
                "not_after": c.not_after,
                "certificate": hex::encode(signed.encode()),
            }))
        })
        .collect();
    Ok(Json(json!({ "export_keys": keys })))
}

/// Query of `GET /v1/risk-config`.
#[derive(Deserialize)]
pub struct RiskConfigQuery {
    origin: String,
}

/// `GET /v1/risk-config?origin=..`: the origin's current `SignedRiskConfig`
/// bytes, with the SHA-256 of the bytes as ETag (a new revision changes it).
pub async fn risk_config(
    State(http): Shared,
    Query(q): Query<RiskConfigQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bytes = published(&http)?
        .into_iter()
        .find(|(o, _)| *o == q.origin)
        .and_then(|(_, p)| p.risk_config)
        .ok_or_else(|| {
            not_found(format!(
                "no risk configuration of {} is served here",
                q.origin
            ))
        })?
        .encode();
    let id: [u8; 32] = Sha256::digest(&bytes).into();
    Ok(signed_bytes(&headers, &id, "no-cache", bytes))
}

/// The transparency page's export-key rows: which key signs each
/// authority's GAEN export files, and until when.
pub(super) fn transparency_section(http: &super::HttpState) -> Result<String, ApiError> {
    let mut h = String::from(
        "<h2>Export keys</h2>\n<p>GAEN export files (<code>/v1/exports/…</code>) are signed by their authority's key, certified by the authority (<a href=\"/v1/export-keys\">/v1/export-keys</a>); this node holds no export key.</p>\n<ul id=\"export-keys\">\n",
    );
    for (origin, p) in published(http)? {
        let Some(cert) = p
            .export_key
            .and_then(|k| ExportKeyCertificate::decode_body(&k.body).ok())
        else {
            continue;
        };
        h.push_str(&format!(
            "<li class=\"export-key\" data-origin=\"{origin}\">{origin}: key {} {} for region {}, valid {} to {} UTC: <code>{}</code></li>\n",
            cert.signer.key_id,
            cert.signer.key_version,
            cert.region,
            crate::clock::datetime_of_unix(cert.not_before),
            crate::clock::datetime_of_unix(cert.not_after),
            hex::encode(cert.public_key.to_encoded_point(true).as_bytes()),
        ));
    }
    h.push_str("</ul>\n");
    Ok(h)
}
