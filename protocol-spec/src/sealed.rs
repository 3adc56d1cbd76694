//! Uploads sealed to the gateway (SPEC.md §5.7): HPKE, RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, via the `hpke`
//! crate. A phone seals its fixed-length upload request (real or dummy) to the
//! gateway's public key and hands it to any relay; the relay forwards bytes it
//! cannot read, and the gateway never learns the phone's address.
//!
//! ```text
//! sealed = version(1) = 0x01 || enc(32) || HPKE.Seal(pkR, info = SEALED_UPLOAD_INFO,
//!                                                     aad = version, pt = upload request)
//! ```
//!
//! Every sealed upload is exactly [`SEALED_UPLOAD_LEN`] bytes.

use hpke::{Deserializable, Kem as KemTrait, OpModeR, OpModeS, Serializable};
use rand_core::OsRng;

use crate::error::WireError;
use crate::wire::UPLOAD_REQUEST_LEN;

/// The KEM: DHKEM(X25519, HKDF-SHA256).
pub type HpkeKem = hpke::kem::X25519HkdfSha256;
/// The KDF: HKDF-SHA256.
pub type HpkeKdf = hpke::kdf::HkdfSha256;
/// The AEAD: ChaCha20-Poly1305.
pub type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Version byte of the sealed format.
pub const SEALED_VERSION: u8 = 1;
/// HPKE `info` of sealed uploads.
pub const SEALED_UPLOAD_INFO: &[u8] = b"traceless/v1/sealed-upload";
/// Length of an X25519 public key and of `enc`.
pub const SEAL_KEY_LEN: usize = 32;
/// Exact length of every sealed upload: version, enc, ciphertext with its tag.
pub const SEALED_UPLOAD_LEN: usize = 1 + SEAL_KEY_LEN + UPLOAD_REQUEST_LEN + 16;

/// The gateway's HPKE key pair.
pub struct GatewaySealKey {
    secret: <HpkeKem as KemTrait>::PrivateKey,
    public: <HpkeKem as KemTrait>::PublicKey,
}

fn hpke_error(what: &'static str) -> impl Fn(hpke::HpkeError) -> WireError {
    move |e| WireError::invalid(what, e.to_string())
}

impl GatewaySealKey {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        let (secret, public) = HpkeKem::gen_keypair(&mut OsRng);
        GatewaySealKey { secret, public }
    }

    /// Restores a key pair from its 32-byte secret.
    pub fn from_secret(bytes: &[u8]) -> Result<Self, WireError> {
        let secret = <HpkeKem as KemTrait>::PrivateKey::from_bytes(bytes)
            .map_err(hpke_error("gateway seal key"))?;
        let public = HpkeKem::sk_to_pk(&secret);
        Ok(GatewaySealKey { secret, public })
    }

    /// The 32-byte secret, for the key file.
    pub fn secret_bytes(&self) -> [u8; SEAL_KEY_LEN] {
        self.secret.to_bytes().into()
    }

    /// The public key phones seal to.
    pub fn public_bytes(&self) -> [u8; SEAL_KEY_LEN] {
        self.public.to_bytes().into()
    }

    /// Opens `enc ‖ ciphertext` of [`hpke_seal`] under `info` and `aad`; `None`
    /// when it was not sealed to this key with them, or was altered.
    pub(crate) fn hpke_open(&self, info: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let enc =
            <HpkeKem as KemTrait>::EncappedKey::from_bytes(sealed.get(..SEAL_KEY_LEN)?).ok()?;
        hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &self.secret,
            &enc,
            info,
            &sealed[SEAL_KEY_LEN..],
            aad,
        )
        .ok()
    }

    /// Opens a sealed upload: the fixed-length upload request inside.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, WireError> {
        if sealed.len() != SEALED_UPLOAD_LEN {
            return Err(WireError::invalid(
                "sealed upload",
                format!(
                    "is {} bytes; every sealed upload is {SEALED_UPLOAD_LEN}",
                    sealed.len()
                ),
            ));
        }
        if sealed[0] != SEALED_VERSION {
            return Err(WireError::UnsupportedVersion {
                what: "sealed upload",
                found: u32::from(sealed[0]),
                supported: u32::from(SEALED_VERSION),
            });
        }
        self.hpke_open(SEALED_UPLOAD_INFO, &sealed[..1], &sealed[1..])
            .ok_or(WireError::BadSignature(
                "sealed upload (wrong gateway key or tampered)",
            ))
    }
}

/// Seals a fixed-length upload request to the gateway's public key.
pub fn seal_upload(
    gateway_public: &[u8; SEAL_KEY_LEN],
    request: &[u8],
) -> Result<Vec<u8>, WireError> {
    if request.len() != UPLOAD_REQUEST_LEN {
        return Err(WireError::invalid(
            "upload request",
            format!("is {} bytes, not {UPLOAD_REQUEST_LEN}", request.len()),
        ));
    }
    let header = [SEALED_VERSION];
    let mut out = header.to_vec();
    out.extend(
        hpke_seal(gateway_public, SEALED_UPLOAD_INFO, &header, request)
            .ok_or_else(|| WireError::invalid("gateway public key", "not an X25519 key"))?,
    );
    debug_assert_eq!(out.len(), SEALED_UPLOAD_LEN);
    Ok(out)
}

/// HPKE base-mode single-shot seal of `pt` to the X25519 key `public` under
/// `info` and `aad`: `enc (32) ‖ ciphertext ‖ tag (16)`. The one sealing path of
/// uploads (§5.7), venue authority shares (§12.4) and stay reports (§12.11).
/// `None` if `public` is not a key.
pub(crate) fn hpke_seal(
    public: &[u8; SEAL_KEY_LEN],
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
) -> Option<Vec<u8>> {
    let pk = <HpkeKem as KemTrait>::PublicKey::from_bytes(public).ok()?;
    let (enc, ciphertext) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem, _>(
        &OpModeS::Base,
        &pk,
        info,
        pt,
        aad,
        &mut OsRng,
    )
    .ok()?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ciphertext);
    Some(out)
}
