//! Venue check-in vectors (`vectors/venue-v1.json`, SPEC.md §12.9): the
//! CrowdNotifier v3 HKDF and identity vectors as published
//! (CrowdNotifier/libcrowdnotifier `lib/src/v3/testvectors.ts` for HKDF, the
//! CrowdNotifier SDK test JSON for identities, both re-computed in
//! ../shared/research/presence.md §1.1), RFC 9380 Appendix J.9.1's hash-to-G1
//! vectors, and Traceless's own IBE vectors. Checked byte for byte; with
//! `TRACELESS_WRITE_VECTORS=1` the Traceless section is (re)written.

use serde_json::{json, Value};
use traceless_protocol::venue::ibe::{gt_bytes, h1, hash_to_g1};
use traceless_protocol::venue::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/venue-v1.json");

/// (payload, noncePreId, nonceTimekey, notificationKey), as published.
const HKDF: [(&str, &str, &str, &str); 2] = [
    (
        "50617273652074686973206173206279746573",
        "4ef68b947b90cf073f5e3df233d0b779b772a989b90d99958e1374a58bfeb730",
        "9a5f04141dede47d737daa4b70c304463b69fa774b96dc3c76d8bbdc36957a22",
        "276208f25177b33d55739bbba7d7d131b3c2622e87703c2d9cbb4893da49934b",
    ),
    (
        "326a14a0037a5fa357f66496617d1d3d8a5caa5e8447bc337882689cc25a108d2c170b5ffc",
        "d7022f7c92ace91fca8bdefe834b96deceb8d272aa0fdfc185113c84b7be2c03",
        "46d6d60c1250670f435da32452ef1c378f7388e64b284f4a02db7a38c7a8f9aa",
        "887f3323598ca3fb812c77b694adf33c52e4545473a9fe697775ea66e9fffaf6",
    ),
];

/// (payload text, intervalStart, preid, identity), as published (3600-s slots).
const IDENTITY: [(&str, u64, &str, &str); 2] = [
    (
        "Parse this as bytes",
        12,
        "c74376a98ffc85c4085410bf00d84331f90a7710f1504c57c66d20fda17e5578",
        "166c3a8cf1f168f0664f17dec7ca1af5377188762568582014a40764768539e0",
    ),
    (
        "Another Identity Test",
        886_432,
        "f751fbb6b6f17a9172b49d7db89e12f50420d5f3751d2b64742542cdd8a0329e",
        "334c02682989c3489978dffffe9f377d67000f93e384c88ead006eb12ca2cce8",
    ),
];

/// RFC 9380 J.9.1, suite BLS12381G1_XMD:SHA-256_SSWU_RO_: (msg, P.x, P.y).
const RFC9380_DST: &str = "QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
const RFC9380: [(&str, &str, &str); 2] = [
    (
        "",
        "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1",
        "08ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265",
    ),
    (
        "abc",
        "03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903",
        "0b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

#[test]
fn crowdnotifier_v3_hkdf_vectors_match_byte_for_byte() {
    for (payload, n1, n2, nk) in HKDF {
        let n = VenueNonces::derive(&unhex(payload));
        assert_eq!(hex::encode(n.nonce_preid), n1);
        assert_eq!(hex::encode(n.nonce_timekey), n2);
        assert_eq!(hex::encode(n.notification_key), nk);
    }
}

#[test]
fn crowdnotifier_v3_identity_vectors_match_byte_for_byte() {
    for (payload, start, want_preid, want_id) in IDENTITY {
        let payload = payload.as_bytes();
        let slot = Slot::new(start, 3600).unwrap_or(Slot {
            start,
            length: 3600,
        });
        let nonces = VenueNonces::derive(payload);
        assert_eq!(hex::encode(preid(payload, &nonces)), want_preid);
        assert_eq!(hex::encode(identity(payload, slot)), want_id);
    }
}

/// The vectors' interval starts (12, 886432) are not hour-aligned; Traceless
/// itself only ever issues aligned slots.
#[test]
fn unaligned_slots_are_refused_for_traceless_use() {
    assert!(matches!(
        Slot::new(12, 3600),
        Err(VenueError::BadSlot {
            start: 12,
            length: 3600
        })
    ));
    assert!(matches!(Slot::new(0, 60), Err(VenueError::BadSlot { .. })));
    assert_eq!(Slot::new(7200, 3600).map(|s| s.end()), Ok(10_800));
}

#[test]
fn rfc9380_hash_to_g1_vectors_match_byte_for_byte() {
    use ark_serialize_shim::uncompressed_xy;
    for (msg, x, y) in RFC9380 {
        let p = hash_to_g1(RFC9380_DST.as_bytes(), msg.as_bytes());
        assert_eq!(
            uncompressed_xy(&p),
            (x.to_string(), y.to_string()),
            "msg {msg:?}"
        );
    }
}

/// Reads x and y of a G1 point through the public compressed encoding: the
/// uncompressed form is x ‖ y big-endian with flags in x's top bits (SPEC.md §12.3).
mod ark_serialize_shim {
    pub fn uncompressed_xy(p: &ark_bls12_381::G1Affine) -> (String, String) {
        use ark_serialize::CanonicalSerialize;
        let mut out = [0u8; 96];
        p.serialize_uncompressed(&mut out[..]).expect("96 bytes");
        (hex::encode(&out[..48]), hex::encode(&out[48..]))
    }
}

fn own_vectors() -> Value {
    let wide: [u8; 64] = std::array::from_fn(|i| i as u8);
    let msk = MasterSecret::from_wide(&wide);
    let mpk = msk.public();
    let id: [u8; 32] = unhex(IDENTITY[0].3).try_into().expect("32");
    let sk = msk.identity_key(&id);
    let x = [7u8; 32];
    let m = b"Traceless venue record";
    let ct = mpk.encrypt_with(&id, m, &x);
    let gt = ark_ec::pairing::Pairing::pairing(h1(&id), ark_g2(&mpk));
    json!({
        "msk_wide": hex::encode(wide),
        "msk": hex::encode(msk.to_bytes()),
        "mpk": hex::encode(mpk.to_bytes()),
        "id": hex::encode(id),
        "h1_id": hex::encode(IdentityKey::from_bytes(&g1_bytes(&h1(&id))).expect("point").to_bytes()),
        "sk_id": hex::encode(sk.to_bytes()),
        "e_h1_mpk": hex::encode(gt_bytes(&gt)),
        "x": hex::encode(x),
        "m": hex::encode(m),
        "ciphertext": hex::encode(ct),
    })
}

fn g1_bytes(p: &ark_bls12_381::G1Affine) -> Vec<u8> {
    use ark_serialize::CanonicalSerialize;
    let mut v = Vec::new();
    p.serialize_compressed(&mut v).expect("48");
    v
}

fn ark_g2(mpk: &MasterPublic) -> ark_bls12_381::G2Affine {
    use ark_serialize::CanonicalDeserialize;
    ark_bls12_381::G2Affine::deserialize_compressed(&mpk.to_bytes()[..]).expect("valid")
}

fn published() -> Value {
    json!({
        "crowdnotifier_v3_hkdf": HKDF.iter().map(|(p, a, b, c)| json!({
            "payload": p, "nonce_preid": a, "nonce_timekey": b, "notification_key": c})).collect::<Vec<_>>(),
        "crowdnotifier_v3_identity": IDENTITY.iter().map(|(p, s, pre, id)| json!({
            "payload_utf8": p, "interval_start": s, "interval_length": 3600, "preid": pre, "identity": id})).collect::<Vec<_>>(),
        "rfc9380_bls12381g1_xmd_sha256_sswu_ro": {"dst": RFC9380_DST, "vectors": RFC9380.iter().map(|(m, x, y)| json!({
            "msg": m, "x": x, "y": y})).collect::<Vec<_>>()},
    })
}

#[test]
fn vector_file_matches_byte_for_byte() {
    let want = json!({
        "description": "Traceless venue check-in vectors, SPEC.md §12.9",
        "published": published(),
        "traceless_ibe_v1": own_vectors(),
    });
    if std::env::var_os("TRACELESS_WRITE_VECTORS").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&want).expect("json") + "\n",
        )
        .expect("write");
    }
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file")).expect("json");
    assert_eq!(file, want);
}

/// The published ciphertext opens with the published key, independently of how
/// it was made (a second implementation checks exactly this).
#[test]
fn published_ibe_ciphertext_opens_with_published_key() {
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file")).expect("json");
    let v = &file["traceless_ibe_v1"];
    let get = |k: &str| unhex(v[k].as_str().expect("field"));
    let sk = IdentityKey::from_bytes(&get("sk_id")).expect("key");
    let id: [u8; 32] = get("id").try_into().expect("32");
    assert_eq!(sk.decrypt(&id, &get("ciphertext")), Ok(get("m")));
    let mpk = MasterPublic::from_bytes(&get("mpk")).expect("mpk");
    assert!(sk.is_key_of(&mpk, &id));
}
