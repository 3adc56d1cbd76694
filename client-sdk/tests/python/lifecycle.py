"""A host app's whole lifecycle through the generated Python bindings, against
a real gateway and relay (started by tests/tests/bindings.rs, which passes their
addresses and keys as arguments): the same walk as tests/kotlin/Lifecycle.kt.
Prints OK on success; a failed check raises and the process exits non-zero."""

import os
import re
import sys
import threading
import urllib.error
import urllib.request

from traceless_sdk import ExposureKind, ManualClock, TracelessError, TracelessSdk


def call(method, url, body=b""):
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def expect(kind, what, f):
    try:
        f()
    except TracelessError.__dict__[kind] as e:  # the typed variant, nothing else
        return e
    except Exception as e:  # noqa: BLE001 - report what came instead
        raise AssertionError(f"{what}: expected {kind}, got {type(e).__name__}: {e}")
    raise AssertionError(f"{what}: expected {kind}, nothing raised")


def sync_from(relay, origin, phone):
    """What a host does to sync: list after the cursor, download, hand over."""
    after = phone.cursor(origin) or 0
    status, listing = call("GET", f"{relay}/v1/batches?origin={origin}&after={after}")
    assert status == 200, f"batch list: {status}"
    batches = []
    for url in re.findall(r'"url"\s*:\s*"([^"]+)"', listing.decode()):
        s, body = call("GET", relay + url)
        assert s == 200, f"batch {url}: {s}"
        batches.append(body)
    return batches


def main():
    relay, gateway, origin, authority_key, seal_hex, token_hex, code, files_dir, start, venue_url, warning_hex = sys.argv[1:]
    seal_key, token_key, start = bytes.fromhex(seal_hex), bytes.fromhex(token_hex), int(start)
    day = start // 86_400
    clock = ManualClock(start)
    alice_key, bob_key = os.urandom(32), os.urandom(32)
    bob_dir = os.path.join(files_dir, "bob")
    alice = TracelessSdk.open_with_clock(os.path.join(files_dir, "alice"), alice_key, clock)
    bob = TracelessSdk.open_with_clock(bob_dir, bob_key, clock)

    # Bob checks in at a pharmacy from its poster's QR code (no network); a
    # code taped over it with one character changed is refused, nothing stored.
    expect("Venue", "a tampered venue code", lambda: bob.check_in(venue_url[:-4] + "AAAA"))
    assert bob.check_ins() == [], "a refused code was stored"
    visit = bob.check_in(venue_url)
    assert visit.open and visit.description == "Apotheke am Markt", f"{visit}"
    assert visit.arrival == start and visit.suggested_departure == start + 15 * 60, f"{visit}"

    # There Bob hears Alice for half an hour, then checks out.
    for _ in range(8):
        ad = alice.advertisement()
        assert len(ad) == 20, f"advertisement is {len(ad)} bytes"
        bob.record_sighting(ad, -58, None, clock.now())
        clock.advance(240)
    left = bob.check_out()
    assert not left.open and left.description == "", f"a closed visit shows its venue: {left}"
    assert (left.arrival, left.departure) == (start, start + 32 * 60), f"{left}"
    expect("InvalidArgument", "a check-out with nothing open", bob.check_out)
    assert [c.arrival for c in bob.check_ins()] == [start]

    # The next day Alice tests positive: a token, then her sealed upload through the relay.
    clock.set(start + 86_400)
    alice.advertisement()
    status, issued = call("POST", f"{gateway}/v1/tokens", alice.token_request(1, 1, code.encode()))
    assert status == 200, f"token issuer: {status} {issued!r}"
    assert alice.token_finalize(issued, 1, token_key) == 1
    def forged_issuer_answer():
        alice.token_request(1, 1, code.encode())
        alice.token_finalize(issued[:-1], 1, token_key)
    expect("Rejected", "a forged issuer answer", forged_issuer_answer)
    sealed = alice.sealed_diagnosis_upload(seal_key, day, [])
    assert alice.tokens_available() == 0, "the token is spent"
    relay_status, relay_body = call("POST", f"{relay}/v1/relay/{origin}", sealed)
    assert relay_status == 200, f"relay: {relay_status} {relay_body!r}"
    expect("InvalidArgument", "a second upload without a token",
           lambda: alice.sealed_diagnosis_upload(seal_key, day, []))

    print("UPLOADED", flush=True)
    published = sys.stdin.readline().split()
    assert published[0] == "PUBLISHED", f"driver said {published}"
    clock.set(int(published[1]))

    # Bob syncs from the relay and learns of the exposure.
    bob.trust_authority(origin, 1, bytes.fromhex(authority_key))
    batches = sync_from(relay, origin, bob)
    assert batches, "the relay lists no batch"
    expect("Rejected", "a truncated batch", lambda: bob.sync_batch(batches[0][: len(batches[0]) // 2]))
    assert sum(bob.sync_batch(b).keys for b in batches) > 0, "the batches carry no key"
    expect("AlreadySynced", "the same batch again", lambda: bob.sync_batch(batches[0]))
    # Batches are not filter parts: the filter-parts query still holds nothing.
    assert bob.filter_held(origin) == "", bob.filter_held(origin)
    days = bob.exposure_summary()
    assert len(days) == 1, f"exposure days: {days}"
    assert (days[0].day, days[0].kind) == (day, ExposureKind.PROXIMITY), f"{days[0]}"
    assert 20.0 <= days[0].minutes <= 40.0, f"minutes: {days[0].minutes}"
    assert alice.exposure_summary() == [], "alice heard nobody"

    # The pharmacy was traced for a case there: Bob's phone matches the
    # authority's warning locally, as venue exposure of the same day.
    warning = bytes.fromhex(warning_hex)
    expect("Venue", "a warning cut by one byte", lambda: bob.sync_venue_warnings(warning[:-1]))
    expect("Venue", "a warning of an untrusted authority", lambda: alice.sync_venue_warnings(warning))
    assert bob.sync_venue_warnings(warning) == 1
    assert bob.sync_venue_warnings(warning) == 0, "matched twice"
    venue = [d for d in bob.exposure_summary() if d.kind == ExposureKind.VENUE]
    assert len(venue) == 1 and venue[0].day == day, f"venue exposure: {venue}"
    assert abs(venue[0].minutes - 32.0) < 1e-9 and venue[0].high_risk, f"{venue[0]}"

    # Export keys: the authority's certificate of the gateway's GAEN export key
    # is trusted; a forged one (a signature bit flipped) and one checked by a
    # phone that trusts no authority are refused with the typed error.
    status, listing = call("GET", f"{gateway}/v1/export-keys")
    assert status == 200, f"export keys: {status}"
    certificate = bytes.fromhex(re.search(r'"certificate"\s*:\s*"([0-9a-f]+)"', listing.decode()).group(1))
    forged = certificate[:-1] + bytes([certificate[-1] ^ 1])
    refused = expect("Rejected", "a forged export key certificate",
                     lambda: bob.trust_export_certificate(forged))
    assert "signature" in refused.reason, f"refused for {refused.reason}"
    expect("Rejected", "a certificate of an untrusted authority",
           lambda: alice.trust_export_certificate(certificate))
    expect("Rejected", "a truncated certificate",
           lambda: bob.trust_export_certificate(certificate[:-1]))
    export_key = bob.trust_export_certificate(certificate)
    assert export_key.origin == origin and len(export_key.public_key) == 33, f"{export_key}"
    assert export_key.not_before <= clock.now() < export_key.not_after, f"{export_key}"

    # Where is Alice's data: her phone finds the batch carrying her key while
    # it syncs, refuses a proof that is not one, and forgets on request.
    alice.trust_authority(origin, 1, bytes.fromhex(authority_key))
    assert alice.data_report().publications == [], "nothing found before syncing"
    for b in batches:
        alice.sync_batch(b)
    report = alice.data_report()
    assert report.uploaded_at is not None and report.keys_uploaded >= 1, f"report: {report}"
    # One batch per key day: the exposure day's, and today's retired key's once released.
    mine = [p for p in report.publications if p.day == day]
    assert len(mine) == 1, f"publications: {report.publications}"
    assert (mine[0].origin, mine[0].own_keys, len(mine[0].content_id)) == (origin, 1, 32), f"{mine[0]}"
    expect("Log", "a proof that is not one", lambda: alice.record_log_proof(relay, b"\x00" * 3))
    alice.forget_data_report()
    assert alice.data_report().uploaded_at is None, "forgotten"

    # Cover traffic looks like the real upload to the relay.
    assert bob.next_dummy_upload_at() >= clock.now()
    dummy = bob.sealed_dummy_upload(seal_key)
    assert len(dummy) == len(sealed)
    assert call("POST", f"{relay}/v1/relay/{origin}", dummy) == (relay_status, relay_body)

    # Bad input gets typed errors.
    short = expect("Advertisement", "a short advertisement",
                   lambda: bob.record_sighting(b"\x00" * 5, -60, None, clock.now()))
    assert short.len == 5
    expect("Advertisement", "an empty advertisement",
           lambda: bob.record_sighting(b"", -60, None, clock.now()))
    expect("InFuture", "a sighting from tomorrow",
           lambda: bob.record_sighting(b"\x00" * 20, -60, None, clock.now() + 86_400))
    expect("InvalidArgument", "a short authority key", lambda: bob.trust_authority(origin, 1, b"\x00" * 3))
    expect("Rejected", "a malformed origin",
           lambda: bob.trust_authority("Bad Origin", 1, bytes.fromhex(authority_key)))
    expect("InvalidArgument", "a short gateway key", lambda: bob.sealed_dummy_upload(b"\x00" * 31))
    expect("Rejected", "a batch of garbage", lambda: bob.sync_batch(os.urandom(300)))
    expect("Rejected", "an empty batch", lambda: bob.sync_batch(b""))
    expect("Rejected", "a batch cut by one byte", lambda: bob.sync_batch(batches[0][:-1]))
    expect("InvalidArgument", "a 31-byte master key",
           lambda: TracelessSdk.open_with_clock(os.path.join(files_dir, "carol"), b"\x00" * 31, clock))

    # Several threads on one handle at once.
    before = bob.status().scan_instances
    errors = []

    def worker():
        try:
            for _ in range(25):
                bob.record_sighting(os.urandom(20), -70, None, clock.now())
                bob.advertisement()
                # Garbage from several threads at once: typed errors, nothing lost.
                expect("Advertisement", "a short advertisement from a thread",
                       lambda: bob.record_sighting(os.urandom(7), -70, None, clock.now()))
                expect("Rejected", "a truncated batch from a thread",
                       lambda: bob.sync_batch(batches[0][:40]))
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, f"thread errors: {errors}"
    assert bob.status().scan_instances == before + 100, "lost sightings from threads"

    # Shut down: the handle refuses further use; the store needs its own key.
    bob.shutdown()
    bob.shutdown()
    expect("Closed", "a closed handle", bob.advertisement)
    closed_elsewhere = []
    t = threading.Thread(target=lambda: closed_elsewhere.append(
        expect("Closed", "a closed handle from another thread", bob.exposure_summary)))
    t.start()
    t.join(timeout=30)
    assert closed_elsewhere, "a closed handle worked from another thread"
    expect("Closed", "a sync on a closed handle", lambda: bob.sync_batch(batches[0]))
    del bob
    expect("WrongMasterKey", "the wrong master key",
           lambda: TracelessSdk.open_with_clock(bob_dir, alice_key, clock))
    bob = TracelessSdk.open_with_clock(bob_dir, bob_key, clock)
    kinds = [d.kind for d in bob.exposure_summary()]
    assert kinds == [ExposureKind.PROXIMITY, ExposureKind.VENUE], f"after reopening: {kinds}"
    assert [c.arrival for c in bob.check_ins()] == [start], "the check-in did not survive reopening"

    # Fifteen days on, the meeting day is destroyed.
    assert bob.expire() == []
    clock.advance(15 * 86_400)
    assert day in bob.expire()
    assert bob.exposure_summary() == [], "an expired exposure is still reported"
    assert bob.check_ins() == [], "an expired check-in is still listed"
    bob.shutdown()
    alice.shutdown()
    print("OK")


main()
