// A host app's whole lifecycle through the generated Kotlin bindings, on the JVM
// with JNA, against a real gateway and relay (started by tests/tests/bindings.rs,
// which passes their addresses and keys as arguments). Two phones: Alice is heard
// by Bob, buys an upload token, posts her sealed upload through the relay; the
// driver publishes; Bob syncs from the relay and is told of the exposure. Then
// bad input, several threads, close, reopen, expire. Prints OK on success; any
// failed check throws and the process exits non-zero.

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.random.Random
import uniffi.traceless_sdk.*

val http: HttpClient = HttpClient.newHttpClient()

fun call(method: String, url: String, body: ByteArray = ByteArray(0)): Pair<Int, ByteArray> {
    val req = HttpRequest.newBuilder(URI(url))
        .method(method, HttpRequest.BodyPublishers.ofByteArray(body))
        .build()
    val res = http.send(req, HttpResponse.BodyHandlers.ofByteArray())
    return res.statusCode() to res.body()
}

fun hex(s: String): ByteArray = ByteArray(s.length / 2) { s.substring(2 * it, 2 * it + 2).toInt(16).toByte() }

fun check(ok: Boolean, what: () -> String) {
    if (!ok) throw AssertionError(what())
}

inline fun <reified E : TracelessException> expect(what: String, f: () -> Unit): E {
    try {
        f()
    } catch (e: TracelessException) {
        if (e is E) return e
        throw AssertionError("$what: expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("$what: expected ${E::class.simpleName}, nothing thrown")
}

/** What a host does to sync: list the batches after the cursor, download, hand over. */
fun syncFrom(relay: String, origin: String, phone: TracelessSdk): List<ByteArray> {
    val after = phone.cursor(origin) ?: 0UL
    val (status, list) = call("GET", "$relay/v1/batches?origin=$origin&after=$after")
    check(status == 200) { "batch list: $status" }
    val urls = Regex("\"url\"\\s*:\\s*\"([^\"]+)\"").findAll(String(list)).map { it.groupValues[1] }
    return urls.map { url ->
        val (s, bytes) = call("GET", relay + url)
        check(s == 200) { "batch $url: $s" }
        bytes
    }.toList()
}

fun main(args: Array<String>) {
    val (relay, gateway, origin, authorityKey) = args
    val sealKey = hex(args[4])
    val tokenKey = hex(args[5])
    val code = args[6]
    val filesDir = args[7]
    val start = args[8].toULong()
    val venueUrl = args[9]
    val warning = hex(args[10])
    val day = (start / 86_400UL).toUInt()
    val clock = ManualClock(start)
    val aliceKey = Random.nextBytes(32)
    val bobKey = Random.nextBytes(32)
    val bobDir = File(filesDir, "bob").path
    val alice = TracelessSdk.openWithClock(File(filesDir, "alice").path, aliceKey, clock)
    var bob = TracelessSdk.openWithClock(bobDir, bobKey, clock)
    val carol = TracelessSdk.openWithClock(File(filesDir, "carol").path, Random.nextBytes(32), clock)

    // Bob checks in at a pharmacy from its poster's QR code (no network); a
    // code with its end changed is refused and nothing is stored.
    expect<TracelessException.Venue>("a tampered venue code") { bob.checkIn(venueUrl.dropLast(4) + "AAAA") }
    check(bob.checkIns().isEmpty()) { "a refused code was stored" }
    val visit = bob.checkIn(venueUrl)
    check(visit.open && visit.description == "Apotheke am Markt") { "$visit" }
    check(visit.arrival == start && visit.suggestedDeparture == start + 900UL) { "$visit" }

    // There Bob hears Alice for half an hour, then checks out.
    repeat(8) {
        val ad = alice.advertisement()
        check(ad.size == 20) { "advertisement is ${ad.size} bytes" }
        bob.recordSighting(ad, -58, null, clock.now())
        carol.recordSighting(ad, -58, null, clock.now())
        clock.advance(240UL)
    }
    val left = bob.checkOut()
    check(!left.open && left.description == "") { "a closed visit shows its venue: $left" }
    check(left.arrival == start && left.departure == start + 1920UL) { "$left" }
    expect<TracelessException.InvalidArgument>("a check-out with nothing open") { bob.checkOut() }

    // The next day Alice tests positive: a token for her code, then her sealed
    // upload through the relay (never to the gateway).
    clock.set(start + 86_400UL)
    alice.advertisement()
    val (tokenStatus, issued) = call("POST", "$gateway/v1/tokens", alice.tokenRequest(1u, 1u, code.toByteArray()))
    check(tokenStatus == 200) { "token issuer: $tokenStatus ${String(issued)}" }
    check(alice.tokenFinalize(issued, 1u, tokenKey) == 1u) { "one token stored" }
    check(alice.tokensAvailable() == 1u) { "one token available" }
    expect<TracelessException.Rejected>("a forged issuer answer") {
        alice.tokenRequest(1u, 1u, code.toByteArray())
        alice.tokenFinalize(issued.copyOf(issued.size - 1), 1u, tokenKey)
    }
    val sealed = alice.sealedDiagnosisUpload(sealKey, day, emptyList())
    check(alice.tokensAvailable() == 0u) { "the token is spent" }
    val (relayStatus, relayBody) = call("POST", "$relay/v1/relay/$origin", sealed)
    check(relayStatus == 200) { "relay: $relayStatus ${String(relayBody)}" }
    expect<TracelessException.InvalidArgument>("a second upload without a token") {
        alice.sealedDiagnosisUpload(sealKey, day, emptyList())
    }

    // The driver moves the nodes past the publication boundary.
    println("UPLOADED")
    System.out.flush()
    val published = readlnOrNull() ?: error("driver closed stdin")
    check(published.startsWith("PUBLISHED ")) { "driver said $published" }
    clock.set(published.removePrefix("PUBLISHED ").toULong())

    // Bob syncs from the relay and learns of the exposure, nothing more.
    bob.trustAuthority(origin, 1u, hex(authorityKey))
    val batches = syncFrom(relay, origin, bob)
    check(batches.isNotEmpty()) { "the relay lists no batch" }
    expect<TracelessException.Rejected>("a truncated batch") {
        bob.syncBatch(batches[0].copyOf(batches[0].size / 2))
    }
    val keys = batches.sumOf { bob.syncBatch(it).keys }
    check(keys > 0UL) { "the batches carry no key" }
    check(bob.cursor(origin) != null) { "the cursor moved" }
    check(bob.filterHeld(origin) == "") { "batches are not filter parts: ${bob.filterHeld(origin)}" }
    expect<TracelessException.AlreadySynced>("the same batch again") { bob.syncBatch(batches[0]) }
    val days = bob.exposureSummary()
    check(days.size == 1) { "exposure days: $days" }
    check(days[0].day == day && days[0].kind == ExposureKind.PROXIMITY) { "${days[0]}" }
    check(days[0].minutes >= 20.0 && days[0].minutes <= 40.0) { "minutes: ${days[0].minutes}" }
    check(alice.exposureSummary().isEmpty()) { "alice heard nobody" }

    // The pharmacy was traced for a case there: Bob's phone matches the
    // authority's warning locally, as venue exposure of the same day.
    expect<TracelessException.Venue>("a warning cut by one byte") { bob.syncVenueWarnings(warning.copyOf(warning.size - 1)) }
    expect<TracelessException.Venue>("a warning of an untrusted authority") { alice.syncVenueWarnings(warning) }
    check(bob.syncVenueWarnings(warning) == 1UL) { "one new venue match" }
    check(bob.syncVenueWarnings(warning) == 0UL) { "matched twice" }
    val venue = bob.exposureSummary().filter { it.kind == ExposureKind.VENUE }
    check(venue.size == 1 && venue[0].day == day && venue[0].highRisk) { "venue exposure: $venue" }
    check(Math.abs(venue[0].minutes - 32.0) < 1e-9) { "venue minutes: ${venue[0].minutes}" }

    // Carol lets the SDK's network client do the host's part: it downloads from
    // the gateway and posts through the relay, never the same node.
    val options = ClientOptions(gateway, relay, gateway, origin, 10_000UL, 2u, 20UL, emptyList())
    val net = TracelessClient(options)
    carol.trustAuthority(origin, 1u, hex(authorityKey))
    val totals = net.sync(carol)
    check(totals.batches >= 1UL && totals.rejected == 0UL) { "client sync: $totals" }
    check(carol.exposureSummary().map { it.day } == listOf(day)) { "carol: ${carol.exposureSummary()}" }
    check(net.sync(carol).batches == 0UL) { "the cursor skips what was synced" }
    check(net.runDummySchedule(carol, carol.nextDummyUploadAt())) { "a due dummy was not sent" }
    expect<TracelessException.InvalidArgument>("a relay that is the gateway") {
        TracelessClient(options.copy(relay = gateway))
    }

    // Export keys: the gateway serves the authority's certificate of its GAEN
    // export key; a forged certificate (one signature bit flipped) and one from
    // an authority the phone does not trust are refused with the typed error.
    val (keysStatus, keyList) = call("GET", "$gateway/v1/export-keys")
    check(keysStatus == 200) { "export keys: $keysStatus" }
    val certificate = hex(Regex("\"certificate\"\\s*:\\s*\"([0-9a-f]+)\"").find(String(keyList))!!.groupValues[1])
    val forged = certificate.copyOf()
    forged[forged.size - 1] = (forged[forged.size - 1].toInt() xor 1).toByte()
    val refused = expect<TracelessException.Rejected>("a forged export key certificate") {
        carol.trustExportCertificate(forged)
    }
    check(refused.reason.contains("signature")) { "refused for ${refused.reason}" }
    expect<TracelessException.Rejected>("a certificate of an untrusted authority") {
        alice.trustExportCertificate(certificate)
    }
    expect<TracelessException.Rejected>("a truncated certificate") {
        carol.trustExportCertificate(certificate.copyOf(certificate.size - 1))
    }
    val exportKey = carol.trustExportCertificate(certificate)
    check(exportKey.origin == origin && exportKey.publicKey.size == 33) { "export key: $exportKey" }
    check(exportKey.notBefore <= clock.now() && clock.now() < exportKey.notAfter) { "validity: $exportKey" }
    check(net.trustExportKeys(carol) == 1u) { "the client trusts the served key" }
    // The authority's signed risk configuration, once; unchanged afterwards.
    check(net.updateRiskConfig(carol) == 1UL) { "risk configuration revision 1" }
    check(net.updateRiskConfig(carol) == null) { "an unchanged configuration is applied again" }
    carol.shutdown()

    // Where is Alice's data: her phone finds the batch carrying her key while
    // it syncs, refuses a proof that is not one, and forgets on request.
    alice.trustAuthority(origin, 1u, hex(authorityKey))
    check(alice.dataReport().publications.isEmpty()) { "nothing found before syncing" }
    batches.forEach { alice.syncBatch(it) }
    val report = alice.dataReport()
    check(report.uploadedAt != null && report.keysUploaded >= 1UL) { "report: $report" }
    // One batch per key day: the exposure day's, and today's retired key's once released.
    val mine = report.publications.filter { it.day == day }
    check(mine.size == 1) { "publications: ${report.publications}" }
    check(mine[0].origin == origin && mine[0].ownKeys == 1u && mine[0].contentId.size == 32) { "${mine[0]}" }
    expect<TracelessException.Log>("a proof that is not one") { alice.recordLogProof(relay, ByteArray(3)) }
    alice.forgetDataReport()
    check(alice.dataReport().uploadedAt == null) { "forgotten" }

    // Cover traffic: a dummy looks like the real upload to the relay.
    check(bob.nextDummyUploadAt() >= clock.now()) { "the next dummy is in the past" }
    val dummy = bob.sealedDummyUpload(sealKey)
    check(dummy.size == sealed.size) { "dummy ${dummy.size} bytes, real ${sealed.size}" }
    val (dummyStatus, dummyBody) = call("POST", "$relay/v1/relay/$origin", dummy)
    check(dummyStatus == relayStatus && dummyBody.contentEquals(relayBody)) { "the relay answers a dummy differently" }

    // Bad input gets typed errors.
    val short = expect<TracelessException.Advertisement>("a short advertisement") {
        bob.recordSighting(ByteArray(5), -60, null, clock.now())
    }
    check(short.len == 5UL) { "reported length ${short.len}" }
    expect<TracelessException.InFuture>("a sighting from tomorrow") {
        bob.recordSighting(ByteArray(20), -60, null, clock.now() + 86_400UL)
    }
    expect<TracelessException.InvalidArgument>("a 31-byte master key") {
        TracelessSdk.openWithClock(File(filesDir, "dave").path, ByteArray(31), clock)
    }
    expect<TracelessException.InvalidArgument>("a short authority key") { bob.trustAuthority(origin, 1u, ByteArray(3)) }
    expect<TracelessException.InvalidArgument>("a short gateway key") { bob.sealedDummyUpload(ByteArray(31)) }

    // Several threads on one handle at once.
    val before = bob.status().scanInstances
    val pool = Executors.newFixedThreadPool(4)
    val jobs = (0 until 4).map {
        pool.submit {
            repeat(25) {
                bob.recordSighting(Random.nextBytes(20), -70, null, clock.now())
                bob.advertisement()
            }
        }
    }
    jobs.forEach { it.get() }
    pool.shutdown()
    check(pool.awaitTermination(10, TimeUnit.SECONDS)) { "threads did not finish" }
    check(bob.status().scanInstances == before + 100UL) { "lost sightings from threads" }

    // Close: the handle refuses further use; the store needs its own key back.
    bob.shutdown()
    bob.shutdown()
    expect<TracelessException.Closed>("a closed handle") { bob.advertisement() }
    val fromThread = Executors.newSingleThreadExecutor()
    val closedElsewhere = fromThread.submit<Boolean> {
        try { bob.exposureSummary(); false } catch (e: TracelessException.Closed) { true }
    }.get()
    fromThread.shutdown()
    check(closedElsewhere) { "a closed handle worked from another thread" }
    bob.close()
    expect<TracelessException.WrongMasterKey>("the wrong master key") {
        TracelessSdk.openWithClock(bobDir, aliceKey, clock)
    }
    bob = TracelessSdk.openWithClock(bobDir, bobKey, clock)
    val kinds = bob.exposureSummary().map { it.kind }
    check(kinds == listOf(ExposureKind.PROXIMITY, ExposureKind.VENUE)) { "after reopening: $kinds" }
    check(bob.checkIns().map { it.arrival } == listOf(start)) { "the check-in did not survive reopening" }

    // Expire: fifteen days on, the day of the meeting is destroyed.
    check(bob.expire().isEmpty()) { "nothing is due yet" }
    clock.advance(15UL * 86_400UL)
    val expired = bob.expire()
    check(expired.contains(day)) { "expired $expired, not the meeting day $day" }
    check(bob.exposureSummary().isEmpty()) { "an expired exposure is still reported" }
    check(bob.checkIns().isEmpty()) { "an expired check-in is still listed" }
    bob.shutdown()
    alice.shutdown()
    println("OK")
}
