//! The published RFC 9497 test vectors for ristretto255-SHA512 in VOPRF mode
//! (Appendix A.1.2, `vectors/rfc9497-voprf-ristretto255-sha512.json`), checked byte
//! for byte against the `voprf` crate in exactly the configuration Traceless uses:
//! suite `voprf::Ristretto255`, mode VOPRF, empty context info.
//!
//! The RFC fixes the client's blind and the server's proof nonce. The crate draws both
//! from the RNG it is handed, through `Ristretto255::random_scalar`, which is
//! `curve25519_dalek::Scalar::random`: 64 RNG bytes read as a little-endian integer and
//! reduced mod l. So an RNG that yields the 32 canonical scalar bytes followed by 32
//! zero bytes makes the crate use exactly that scalar; `FixedRng` does this and panics
//! if the crate asks for more bytes than it was given (or leaves any unread).
//! This uses only the public API, so no `danger` feature is needed.

#![allow(clippy::unwrap_used)]

mod common;
use common::FixedRng;

use serde::Deserialize;
use voprf::{
    BlindedElement, EvaluationElement, Group, Proof, Ristretto255, VoprfClient, VoprfServer,
};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vectors/rfc9497-voprf-ristretto255-sha512.json"
);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vectors {
    #[serde(rename = "source")]
    source: String,
    #[serde(rename = "suite")]
    suite: String,
    #[serde(rename = "mode")]
    mode: String,
    seed: String,
    key_info: String,
    #[serde(rename = "skSm")]
    sk_sm: String,
    #[serde(rename = "pkSm")]
    pk_sm: String,
    #[serde(rename = "vectors")]
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vector {
    #[serde(rename = "name")]
    name: String,
    #[serde(rename = "batch_size")]
    batch_size: usize,
    input: Vec<String>,
    blind: Vec<String>,
    blinded_element: Vec<String>,
    evaluation_element: Vec<String>,
    proof: String,
    proof_random_scalar: String,
    output: Vec<String>,
}

fn load() -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file exists"))
        .expect("vectors file parses")
}

fn h(hex_str: &str) -> Vec<u8> {
    hex::decode(hex_str).unwrap()
}

fn hs(list: &[String]) -> Vec<Vec<u8>> {
    list.iter().map(|s| h(s)).collect()
}

fn server(v: &Vectors) -> VoprfServer<Ristretto255> {
    VoprfServer::<Ristretto255>::new_from_seed(&h(&v.seed), &h(&v.key_info)).unwrap()
}

/// Blinds `input` with the given blind, checking that the crate used exactly that
/// scalar and produced the published blinded element.
fn blind(name: &str, input: &[u8], blind: &[u8], blinded: &[u8]) -> VoprfClient<Ristretto255> {
    let mut rng = FixedRng::for_scalar(blind);
    let result = VoprfClient::<Ristretto255>::blind(input, &mut rng).unwrap();
    rng.assert_used_up();
    let state = result.state.serialize();
    assert_eq!(&state[..32], blind, "{name}: Blind as used by the client");
    assert_eq!(
        &state[32..],
        blinded,
        "{name}: BlindedElement in client state"
    );
    assert_eq!(
        &result.message.serialize()[..],
        blinded,
        "{name}: BlindedElement"
    );
    result.state
}

#[test]
fn file_is_complete() {
    let v = load();
    assert!(v.source.contains("RFC 9497"));
    assert_eq!(v.suite, "ristretto255-SHA512");
    assert_eq!(v.mode, "VOPRF");
    assert_eq!(v.vectors.len(), 3);
    assert!(v.vectors.iter().any(|t| t.batch_size == 2));
    for t in &v.vectors {
        let n = t.batch_size;
        assert!(t.name.contains(&format!("Batch Size {n}")), "{}", t.name);
        for (field, list) in [
            ("Input", &t.input),
            ("Blind", &t.blind),
            ("BlindedElement", &t.blinded_element),
            ("EvaluationElement", &t.evaluation_element),
            ("Output", &t.output),
        ] {
            assert_eq!(list.len(), n, "{}: {field}", t.name);
        }
        // The fixed scalars are canonical encodings of non-zero scalars, so the
        // "scalar bytes then 32 zero bytes" RNG trick reproduces them exactly.
        for s in t.blind.iter().chain([&t.proof_random_scalar]) {
            let scalar = Ristretto255::deserialize_scalar(&h(s)).unwrap();
            assert_eq!(Ristretto255::serialize_scalar(scalar)[..], h(s)[..]);
        }
    }
}

#[test]
fn server_key_pair_from_seed_and_key_info() {
    let v = load();
    let server = server(&v);
    let serialized = server.serialize();
    assert_eq!(serialized[..32], h(&v.sk_sm)[..], "skSm");
    assert_eq!(serialized[32..], h(&v.pk_sm)[..], "pkSm");
    assert_eq!(
        Ristretto255::serialize_elem(server.get_public_key())[..],
        h(&v.pk_sm)[..],
        "pkSm"
    );
}

#[test]
fn single_blind_evaluate_finalize() {
    let v = load();
    let server = server(&v);
    let pk = Ristretto255::deserialize_elem(&h(&v.pk_sm)).unwrap();
    for t in v.vectors.iter().filter(|t| t.batch_size == 1) {
        let name = t.name.as_str();
        let input = h(&t.input[0]);
        let client = blind(name, &input, &h(&t.blind[0]), &h(&t.blinded_element[0]));

        // Server: evaluation with the published proof nonce.
        let blinded =
            BlindedElement::<Ristretto255>::deserialize(&h(&t.blinded_element[0])).unwrap();
        let mut rng = FixedRng::for_scalar(&h(&t.proof_random_scalar));
        let evaluated = server.blind_evaluate(&mut rng, &blinded);
        rng.assert_used_up();
        assert_eq!(
            evaluated.message.serialize()[..],
            h(&t.evaluation_element[0])[..],
            "{name}: EvaluationElement"
        );
        assert_eq!(
            evaluated.proof.serialize()[..],
            h(&t.proof)[..],
            "{name}: Proof"
        );

        // Client: finalize on the server's own messages, and on the published bytes
        // (which also verifies the published proof against pkSm).
        let output = client
            .finalize(&input, &evaluated.message, &evaluated.proof, pk)
            .unwrap();
        assert_eq!(output[..], h(&t.output[0])[..], "{name}: Output");
        let message =
            EvaluationElement::<Ristretto255>::deserialize(&h(&t.evaluation_element[0])).unwrap();
        let proof = Proof::<Ristretto255>::deserialize(&h(&t.proof)).unwrap();
        let output = client.finalize(&input, &message, &proof, pk).unwrap();
        assert_eq!(output[..], h(&t.output[0])[..], "{name}: Output");

        // Server-side unblinded PRF evaluation gives the same output.
        assert_eq!(
            server.evaluate(&input).unwrap()[..],
            h(&t.output[0])[..],
            "{name}: evaluate Output"
        );
    }
}

#[test]
fn batch_blind_evaluate_finalize() {
    let v = load();
    let server = server(&v);
    let pk = Ristretto255::deserialize_elem(&h(&v.pk_sm)).unwrap();
    // Every vector, including the batch-size-1 ones, through the batch API.
    for t in &v.vectors {
        let name = t.name.as_str();
        let inputs = hs(&t.input);
        let blinds = hs(&t.blind);
        let blinded_bytes = hs(&t.blinded_element);
        let clients: Vec<VoprfClient<Ristretto255>> = (0..t.batch_size)
            .map(|i| blind(name, &inputs[i], &blinds[i], &blinded_bytes[i]))
            .collect();
        let blinded: Vec<BlindedElement<Ristretto255>> = blinded_bytes
            .iter()
            .map(|b| BlindedElement::deserialize(b).unwrap())
            .collect();

        let mut rng = FixedRng::for_scalar(&h(&t.proof_random_scalar));
        let evaluated = server.batch_blind_evaluate(&mut rng, &blinded).unwrap();
        rng.assert_used_up();
        assert_eq!(evaluated.messages.len(), t.batch_size);
        for (i, m) in evaluated.messages.iter().enumerate() {
            assert_eq!(
                m.serialize()[..],
                h(&t.evaluation_element[i])[..],
                "{name}: EvaluationElement[{i}]"
            );
        }
        assert_eq!(
            evaluated.proof.serialize()[..],
            h(&t.proof)[..],
            "{name}: Proof"
        );

        // Finalize on the published bytes (verifies the published batch proof).
        let messages: Vec<EvaluationElement<Ristretto255>> = t
            .evaluation_element
            .iter()
            .map(|e| EvaluationElement::deserialize(&h(e)).unwrap())
            .collect();
        let proof = Proof::<Ristretto255>::deserialize(&h(&t.proof)).unwrap();
        let outputs: Vec<_> = VoprfClient::batch_finalize(&inputs, &clients, &messages, &proof, pk)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(outputs.len(), t.batch_size);
        for (i, (input, output)) in inputs.iter().zip(&outputs).enumerate() {
            assert_eq!(output[..], h(&t.output[i])[..], "{name}: Output[{i}]");
            assert_eq!(
                server.evaluate(input).unwrap()[..],
                h(&t.output[i])[..],
                "{name}: evaluate Output[{i}]"
            );
        }
    }
}
