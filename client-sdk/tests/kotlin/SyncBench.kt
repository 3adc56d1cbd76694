// Sync rate through the Kotlin bindings (JNA): records the sightings listed in
// `sightings.txt` (hex payload, unix time), then syncs every `batch-*.bin` of
// the directory and prints `SYNC_MS <milliseconds>`. Driven by the ignored test
// tests/tests/bindings.rs::kotlin_sync_rate_against_rust, which times the same
// sync in Rust in the same run.

import java.io.File
import kotlin.random.Random
import uniffi.traceless_sdk.*

fun unhex(s: String): ByteArray = ByteArray(s.length / 2) { s.substring(2 * it, 2 * it + 2).toInt(16).toByte() }

fun main(args: Array<String>) {
    val (dataDir, origin, authorityKey, now) = args
    val clock = ManualClock(now.toULong())
    val sdk = TracelessSdk.openWithClock(File(args[4]).path, Random.nextBytes(32), clock)
    sdk.trustAuthority(origin, 1u, unhex(authorityKey))
    File(dataDir, "sightings.txt").forEachLine { line ->
        val (payload, at) = line.split(" ")
        sdk.recordSighting(unhex(payload), -60, null, at.toULong())
    }
    val batches = File(dataDir).listFiles { f -> f.name.startsWith("batch-") }!!.sortedBy { it.name }.map { it.readBytes() }
    val started = System.nanoTime()
    var keys = 0UL
    for (b in batches) keys += sdk.syncBatch(b).keys
    val ms = (System.nanoTime() - started) / 1e6
    sdk.shutdown()
    println("KEYS $keys")
    println("SYNC_MS $ms")
}
