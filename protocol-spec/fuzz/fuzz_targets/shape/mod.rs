//! Shapes fuzzer bytes into the fixed-length messages the decoders take, so that
//! mutations land behind the length checks instead of being refused by them.

use traceless_protocol::wire::UPLOAD_REQUEST_LEN;

/// Tag byte of the upload request's `padding` field (field 15, length-delimited).
const PADDING_TAG: u8 = (15 << 3) | 2;

/// A 1024-byte upload request from fuzzer bytes. A first byte below 0x20 (one
/// input in eight) means "raw": the rest is cut or zero-extended to 1024 bytes,
/// so the padding checks themselves are fuzzed. Otherwise the rest is the
/// unpadded protobuf message, and the padding is appended as SPEC.md §5.4
/// writes it (tag, two-byte varint length, zeros), so every input reaches the
/// field checks.
pub fn upload_request(data: &[u8]) -> Vec<u8> {
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let mut out;
    if *mode < 0x20 {
        out = rest.to_vec();
    } else {
        let body = &rest[..rest.len().min(UPLOAD_REQUEST_LEN - 3)];
        let p = UPLOAD_REQUEST_LEN - 3 - body.len();
        out = body.to_vec();
        out.extend_from_slice(&[PADDING_TAG, 0x80 | (p & 0x7f) as u8, (p >> 7) as u8]);
    }
    out.resize(UPLOAD_REQUEST_LEN, 0);
    out
}
