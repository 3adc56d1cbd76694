//! Anonymous upload tokens (SPEC.md §5.6): a verifiable oblivious PRF, RFC 9497,
//! mode VOPRF, ciphersuite ristretto255-SHA512, via the `voprf` crate.
//!
//! ```text
//! phone:     x random (32 bytes); (state, B) = Blind(x)                 -> issuer: B
//! issuer:    (Z, proof) = BlindEvaluate(sk, pk, B)   (after checking the patient's code)
//! phone:     y = Finalize(x, state, Z, proof, pk)     (verifies the DLEQ proof)
//! upload:    token = (epoch, x, y)                    -> gateway: y == Evaluate(sk, x), x unspent
//! ```
//!
//! The issuer sees only `B`, a uniformly random group element, so it cannot link
//! the token it evaluated to the `(x, y)` later redeemed at the gateway. The proof
//! makes the phone sure that every token was evaluated under the published key
//! of the epoch (no per-user key that would tag it).

use prost::Message;
use rand_core::{OsRng, RngCore};
use voprf::{BlindedElement, EvaluationElement, Group, Proof, VoprfClient, VoprfServer};

use crate::error::WireError;
use crate::wire::{check_version, decode_limited, pb, PROTOCOL_VERSION};

/// The RFC 9497 ciphersuite: ristretto255 with SHA-512.
pub type TokenSuite = voprf::Ristretto255;
/// Length of a token's secret input.
pub const TOKEN_INPUT_LEN: usize = 32;
/// Length of a token's PRF output (SHA-512).
pub const TOKEN_OUTPUT_LEN: usize = 64;
/// Length of a serialized ristretto255 element.
pub const ELEMENT_LEN: usize = 32;
/// Most tokens one issuance may ask for.
pub const MAX_TOKENS_PER_ISSUANCE: usize = 16;
/// Largest encoded token request or response accepted.
pub const MAX_TOKEN_MESSAGE_LEN: usize = 4096;

fn token_error(what: &'static str) -> impl Fn(voprf::Error) -> WireError {
    move |e| WireError::invalid(what, format!("{e:?}"))
}

/// One authority's VOPRF key of one epoch: the issuer evaluates with it, the
/// gateway recomputes outputs with it.
pub struct TokenKey {
    /// Epoch (key id) of this key; tokens name it.
    pub epoch: u32,
    server: VoprfServer<TokenSuite>,
}

/// The public half of a [`TokenKey`], which phones use to verify issuance proofs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPublicKey {
    /// Epoch of the key.
    pub epoch: u32,
    /// Serialized ristretto255 element.
    pub key: [u8; ELEMENT_LEN],
}

/// A redeemable token: the secret input and its PRF output under the epoch's key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UploadToken {
    /// Epoch of the key that evaluated it.
    pub epoch: u32,
    /// The phone's random input `x`.
    pub input: [u8; TOKEN_INPUT_LEN],
    /// `y = F(sk, x)`.
    pub output: [u8; TOKEN_OUTPUT_LEN],
}

impl std::fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UploadToken(epoch {}, ..)", self.epoch)
    }
}

impl TokenKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate(epoch: u32) -> Self {
        TokenKey {
            epoch,
            server: VoprfServer::new(&mut OsRng).expect("a random scalar is a valid key"),
        }
    }

    /// The 64-byte serialization (secret scalar || public element).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.server.serialize().to_vec()
    }

    /// Restores a key from [`TokenKey::to_bytes`].
    pub fn from_bytes(epoch: u32, bytes: &[u8]) -> Result<Self, WireError> {
        Ok(TokenKey {
            epoch,
            server: VoprfServer::deserialize(bytes).map_err(token_error("token key"))?,
        })
    }

    /// The public key phones verify proofs against.
    pub fn public_key(&self) -> TokenPublicKey {
        let mut key = [0u8; ELEMENT_LEN];
        key.copy_from_slice(&TokenSuite::serialize_elem(self.server.get_public_key()));
        TokenPublicKey {
            epoch: self.epoch,
            key,
        }
    }

    /// Evaluates blinded elements (one DLEQ proof for the batch).
    pub fn issue(&self, blinded: &[[u8; ELEMENT_LEN]]) -> Result<TokenResponse, WireError> {
        if blinded.is_empty() || blinded.len() > MAX_TOKENS_PER_ISSUANCE {
            return Err(WireError::invalid(
                "blinded",
                format!(
                    "asks for {} tokens; 1..={MAX_TOKENS_PER_ISSUANCE} may be issued at once",
                    blinded.len()
                ),
            ));
        }
        let elements = blinded
            .iter()
            .map(|b| BlindedElement::<TokenSuite>::deserialize(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(token_error("blinded"))?;
        let result = self
            .server
            .batch_blind_evaluate(&mut OsRng, &elements)
            .map_err(token_error("blinded"))?;
        Ok(TokenResponse {
            epoch: self.epoch,
            evaluated: result
                .messages
                .iter()
                .map(|m| m.serialize().into())
                .collect(),
            proof: result.proof.serialize().to_vec(),
        })
    }

    /// Whether `token` was evaluated under this key (constant-time comparison).
    pub fn verify(&self, token: &UploadToken) -> bool {
        if token.epoch != self.epoch {
            return false;
        }
        let Ok(expected) = self.server.evaluate(&token.input) else {
            return false;
        };
        let diff = expected
            .iter()
            .zip(token.output.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

/// A phone's pending request: the random inputs and blinding state, kept until
/// the issuer answers.
pub struct TokenRequest {
    /// Epoch of the key asked to evaluate.
    pub epoch: u32,
    inputs: Vec<[u8; TOKEN_INPUT_LEN]>,
    clients: Vec<VoprfClient<TokenSuite>>,
    /// The blinded elements to send.
    pub blinded: Vec<[u8; ELEMENT_LEN]>,
}

impl TokenRequest {
    /// Blinds `count` fresh random inputs for the key of `epoch`.
    pub fn new(epoch: u32, count: usize) -> Result<Self, WireError> {
        if count == 0 || count > MAX_TOKENS_PER_ISSUANCE {
            return Err(WireError::invalid(
                "count",
                format!("1..={MAX_TOKENS_PER_ISSUANCE} tokens may be requested at once"),
            ));
        }
        let mut request = TokenRequest {
            epoch,
            inputs: Vec::with_capacity(count),
            clients: Vec::with_capacity(count),
            blinded: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let mut input = [0u8; TOKEN_INPUT_LEN];
            OsRng.fill_bytes(&mut input);
            let blind = VoprfClient::<TokenSuite>::blind(&input, &mut OsRng)
                .expect("a 32-byte input is valid");
            request.inputs.push(input);
            request.blinded.push(blind.message.serialize().into());
            request.clients.push(blind.state);
        }
        Ok(request)
    }

    /// The wire message for the issuer, authorized by the authority's code.
    pub fn encode(&self, authorization: &[u8]) -> Vec<u8> {
        pb::TokenIssueRequest {
            version: PROTOCOL_VERSION,
            authorization: authorization.to_vec(),
            epoch: self.epoch,
            blinded: self.blinded.iter().map(|b| b.to_vec()).collect(),
        }
        .encode_to_vec()
    }

    /// Verifies the issuer's proof against `key` and unblinds the tokens.
    pub fn finalize(
        &self,
        response: &TokenResponse,
        key: &TokenPublicKey,
    ) -> Result<Vec<UploadToken>, WireError> {
        if response.epoch != self.epoch || key.epoch != self.epoch {
            return Err(WireError::invalid(
                "epoch",
                "response or key is for another epoch",
            ));
        }
        if response.evaluated.len() != self.clients.len() {
            return Err(WireError::invalid(
                "evaluated",
                format!(
                    "{} elements for {} requested",
                    response.evaluated.len(),
                    self.clients.len()
                ),
            ));
        }
        let evaluated = response
            .evaluated
            .iter()
            .map(|e| EvaluationElement::<TokenSuite>::deserialize(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(token_error("evaluated"))?;
        let proof =
            Proof::<TokenSuite>::deserialize(&response.proof).map_err(token_error("proof"))?;
        let pk = TokenSuite::deserialize_elem(&key.key).map_err(token_error("token public key"))?;
        let outputs =
            VoprfClient::batch_finalize(&self.inputs, &self.clients, &evaluated, &proof, pk)
                .map_err(|_| WireError::BadSignature("token issuance proof"))?;
        self.inputs
            .iter()
            .zip(outputs)
            .map(|(input, output)| {
                let output = output.map_err(token_error("output"))?;
                let mut out = [0u8; TOKEN_OUTPUT_LEN];
                out.copy_from_slice(&output);
                Ok(UploadToken {
                    epoch: self.epoch,
                    input: *input,
                    output: out,
                })
            })
            .collect()
    }
}

/// Serialized group elements off the wire, each exactly [`ELEMENT_LEN`] bytes.
fn elements(what: &'static str, raw: &[Vec<u8>]) -> Result<Vec<[u8; ELEMENT_LEN]>, WireError> {
    raw.iter()
        .map(|b| {
            <[u8; ELEMENT_LEN]>::try_from(b.as_slice())
                .map_err(|_| WireError::invalid(what, "an element is 32 bytes"))
        })
        .collect()
}

/// A decoded request at the issuer. Its `Debug` leaves the authorization code
/// out, so that logging a request never writes a patient's code.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenIssueRequest {
    /// The authority's single-use code for this patient.
    pub authorization: Vec<u8>,
    /// Epoch asked for.
    pub epoch: u32,
    /// Blinded elements.
    pub blinded: Vec<[u8; ELEMENT_LEN]>,
}

impl std::fmt::Debug for TokenIssueRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssueRequest")
            .field("authorization", &"..")
            .field("epoch", &self.epoch)
            .field("blinded", &self.blinded.len())
            .finish()
    }
}

impl TokenIssueRequest {
    /// Decodes and checks sizes and counts.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        const WHAT: &str = "token request";
        let m: pb::TokenIssueRequest = decode_limited(WHAT, bytes, MAX_TOKEN_MESSAGE_LEN)?;
        check_version(WHAT, m.version)?;
        if m.blinded.is_empty() || m.blinded.len() > MAX_TOKENS_PER_ISSUANCE {
            return Err(WireError::TooManyKeys {
                what: WHAT,
                count: m.blinded.len(),
                max: MAX_TOKENS_PER_ISSUANCE,
            });
        }
        Ok(TokenIssueRequest {
            blinded: elements("blinded", &m.blinded)?,
            authorization: m.authorization,
            epoch: m.epoch,
        })
    }
}

/// The issuer's answer: evaluated elements and one proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// Epoch of the key used.
    pub epoch: u32,
    /// Evaluated elements, in request order.
    pub evaluated: Vec<[u8; ELEMENT_LEN]>,
    /// DLEQ proof (64 bytes).
    pub proof: Vec<u8>,
}

impl TokenResponse {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::TokenIssueResponse {
            version: PROTOCOL_VERSION,
            epoch: self.epoch,
            evaluated: self.evaluated.iter().map(|e| e.to_vec()).collect(),
            proof: self.proof.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes and checks sizes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        const WHAT: &str = "token response";
        let m: pb::TokenIssueResponse = decode_limited(WHAT, bytes, MAX_TOKEN_MESSAGE_LEN)?;
        check_version(WHAT, m.version)?;
        Ok(TokenResponse {
            epoch: m.epoch,
            evaluated: elements("evaluated", &m.evaluated)?,
            proof: m.proof,
        })
    }
}
