//! Signed risk configurations an authority publishes (SPEC.md §7.3): the
//! attenuation buckets, weights, transmission risk values, infectiousness
//! weights and daily threshold that phones apply after verifying the signature
//! against their trust list.

use prost::Message;

use super::{
    check_reencodes, check_version, decode_limited, pb, signature_bytes, validate_origin,
    MAX_CLOCK_SKEW_SECONDS, PROTOCOL_VERSION,
};
use crate::error::WireError;
use crate::risk::RiskParameters;
use crate::signing::{self, AuthorityKey, TrustList, RISK_CONFIG_CONTEXT, SIGNATURE_LEN};

/// Largest encoded [`SignedRiskConfig`] accepted.
pub const MAX_SIGNED_RISK_CONFIG_LEN: usize = 1024;
/// Largest weight or value (per mille) a configuration may carry: 10.0.
pub const MAX_PERMILLE: u32 = 10_000;

/// One authority's risk parameters at one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskConfig {
    /// Authority id of the signer.
    pub origin: String,
    /// Per-origin revision from 1; a phone applies only a higher one.
    pub revision: u64,
    /// Unix seconds when it was signed.
    pub created_at: u64,
    /// The parameters. Weights and values travel as multiples of 0.001 and the
    /// threshold as a multiple of 0.01; the infectiousness class of each day
    /// since onset is not part of the configuration (the phone keeps its own).
    pub parameters: RiskParameters,
}

fn permille(x: f64) -> u32 {
    (x * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn from_permille(what: &'static str, x: u32) -> Result<f64, WireError> {
    if x > MAX_PERMILLE {
        return Err(WireError::invalid(
            what,
            format!("{x} per mille is over {MAX_PERMILLE}"),
        ));
    }
    Ok(f64::from(x) / 1000.0)
}

fn attenuation(what: &'static str, db: u32) -> Result<u8, WireError> {
    u8::try_from(db).map_err(|_| WireError::invalid(what, format!("{db} dB is over 255")))
}

impl RiskConfig {
    /// The canonical encoding of the body.
    pub fn encode_body(&self) -> Vec<u8> {
        let p = &self.parameters;
        pb::RiskConfigBody {
            version: PROTOCOL_VERSION,
            origin: self.origin.clone(),
            revision: self.revision,
            created_at: self.created_at,
            near_db: u32::from(p.attenuation_thresholds_db[0]),
            medium_db: u32::from(p.attenuation_thresholds_db[1]),
            max_attenuation_db: u32::from(p.max_attenuation_db),
            weight_near_permille: permille(p.attenuation_weights[0]),
            weight_medium_permille: permille(p.attenuation_weights[1]),
            weight_far_permille: permille(p.attenuation_weights[2]),
            transmission_risk_permille: p.transmission_risk_values.map(permille).to_vec(),
            infectiousness_standard_permille: permille(p.infectiousness_weights[0]),
            infectiousness_high_permille: permille(p.infectiousness_weights[1]),
            threshold_centiminutes: (p.threshold * 100.0)
                .round()
                .clamp(0.0, f64::from(u32::MAX)) as u32,
        }
        .encode_to_vec()
    }

    /// Decodes and validates a body: version, origin, revision, `created_at` not
    /// in the future, bucket bounds ascending, weights and values at most
    /// [`MAX_PERMILLE`], nine transmission risk values, a positive threshold,
    /// canonical form. Parameters not carried are taken from `base`.
    pub fn decode_body(
        bytes: &[u8],
        now_unix: u64,
        base: &RiskParameters,
    ) -> Result<RiskConfig, WireError> {
        const WHAT: &str = "risk config body";
        let m: pb::RiskConfigBody = decode_limited(WHAT, bytes, MAX_SIGNED_RISK_CONFIG_LEN)?;
        check_version(WHAT, m.version)?;
        validate_origin(&m.origin)?;
        if m.revision == 0 {
            return Err(WireError::invalid("revision", "starts at 1"));
        }
        if m.created_at > now_unix.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
            return Err(WireError::TimeInFuture {
                what: "risk config created_at",
                at: m.created_at,
                now: now_unix,
            });
        }
        let near = attenuation("near_db", m.near_db)?;
        let medium = attenuation("medium_db", m.medium_db)?;
        if near > medium {
            return Err(WireError::invalid("medium_db", "is below near_db"));
        }
        let trl: [u32; 9] = m
            .transmission_risk_permille
            .as_slice()
            .try_into()
            .map_err(|_| {
                WireError::invalid(
                    "transmission_risk_permille",
                    format!("has {} values, not 9", m.transmission_risk_permille.len()),
                )
            })?;
        if m.threshold_centiminutes == 0 {
            return Err(WireError::invalid(
                "threshold_centiminutes",
                "must be positive",
            ));
        }
        let mut transmission_risk_values = [0.0; 9];
        for (v, &x) in transmission_risk_values.iter_mut().zip(&trl) {
            *v = from_permille("transmission_risk_permille", x)?;
        }
        let parameters = RiskParameters {
            attenuation_thresholds_db: [near, medium],
            attenuation_weights: [
                from_permille("weight_near_permille", m.weight_near_permille)?,
                from_permille("weight_medium_permille", m.weight_medium_permille)?,
                from_permille("weight_far_permille", m.weight_far_permille)?,
            ],
            max_attenuation_db: attenuation("max_attenuation_db", m.max_attenuation_db)?,
            transmission_risk_values,
            infectiousness: base.infectiousness,
            infectiousness_weights: [
                from_permille(
                    "infectiousness_standard_permille",
                    m.infectiousness_standard_permille,
                )?,
                from_permille(
                    "infectiousness_high_permille",
                    m.infectiousness_high_permille,
                )?,
            ],
            threshold: f64::from(m.threshold_centiminutes) / 100.0,
        };
        let config = RiskConfig {
            origin: m.origin,
            revision: m.revision,
            created_at: m.created_at,
            parameters,
        };
        check_reencodes(WHAT, &config.encode_body(), bytes)?;
        Ok(config)
    }

    /// Signs the configuration with the authority's key.
    pub fn sign(&self, key: &AuthorityKey) -> Result<SignedRiskConfig, WireError> {
        if self.origin != key.origin {
            return Err(WireError::invalid(
                "origin",
                "differs from the signing authority's",
            ));
        }
        let body = self.encode_body();
        let signature = signing::sign(&key.signing_key, RISK_CONFIG_CONTEXT, &body);
        Ok(SignedRiskConfig {
            body,
            key_id: key.key_id,
            signature,
        })
    }
}

/// A risk configuration as it travels: the signed body bytes, key id, signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRiskConfig {
    /// Canonical encoding of the body.
    pub body: Vec<u8>,
    /// Trust-list key id of the signer.
    pub key_id: u32,
    /// Ed25519 signature over `"traceless/v1/risk-config" || 0x00 || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedRiskConfig {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedRiskConfig {
            body: self.body.clone(),
            key_id: self.key_id,
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// Decodes the envelope (size, shape, canonical encoding).
    pub fn decode(bytes: &[u8]) -> Result<SignedRiskConfig, WireError> {
        const WHAT: &str = "signed risk config";
        let m: pb::SignedRiskConfig = decode_limited(WHAT, bytes, MAX_SIGNED_RISK_CONFIG_LEN)?;
        let config = SignedRiskConfig {
            body: m.body,
            key_id: m.key_id,
            signature: signature_bytes(&m.signature)?,
        };
        check_reencodes(WHAT, &config.encode(), bytes)?;
        Ok(config)
    }

    /// Validates the body, checks the signer against `trust` and the signature.
    pub fn verify(
        &self,
        trust: &TrustList,
        now_unix: u64,
        base: &RiskParameters,
    ) -> Result<RiskConfig, WireError> {
        let config = RiskConfig::decode_body(&self.body, now_unix, base)?;
        let key = trust.get(&config.origin, self.key_id)?;
        signing::verify(
            key,
            RISK_CONFIG_CONTEXT,
            &self.body,
            &self.signature,
            "risk config",
        )?;
        Ok(config)
    }
}
