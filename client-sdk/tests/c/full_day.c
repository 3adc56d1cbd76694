/*
 * A host app's day, through the C ABI only: open the store, broadcast rotating
 * tokens, record what a neighbour broadcast, sync the authority's batch and day
 * filter, read the exposure summary, build upload bundles (plaintext and sealed,
 * key form and filter form), shred the day once past retention, close.
 *
 * usage: full_day DIR INPUT_DIR
 *   INPUT_DIR/heard.bin     records of (LE64 unix time, 20-byte advertisement)
 *   INPUT_DIR/batch.bin     a signed batch holding the neighbour's key
 *   INPUT_DIR/filter.bin    a day filter of the neighbour's intervals, as served
 *   INPUT_DIR/authority.bin origin NUL, LE32 key id, 32-byte Ed25519 public key
 *   INPUT_DIR/times.bin     LE64 day start, LE64 publication time
 *   INPUT_DIR/risk.bin      a signed risk configuration raising the threshold to 1000
 * Prints one line per exposed day and "OK" at the end; exits non-zero on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traceless.h"
#include "check.h"

int main(int argc, char **argv) {
    EXPECT(argc == 3);
    const char *input = argv[2];
    size_t heard_len, batch_len, filter_len, auth_len, times_len;
    unsigned char *heard = read_file(input, "heard.bin", &heard_len);
    unsigned char *batch = read_file(input, "batch.bin", &batch_len);
    unsigned char *filter = read_file(input, "filter.bin", &filter_len);
    unsigned char *auth = read_file(input, "authority.bin", &auth_len);
    unsigned char *times = read_file(input, "times.bin", &times_len);
    size_t risk_len;
    unsigned char *risk = read_file(input, "risk.bin", &risk_len);
    EXPECT(times_len == 16);
    uint64_t day_start = le64(times), published_at = le64(times + 8);
    const char *origin = (const char *)auth;
    size_t origin_len = strlen(origin);
    EXPECT(auth_len == origin_len + 1 + 4 + TL_PUBLIC_KEY_LEN);
    uint32_t key_id;
    memcpy(&key_id, auth + origin_len + 1, 4);

    uint8_t master_key[TL_MASTER_KEY_LEN];
    for (int i = 0; i < TL_MASTER_KEY_LEN; i++) master_key[i] = (uint8_t)(i * 7 + 1);
    TlSdk *sdk = NULL;
    /* Opened with a configuration: the defaults, this phone's TX power changed. */
    TlConfig config;
    CHECK(tl_config_default(&config));
    EXPECT(config.version == TL_CONFIG_VERSION && config.threshold == 15.0);
    EXPECT(config.scan_period_s == 300 && config.max_attenuation_db == 73);
    config.version = TL_CONFIG_VERSION + 1;
    EXPECT(tl_sdk_open_with_config(argv[1], master_key, &config, &sdk) ==
           TL_ERR_INVALID_ARGUMENT);
    config.version = TL_CONFIG_VERSION;
    config.tx_power_dbm = -10;
    CHECK(tl_sdk_open_with_config(argv[1], master_key, &config, &sdk));
    TlConfig in_use;
    CHECK(tl_sdk_get_config(sdk, &in_use));
    EXPECT(in_use.tx_power_dbm == -10);
    config.scan_period_s = 0;
    EXPECT(tl_sdk_set_config(sdk, &config) == TL_ERR_INVALID_ARGUMENT);
    config.scan_period_s = 300;
    CHECK(tl_sdk_set_config(sdk, &config));
    CHECK(tl_sdk_set_time(sdk, day_start + 8 * 3600));
    CHECK(tl_sdk_trust_authority(sdk, origin, key_id, auth + origin_len + 1 + 4));

    /* Bad input is refused with a reason, and nothing breaks. */
    EXPECT(tl_sdk_trust_authority(sdk, "Bad Origin", key_id, auth + origin_len + 1 + 4) ==
           TL_ERR_REJECTED);
    EXPECT(strstr(tl_last_error_message(), "origin") != NULL);
    EXPECT(tl_sdk_record_sighting(sdk, heard + 8, 19, -60, TL_TX_POWER_UNKNOWN, day_start) ==
           TL_ERR_ADVERTISEMENT);
    EXPECT(strstr(tl_last_error_message(), "20 bytes") != NULL);
    EXPECT(tl_sdk_sync_batch(sdk, (const uint8_t *)"junk", 4, NULL) == TL_ERR_REJECTED);
    EXPECT(tl_sdk_open(NULL, master_key, &sdk) == TL_ERR_NULL_OR_ENCODING);

    /* 08:00 to 20:00: broadcast every 5 minutes, record what was heard meanwhile. */
    uint8_t ad[TL_ADVERTISEMENT_LEN], previous[TL_ADVERTISEMENT_LEN] = {0};
    size_t next = 0, records = heard_len / 28, changes = 0;
    for (uint64_t t = day_start + 8 * 3600; t < day_start + 20 * 3600; t += 300) {
        CHECK(tl_sdk_set_time(sdk, t));
        CHECK(tl_sdk_advertisement(sdk, ad));
        if (memcmp(ad, previous, sizeof ad) != 0) changes++;
        memcpy(previous, ad, sizeof ad);
        while (next < records && le64(heard + next * 28) < t + 300) {
            uint64_t seen_at = le64(heard + next * 28);
            CHECK(tl_sdk_set_time(sdk, seen_at));
            CHECK(tl_sdk_record_sighting(sdk, heard + next * 28 + 8, TL_ADVERTISEMENT_LEN,
                                         -60, TL_TX_POWER_UNKNOWN, seen_at));
            next++;
        }
    }
    EXPECT(next == records);
    EXPECT(changes == 12 * 6); /* one token per 10-minute interval */
    CHECK(tl_sdk_flush(sdk));

    /* The next morning: sync the batch, twice. */
    CHECK(tl_sdk_set_time(sdk, published_at + 3600));
    TlSyncReport report;
    CHECK(tl_sdk_sync_batch(sdk, batch, batch_len, &report));
    EXPECT(report.keys >= 1 && report.new_windows == 1);
    EXPECT(tl_sdk_sync_batch(sdk, batch, batch_len, &report) == TL_ERR_ALREADY_SYNCED);
    uint64_t cursor = 0;
    CHECK(tl_sdk_cursor(sdk, origin, &cursor));
    EXPECT(cursor == 1);

    TlSummary summary;
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    for (size_t i = 0; i < summary.len; i++) {
        printf("day=%u minutes=%.1f high_risk=%d\n", summary.days[i].day,
               summary.days[i].minutes, summary.days[i].high_risk ? 1 : 0);
    }
    tl_summary_free(summary);

    /* The authority's signed risk configuration raises the threshold: the same
     * minutes are no longer high risk. Applying it twice is refused. */
    uint64_t risk_revision = 0;
    EXPECT(tl_sdk_apply_risk_config(sdk, batch, batch_len, NULL) == TL_ERR_REJECTED);
    CHECK(tl_sdk_apply_risk_config(sdk, risk, risk_len, &risk_revision));
    EXPECT(risk_revision == 1);
    EXPECT(tl_sdk_apply_risk_config(sdk, risk, risk_len, NULL) == TL_ERR_ALREADY_SYNCED);
    CHECK(tl_sdk_get_config(sdk, &in_use));
    EXPECT(in_use.threshold == 1000.0 && in_use.tx_power_dbm == -10);
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    EXPECT(summary.len == 1 && !summary.days[0].high_risk);
    tl_summary_free(summary);

    /* The same visit in a day filter: it hits, but is not counted twice; the
     * revision is kept, and syncing it again does nothing. */
    uint32_t day0 = (uint32_t)(day_start / 86400);
    uint64_t revision = 7;
    CHECK(tl_sdk_filter_revision(sdk, origin, day0, &revision));
    EXPECT(revision == 0);
    EXPECT(tl_sdk_sync_filter(sdk, batch, batch_len, &report) == TL_ERR_REJECTED);
    CHECK(tl_sdk_sync_filter(sdk, filter, filter_len, &report));
    EXPECT(report.keys > 0 && report.new_windows == 1);
    CHECK(tl_sdk_filter_revision(sdk, origin, day0, &revision));
    EXPECT(revision == 1);
    /* The query that fetches every day's new parts at once names it. */
    TlBuffer held;
    char want[32];
    snprintf(want, sizeof want, "%u.1", day0);
    CHECK(tl_sdk_filter_held(sdk, origin, &held));
    EXPECT(held.len == strlen(want) && memcmp(held.data, want, held.len) == 0);
    tl_buffer_free(held);
    CHECK(tl_sdk_sync_filter(sdk, filter, filter_len, &report));
    EXPECT(report.keys == 0 && report.new_windows == 0);
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    for (size_t i = 0; i < summary.len; i++) {
        printf("after filter: day=%u minutes=%.1f\n", summary.days[i].day,
               summary.days[i].minutes);
    }
    tl_summary_free(summary);

    /* Matching done: drop the decrypted sightings. No day is old enough to go. */
    size_t expired = 99;
    CHECK(tl_sdk_expire(sdk, &expired));
    EXPECT(expired == 0);
    printf("expired after sync: %zu\n", expired);

    /* Upload bundles: a real one and a dummy, the same length. */
    TlBuffer real, dummy;
    const char *code = "0123456789abcdef-0123456789abcdef0123456789abcdef";
    uint32_t today = (uint32_t)((published_at + 3600) / 86400);
    CHECK(tl_sdk_diagnosis_upload(sdk, (const uint8_t *)code, strlen(code), today - 1, NULL, 0,
                                  &real));
    CHECK(tl_sdk_dummy_upload(sdk, &dummy));
    EXPECT(real.len == dummy.len && real.len > 0);
    printf("upload_len=%zu\n", real.len);
    tl_buffer_free(real);
    tl_buffer_free(dummy);
    uint64_t next_dummy = 0;
    CHECK(tl_sdk_next_dummy_upload_at(sdk, &next_dummy));
    EXPECT(next_dummy > published_at);

    /* The default path, sealed to the gateway: refused without a token, with a
     * reason; a sealed dummy has the fixed sealed length; a token request is
     * built and a junk answer to it rejected. */
    uint8_t gateway_key[TL_GATEWAY_KEY_LEN];
    for (int i = 0; i < TL_GATEWAY_KEY_LEN; i++) gateway_key[i] = (uint8_t)(i * 5 + 9);
    size_t tokens = 1;
    CHECK(tl_sdk_tokens_available(sdk, &tokens));
    EXPECT(tokens == 0);
    TlBuffer sealed;
    EXPECT(tl_sdk_sealed_diagnosis_upload(sdk, gateway_key, today - 1, NULL, 0, &sealed) ==
           TL_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(tl_last_error_message(), "no upload token") != NULL);
    TlTimeRange visit = {day_start + 9 * 3600, day_start + 9 * 3600 + 1800};
    EXPECT(tl_sdk_sealed_filter_upload(sdk, gateway_key, today - 1, &visit, 1, &sealed) ==
           TL_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(tl_last_error_message(), "no upload token") != NULL);
    EXPECT(tl_sdk_sealed_filter_upload(sdk, gateway_key, today - 1, NULL, 1, &sealed) ==
           TL_ERR_NULL_OR_ENCODING);
    CHECK(tl_sdk_sealed_dummy_upload(sdk, gateway_key, &sealed));
    EXPECT(sealed.len == TL_SEALED_UPLOAD_LEN);
    printf("sealed_len=%zu\n", sealed.len);
    tl_buffer_free(sealed);
    TlBuffer token_request;
    CHECK(tl_sdk_token_request(sdk, 1, 2, (const uint8_t *)code, strlen(code), &token_request));
    EXPECT(token_request.len > 2 * 32);
    tl_buffer_free(token_request);
    EXPECT(tl_sdk_token_finalize(sdk, (const uint8_t *)"junk", 4, 1, gateway_key, NULL) ==
           TL_ERR_REJECTED);

    /* 15 days on, the day of the visit is past retention: it is shredded, its
     * exposure gone; a second call finds nothing left to destroy. */
    CHECK(tl_sdk_set_time(sdk, day_start + 15 * 86400 + 8 * 3600));
    expired = 0;
    CHECK(tl_sdk_expire(sdk, &expired));
    EXPECT(expired == 1);
    printf("expired 15 days on: %zu\n", expired);
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    EXPECT(summary.len == 0);
    tl_summary_free(summary);
    expired = 99;
    CHECK(tl_sdk_expire(sdk, &expired));
    EXPECT(expired == 0);
    CHECK(tl_sdk_expire(sdk, NULL));
    EXPECT(tl_sdk_expire(NULL, &expired) == TL_ERR_NULL_OR_ENCODING);

    tl_sdk_close(sdk);
    free(heard);
    free(batch);
    free(filter);
    free(auth);
    free(times);
    free(risk);
    printf("OK\n");
    return 0;
}
