//! What an authority publishes with its batches besides keys (SPEC.md §6.2,
//! §7.3): its GAEN export key, certified by its batch-signing key, and its
//! signed risk configuration. The authority makes both offline
//! (`authority export-keygen`, `authority risk-config sign`) and gives the
//! files to its gateway, which signs every batch's export with the export key
//! and carries the certificate and the configuration inside the signed batch
//! body, so that every relay holding the batch serves the same authority-signed
//! export file, export key and configuration ([`latest`]).

use std::path::Path;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use traceless_protocol::p256::ecdsa::SigningKey as ExportSigningKey;
use traceless_protocol::wire::Publication;
use traceless_protocol::{
    AuthorityKey, ExportKeyCertificate, ExportSigner, PublishedBatch, SignedExportKey,
    SignedRiskConfig, TrustList,
};

use crate::keys::{write_private, KeyError};
use crate::storage::{StorageError, Store};

/// An export key file as written by `authority export-keygen`: the P-256
/// secret and the authority's certificate of its public key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportKeyFile {
    secret_key: String,
    certificate: String,
}

/// The authority's export signing key with its certificate.
#[derive(Clone)]
pub struct ExportKey {
    /// Signs each batch's `export.bin`.
    pub signing_key: ExportSigningKey,
    /// The authority's certificate of its public key.
    pub certificate: SignedExportKey,
}

/// What a gateway signs into its batches besides the keys.
#[derive(Clone, Default)]
pub struct GatewayPublication {
    /// The export key, if the authority gave one.
    pub export: Option<ExportKey>,
    /// The authority's current signed risk configuration.
    pub risk_config: Option<SignedRiskConfig>,
}

impl GatewayPublication {
    /// The borrowed form [`traceless_protocol::Batch::sign_with`] takes.
    pub fn as_publication(&self) -> Publication<'_> {
        Publication {
            export: self
                .export
                .as_ref()
                .map(|e| (&e.certificate, &e.signing_key)),
            risk_config: self.risk_config.as_ref(),
        }
    }
}

/// Certifies a P-256 export signing key under `authority` (`authority
/// export-keygen` passes a fresh random key).
pub fn certify(
    signing_key: ExportSigningKey,
    authority: &AuthorityKey,
    signer: ExportSigner,
    region: &str,
    not_before: u64,
    not_after: u64,
) -> Result<ExportKey, traceless_protocol::WireError> {
    let cert = ExportKeyCertificate {
        origin: authority.origin.clone(),
        signer,
        region: region.to_owned(),
        public_key: *signing_key.verifying_key(),
        not_before,
        not_after,
    };
    // Validate what the command line gave, as a receiver will.
    ExportKeyCertificate::decode_body(&cert.encode_body())?;
    Ok(ExportKey {
        certificate: cert.sign(authority)?,
        signing_key,
    })
}

/// Writes a new export key file (fails if it exists).
pub fn write(path: &Path, key: &ExportKey) -> Result<(), KeyError> {
    let file = ExportKeyFile {
        secret_key: hex::encode(key.signing_key.to_bytes()),
        certificate: hex::encode(key.certificate.encode()),
    };
    let text = format!(
        "# Traceless GAEN export key: keep secret; only the authority's gateway reads it.\n{}",
        toml::to_string(&file).map_err(|_| KeyError::Invalid(path.display().to_string()))?
    );
    write_private(path, text.as_bytes())
}

/// Reads an export key file; the certificate must name `origin` and certify
/// exactly this key.
pub fn read(path: &Path, origin: &str) -> Result<ExportKey, KeyError> {
    let invalid = || KeyError::Invalid(path.display().to_string());
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let file: ExportKeyFile = toml::from_str(&text).map_err(|_| invalid())?;
    let secret = hex::decode(&file.secret_key).map_err(|_| invalid())?;
    let signing_key = ExportSigningKey::from_slice(&secret).map_err(|_| invalid())?;
    let certificate = hex::decode(&file.certificate)
        .ok()
        .and_then(|b| SignedExportKey::decode(&b).ok())
        .ok_or_else(invalid)?;
    let cert = ExportKeyCertificate::decode_body(&certificate.body).map_err(|_| invalid())?;
    if cert.origin != origin || &cert.public_key != signing_key.verifying_key() {
        return Err(invalid());
    }
    Ok(ExportKey {
        signing_key,
        certificate,
    })
}

/// Reads a signed risk configuration file (`authority risk-config sign`).
pub fn read_risk_config(path: &Path) -> Result<SignedRiskConfig, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    SignedRiskConfig::decode(&bytes).map_err(|_| KeyError::Invalid(path.display().to_string()))
}

/// What one origin currently publishes besides keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Its export key certificate.
    pub export_key: Option<SignedExportKey>,
    /// Its signed risk configuration.
    pub risk_config: Option<SignedRiskConfig>,
}

/// What each origin currently publishes, from its newest visible batch (every
/// batch of a gateway carries both; a batch without them means the authority
/// withdrew them). A gateway's own configured ones stand for its origin.
/// Sorted by origin; origins that publish neither are left out.
pub fn latest(
    store: &dyn Store,
    trust: &TrustList,
    now: u64,
    own: Option<(&str, &GatewayPublication)>,
) -> Result<Vec<(String, Published)>, StorageError> {
    let mut newest: std::collections::BTreeMap<String, u64> = Default::default();
    for m in store.all_batches()? {
        if m.is_visible(now) {
            let s = newest.entry(m.origin).or_default();
            *s = (*s).max(m.sequence);
        }
    }
    let mut out = Vec::new();
    for (origin, sequence) in newest {
        if own.is_some_and(|(o, _)| o == origin) {
            continue;
        }
        let Some(stored) = store.get_batch(&origin, sequence)? else {
            continue;
        };
        // Stored batches were verified with their attachments on arrival.
        if let Ok(found) = PublishedBatch::decode(&stored.bytes)
            .and_then(|b| b.verify_with_attachments(trust, now))
        {
            out.push((
                origin,
                Published {
                    export_key: found.export_key,
                    risk_config: found.risk_config,
                },
            ));
        }
    }
    if let Some((origin, p)) = own {
        out.push((
            origin.to_owned(),
            Published {
                export_key: p.export.as_ref().map(|e| e.certificate.clone()),
                risk_config: p.risk_config.clone(),
            },
        ));
    }
    out.retain(|(_, p)| p.export_key.is_some() || p.risk_config.is_some());
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `authority export-keygen`: a new export key certified by the authority.
#[derive(clap::Args, Debug)]
pub struct ExportKeygenArgs {
    /// The authority's key file (`authority keygen`): it signs the certificate.
    #[arg(long)]
    pub authority_key_file: std::path::PathBuf,
    /// GAEN `verification_key_id` (e.g. the mobile country code, "262").
    #[arg(long)]
    pub key_id: String,
    /// GAEN `verification_key_version`.
    #[arg(long, default_value = "v1")]
    pub key_version: String,
    /// Region written into export files (e.g. "DE").
    #[arg(long)]
    pub region: String,
    /// Days the certificate is valid from now.
    #[arg(long, default_value_t = 365)]
    pub valid_days: u64,
    /// Where to write the key and certificate (give it to the gateway).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// `authority risk-config`: signed risk configurations.
#[derive(clap::Subcommand, Debug)]
pub enum RiskConfigCommand {
    /// Sign a risk configuration (defaults: the SDK's) for the gateway to publish.
    Sign(RiskConfigSignArgs),
}

/// `authority risk-config sign`.
#[derive(clap::Args, Debug)]
pub struct RiskConfigSignArgs {
    /// The authority's key file (`authority keygen`).
    #[arg(long)]
    pub authority_key_file: std::path::PathBuf,
    /// Revision, above every earlier one (phones apply only a higher revision).
    #[arg(long)]
    pub revision: u64,
    /// Attenuation bucket bounds, dB: near below the first, medium below the second.
    #[arg(long, num_args = 2, value_delimiter = ',')]
    pub thresholds_db: Option<Vec<u8>>,
    /// Near, medium and far minute weights.
    #[arg(long, num_args = 3, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// Scans above this attenuation are ignored, dB.
    #[arg(long)]
    pub max_attenuation_db: Option<u8>,
    /// Daily score threshold, weighted minutes.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Where to write the `SignedRiskConfig`.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// Runs `authority export-keygen`; prints the gateway config line.
pub fn run_export_keygen(a: &ExportKeygenArgs, now: u64) -> Result<(), String> {
    let authority =
        crate::keys::read_authority_key(&a.authority_key_file).map_err(|e| e.to_string())?;
    let key = certify(
        ExportSigningKey::random(&mut OsRng),
        &authority,
        ExportSigner {
            key_id: a.key_id.clone(),
            key_version: a.key_version.clone(),
        },
        &a.region,
        now,
        now.saturating_add(a.valid_days.saturating_mul(86_400)),
    )
    .map_err(|e| e.to_string())?;
    write(&a.out, &key).map_err(|e| e.to_string())?;
    let file = std::path::absolute(&a.out).map_err(|e| e.to_string())?;
    println!(
        "# Add to [gateway] of {}'s gateway:\n# export_key_file = {:?}\n# public key (SEC1): {}",
        authority.origin,
        file.display(),
        hex::encode(
            key.signing_key
                .verifying_key()
                .to_encoded_point(true)
                .as_bytes()
        )
    );
    Ok(())
}

/// Runs `authority risk-config sign`; prints the gateway config line.
pub fn run_risk_config_sign(a: &RiskConfigSignArgs, now: u64) -> Result<(), String> {
    let authority =
        crate::keys::read_authority_key(&a.authority_key_file).map_err(|e| e.to_string())?;
    let mut p = traceless_protocol::RiskParameters::default();
    if let Some(t) = &a.thresholds_db {
        p.attenuation_thresholds_db = [t[0], t[1]];
    }
    if let Some(w) = &a.weights {
        p.attenuation_weights = [w[0], w[1], w[2]];
    }
    if let Some(m) = a.max_attenuation_db {
        p.max_attenuation_db = m;
    }
    if let Some(t) = a.threshold {
        p.threshold = t;
    }
    let config = traceless_protocol::RiskConfig {
        origin: authority.origin.clone(),
        revision: a.revision,
        created_at: now,
        parameters: p.clone(),
    };
    // Validate as a phone will before anything is written.
    traceless_protocol::RiskConfig::decode_body(&config.encode_body(), now, &p)
        .map_err(|e| e.to_string())?;
    let signed = config.sign(&authority).map_err(|e| e.to_string())?;
    write_private(&a.out, &signed.encode()).map_err(|e| e.to_string())?;
    let file = std::path::absolute(&a.out).map_err(|e| e.to_string())?;
    println!(
        "# Add to [gateway] of {}'s gateway:\n# risk_config_file = {:?}",
        authority.origin,
        file.display()
    );
    Ok(())
}
