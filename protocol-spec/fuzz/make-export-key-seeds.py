#!/usr/bin/env python3
"""Writes seeds/export_key/: export key certificates (SPEC.md §6.2) signed by the
authority of the published batch vector (vectors/traceless-v1.json `batch`:
origin, key id, Ed25519 signing key seed, created_at), valid at its created_at,
certifying the P-256 key of scalar 0x5e..5e (the simulator's export key).
Needs the `cryptography` package. Run from protocol-spec/fuzz/."""

import json
import os

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    """One protobuf field: an int is a varint, bytes/str length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


vector = json.load(open("../vectors/traceless-v1.json"))["batch"]
now = vector["created_at"]
authority = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["signing_key_seed"]))
export_key = ec.derive_private_key(int("5e" * 32, 16), ec.SECP256R1()).public_key()
body = b"".join([
    field(1, 1),  # version
    field(2, vector["origin"]),
    field(3, "999"),  # verification_key_id
    field(4, "v1"),  # verification_key_version
    field(5, "XX"),  # region
    field(6, export_key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)),
    field(7, now - 30 * 86_400),  # not_before
    field(8, now + 365 * 86_400),  # not_after
])
signature = authority.sign(b"traceless/v1/export-key\x00" + body)
envelope = field(1, body) + field(2, vector["key_id"]) + field(3, signature)
os.makedirs("seeds/export_key", exist_ok=True)
seeds = {
    "signed-body": b"\x80" + body,  # shaped: the target signs the body
    "envelope": b"\x00" + envelope,  # raw: the vector authority's signature
    "envelope-forged": b"\x00" + envelope[:-1] + bytes([envelope[-1] ^ 1]),
}
for name, data in seeds.items():
    with open(f"seeds/export_key/{name}", "wb") as f:
        f.write(data)
