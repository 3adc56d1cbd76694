//! Anonymous-upload crypto rates on one core, with a baseline from the same run:
//! token issuance (VOPRF BlindEvaluate with a DLEQ proof, per token in batches of
//! 16), the phone's blind + finalize, the gateway's redemption check
//! (VOPRF Evaluate), and HPKE seal/open of a 1024-byte upload, next to a
//! baseline of the same kind of work: Ed25519 signature verification.
//!
//! Run: `cargo bench -p traceless-protocol --bench tokens`.

#![allow(missing_docs)]

#[path = "support/rate.rs"]
mod support;

use std::hint::black_box;

use traceless_protocol::ed25519_dalek::Signer;
use traceless_protocol::wire::UPLOAD_REQUEST_LEN;
use traceless_protocol::*;

use support::rate;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("traceless-protocol anonymous-upload bench (one core)");
    let key = TokenKey::generate(1);
    let authority = AuthorityKey::generate("bench.health", 1);
    let msg = [7u8; 64];
    let sig = authority.signing_key.sign(&msg);
    let public = authority.verifying_key();
    let baseline = rate("baseline: Ed25519 verify", 1, || {
        assert!(public.verify_strict(black_box(&msg), &sig).is_ok());
    });
    let request = TokenRequest::new(1, 16).expect("16 tokens");
    let issue = rate("issuer: BlindEvaluate + proof (per token, x16)", 16, || {
        black_box(key.issue(&request.blinded).expect("issues"));
    });
    let response = key.issue(&request.blinded).expect("issues");
    rate("phone: blind (per token, x16)", 16, || {
        black_box(TokenRequest::new(1, 16).expect("blinds"));
    });
    rate(
        "phone: verify proof + finalize (per token, x16)",
        16,
        || {
            black_box(
                request
                    .finalize(&response, &key.public_key())
                    .expect("finalizes"),
            );
        },
    );
    let tokens = request
        .finalize(&response, &key.public_key())
        .expect("finalizes");
    let redeem = rate("gateway: redemption check (Evaluate)", 1, || {
        assert!(key.verify(black_box(&tokens[0])));
    });
    let gateway = GatewaySealKey::generate();
    let upload = vec![0u8; UPLOAD_REQUEST_LEN];
    rate("phone: HPKE seal (1024 B)", 1, || {
        black_box(seal_upload(&gateway.public_bytes(), &upload).expect("seals"));
    });
    let sealed = seal_upload(&gateway.public_bytes(), &upload).expect("seals");
    let open = rate("gateway: HPKE open (1024 B)", 1, || {
        black_box(gateway.open(&sealed).expect("opens"));
    });
    println!(
        "  ratios to Ed25519 verify: issuance {:.2}, redemption {:.2}, open {:.2}",
        issue / baseline,
        redeem / baseline,
        open / baseline
    );
}
