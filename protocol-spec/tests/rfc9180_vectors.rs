//! The published RFC 9180 test vectors for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305 in mode Base (Appendix A.2.1,
//! `vectors/rfc9180-x25519-sha256-chacha20poly1305.json`), checked byte for byte
//! against the `hpke` crate in exactly the configuration Traceless uses.
//!
//! The crate keeps the key schedule (key, base_nonce, exporter_secret, per-message
//! nonces) private, so those published values are checked twice: implicitly, because
//! the crate's ciphertexts and exports match, and explicitly, by recomputing RFC 9180
//! §5.1 from the published shared_secret with `hkdf`/`sha2`.
//!
//! The sender side is reproduced too: `setup_sender` draws the ephemeral key through
//! `Kem::gen_keypair`, which reads Nsk = 32 bytes from the RNG and runs
//! `derive_keypair` on them, so an RNG that yields exactly ikmE gives the published
//! ephemeral key (`FixedRng` panics on any other amount drawn).

#![allow(clippy::unwrap_used)]

mod common;
use common::FixedRng;

use hkdf::Hkdf;
use hpke::aead::{Aead, ChaCha20Poly1305};
use hpke::kdf::{HkdfSha256, Kdf};
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use serde::Deserialize;
use sha2::Sha256;

type A = ChaCha20Poly1305;
type K = HkdfSha256;
type M = X25519HkdfSha256;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vectors/rfc9180-x25519-sha256-chacha20poly1305.json"
);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    source: String,
    mode: u8,
    #[serde(rename = "kem_id")]
    kem_id: u16,
    #[serde(rename = "kdf_id")]
    kdf_id: u16,
    #[serde(rename = "aead_id")]
    aead_id: u16,
    info: String,
    ikm_e: String,
    pk_em: String,
    sk_em: String,
    ikm_r: String,
    pk_rm: String,
    sk_rm: String,
    enc: String,
    #[serde(rename = "shared_secret")]
    shared_secret: String,
    #[serde(rename = "key_schedule_context")]
    key_schedule_context: String,
    secret: String,
    key: String,
    #[serde(rename = "base_nonce")]
    base_nonce: String,
    #[serde(rename = "exporter_secret")]
    exporter_secret: String,
    encryptions: Vec<Encryption>,
    exports: Vec<Export>,
}

#[derive(Deserialize)]
struct Encryption {
    sequence_number: u64,
    pt: String,
    aad: String,
    nonce: String,
    ct: String,
}

#[derive(Deserialize)]
struct Export {
    exporter_context: String,
    #[serde(rename = "L")]
    len: usize,
    exported_value: String,
}

fn load() -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
        .expect("vectors file parses")
}

fn h(hex_str: &str) -> Vec<u8> {
    hex::decode(hex_str).unwrap()
}

fn receiver_key(v: &Vectors) -> <M as Kem>::PrivateKey {
    <M as Kem>::PrivateKey::from_bytes(&h(&v.sk_rm)).unwrap()
}

fn encapped_key(v: &Vectors) -> <M as Kem>::EncappedKey {
    <M as Kem>::EncappedKey::from_bytes(&h(&v.enc)).unwrap()
}

// RFC 9180 §4 / §5.1, for the independent key-schedule check.
fn suite_id(v: &Vectors) -> Vec<u8> {
    let mut id = b"HPKE".to_vec();
    for x in [v.kem_id, v.kdf_id, v.aead_id] {
        id.extend_from_slice(&x.to_be_bytes());
    }
    id
}

fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
    let labeled_ikm = [b"HPKE-v1", suite_id, label, ikm].concat();
    Hkdf::<Sha256>::extract(Some(salt), &labeled_ikm).0.to_vec()
}

fn labeled_expand(suite_id: &[u8], prk: &[u8], label: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let l = u16::try_from(len).unwrap().to_be_bytes();
    let labeled_info = [&l[..], b"HPKE-v1", suite_id, label, info].concat();
    let mut out = vec![0u8; len];
    Hkdf::<Sha256>::from_prk(prk)
        .unwrap()
        .expand(&labeled_info, &mut out)
        .unwrap();
    out
}

#[test]
fn file_is_complete() {
    let v = load();
    assert!(v.source.contains("RFC 9180"));
    assert_eq!(v.mode, 0, "mode Base");
    assert_eq!(v.kem_id, <M as Kem>::KEM_ID);
    assert_eq!(v.kem_id, 0x0020);
    assert_eq!(v.kdf_id, <K as Kdf>::KDF_ID);
    assert_eq!(v.kdf_id, 0x0001);
    assert_eq!(v.aead_id, <A as Aead>::AEAD_ID);
    assert_eq!(v.aead_id, 0x0003);
    assert_eq!(v.encryptions.len(), 257);
    for (i, e) in v.encryptions.iter().enumerate() {
        assert_eq!(e.sequence_number, i as u64, "encryptions are in sequence");
    }
    assert_eq!(v.exports.len(), 3);
}

#[test]
fn key_pairs_from_ikm() {
    let v = load();
    let (sk_e, pk_e) = M::derive_keypair(&h(&v.ikm_e));
    assert_eq!(sk_e.to_bytes()[..], h(&v.sk_em)[..], "skEm");
    assert_eq!(pk_e.to_bytes()[..], h(&v.pk_em)[..], "pkEm");
    let (sk_r, pk_r) = M::derive_keypair(&h(&v.ikm_r));
    assert_eq!(sk_r.to_bytes()[..], h(&v.sk_rm)[..], "skRm");
    assert_eq!(pk_r.to_bytes()[..], h(&v.pk_rm)[..], "pkRm");
    assert_eq!(M::sk_to_pk(&sk_r), pk_r);
    // In DHKEM, enc is the serialized ephemeral public key.
    assert_eq!(h(&v.enc), h(&v.pk_em), "enc == pkEm");
    assert_eq!(encapped_key(&v).to_bytes()[..], pk_e.to_bytes()[..]);
}

#[test]
fn kem_shared_secret() {
    let v = load();
    // `Kem::decap`/`encap` are public but doc(hidden); they are the only way to see
    // the KEM shared secret through the crate.
    let ss = M::decap(&receiver_key(&v), None, &encapped_key(&v)).unwrap();
    assert_eq!(ss.0[..], h(&v.shared_secret)[..], "shared_secret");
    let pk_r = <M as Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).unwrap();
    let mut rng = FixedRng::new(h(&v.ikm_e));
    let (ss, enc) = M::encap(&pk_r, None, &mut rng).unwrap();
    rng.assert_used_up();
    assert_eq!(ss.0[..], h(&v.shared_secret)[..], "shared_secret");
    assert_eq!(enc.to_bytes()[..], h(&v.enc)[..], "enc");
}

#[test]
fn key_schedule_recomputed() {
    let v = load();
    let sid = suite_id(&v);
    let psk_id_hash = labeled_extract(&sid, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&sid, b"", b"info_hash", &h(&v.info));
    let ksc = [&[v.mode][..], &psk_id_hash, &info_hash].concat();
    assert_eq!(ksc, h(&v.key_schedule_context), "key_schedule_context");
    let secret = labeled_extract(&sid, &h(&v.shared_secret), b"secret", b"");
    assert_eq!(secret, h(&v.secret), "secret");
    assert_eq!(
        labeled_expand(&sid, &secret, b"key", &ksc, 32),
        h(&v.key),
        "key"
    );
    let base_nonce = labeled_expand(&sid, &secret, b"base_nonce", &ksc, 12);
    assert_eq!(base_nonce, h(&v.base_nonce), "base_nonce");
    let exporter_secret = labeled_expand(&sid, &secret, b"exp", &ksc, 32);
    assert_eq!(exporter_secret, h(&v.exporter_secret), "exporter_secret");
    for e in &v.encryptions {
        let mut nonce = base_nonce.clone();
        for (n, s) in nonce[4..].iter_mut().zip(e.sequence_number.to_be_bytes()) {
            *n ^= s;
        }
        assert_eq!(nonce, h(&e.nonce), "nonce {}", e.sequence_number);
    }
    for x in &v.exports {
        assert_eq!(
            labeled_expand(
                &sid,
                &exporter_secret,
                b"sec",
                &h(&x.exporter_context),
                x.len
            ),
            h(&x.exported_value),
            "exported_value for context {:?}",
            x.exporter_context
        );
    }
}

#[test]
fn receiver_opens_every_ciphertext_and_exports() {
    let v = load();
    let mut ctx = hpke::setup_receiver::<A, K, M>(
        &OpModeR::Base,
        &receiver_key(&v),
        &encapped_key(&v),
        &h(&v.info),
    )
    .unwrap();
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        ctx.export(&h(&x.exporter_context), &mut out).unwrap();
        assert_eq!(out, h(&x.exported_value), "export {:?}", x.exporter_context);
    }
    for e in &v.encryptions {
        let pt = ctx
            .open(&h(&e.ct), &h(&e.aad))
            .unwrap_or_else(|err| panic!("open failed at sequence {}: {err:?}", e.sequence_number));
        assert_eq!(pt, h(&e.pt), "pt {}", e.sequence_number);
    }
}

#[test]
fn sender_with_fixed_ephemeral_key_seals_every_plaintext_and_exports() {
    let v = load();
    let pk_r = <M as Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).unwrap();
    let mut rng = FixedRng::new(h(&v.ikm_e));
    let (enc, mut ctx) =
        hpke::setup_sender::<A, K, M, _>(&OpModeS::Base, &pk_r, &h(&v.info), &mut rng).unwrap();
    rng.assert_used_up();
    assert_eq!(enc.to_bytes()[..], h(&v.enc)[..], "enc");
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        ctx.export(&h(&x.exporter_context), &mut out).unwrap();
        assert_eq!(out, h(&x.exported_value), "export {:?}", x.exporter_context);
    }
    for e in &v.encryptions {
        let ct = ctx.seal(&h(&e.pt), &h(&e.aad)).unwrap();
        assert_eq!(ct, h(&e.ct), "ct {}", e.sequence_number);
    }
}
