/*
 * A venue visit through the C ABI only: a refused code, check in from the
 * poster's URL, list, check out, warnings for another venue (nothing) and for
 * this one (a venue exposure), the closed check-in listed by its times, and a
 * stay at a self-reported venue, which a diagnosis cannot send without tokens.
 *
 * usage: venue_visit DIR INPUT_DIR
 *   INPUT_DIR/url.txt        the poster's entry URL
 *   INPUT_DIR/warnings.bin   a signed warning batch for this venue, 10:00-11:00
 *   INPUT_DIR/other.bin      a signed warning batch for another venue, same hour
 *   INPUT_DIR/authority.bin  origin NUL, LE32 key id, 32-byte Ed25519 public key
 *   INPUT_DIR/times.bin      LE64 day start, LE64 publication time
 *   INPUT_DIR/self_url.txt   a self-reported venue's entry URL
 *   INPUT_DIR/gateway.bin    that venue's gateway X25519 public key (32 bytes)
 * Prints what it saw and "OK" at the end; exits non-zero on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traceless.h"
#include "check.h"

int main(int argc, char **argv) {
    EXPECT(argc == 3);
    const char *input = argv[2];
    size_t url_len, warn_len, other_len, auth_len, times_len, self_url_len, gateway_len;
    char *url = (char *)read_file(input, "url.txt", &url_len);
    char *self_url = (char *)read_file(input, "self_url.txt", &self_url_len);
    unsigned char *gateway_key = read_file(input, "gateway.bin", &gateway_len);
    EXPECT(gateway_len == TL_GATEWAY_KEY_LEN);
    unsigned char *warnings = read_file(input, "warnings.bin", &warn_len);
    unsigned char *other = read_file(input, "other.bin", &other_len);
    unsigned char *auth = read_file(input, "authority.bin", &auth_len);
    unsigned char *times = read_file(input, "times.bin", &times_len);
    EXPECT(times_len == 16);
    uint64_t day_start = le64(times), published_at = le64(times + 8);
    const char *origin = (const char *)auth;
    size_t origin_len = strlen(origin);
    uint32_t key_id;
    memcpy(&key_id, auth + origin_len + 1, 4);

    uint8_t master_key[TL_MASTER_KEY_LEN];
    for (int i = 0; i < TL_MASTER_KEY_LEN; i++) master_key[i] = (uint8_t)(i * 3 + 5);
    TlSdk *sdk = NULL;
    CHECK(tl_sdk_open(argv[1], master_key, &sdk));
    CHECK(tl_sdk_trust_authority(sdk, origin, key_id, auth + origin_len + 1 + 4));
    CHECK(tl_sdk_set_time(sdk, day_start + 10 * 3600 + 5 * 60));

    /* Refused codes: a typed status, a reason, nothing stored. */
    EXPECT(tl_sdk_check_in(sdk, "https://x.example/c?v=4#AAAA", NULL) == TL_ERR_VENUE);
    EXPECT(strstr(tl_last_error_message(), "version") != NULL);
    EXPECT(tl_sdk_check_in(sdk, "not a url", NULL) == TL_ERR_VENUE);
    EXPECT(tl_sdk_check_in(sdk, NULL, NULL) == TL_ERR_NULL_OR_ENCODING);
    EXPECT(tl_sdk_check_out(sdk, NULL) == TL_ERR_INVALID_ARGUMENT);
    TlCheckIns list;
    CHECK(tl_sdk_check_ins(sdk, &list));
    EXPECT(list.len == 0);
    tl_check_ins_free(list);

    /* 10:05 check in, 10:50 check out. */
    TlCheckIn c;
    CHECK(tl_sdk_check_in(sdk, url, &c));
    EXPECT(c.is_open && c.description != NULL);
    printf("checked in: %s, %s; auto check-out after %llu min\n", c.description, c.address,
           (unsigned long long)((c.departure - c.arrival) / 60));
    tl_check_in_free(c);
    EXPECT(tl_sdk_edit_check_in(sdk, day_start + 11 * 3600, 0, NULL) == TL_ERR_VENUE);
    CHECK(tl_sdk_check_ins(sdk, &list));
    EXPECT(list.len == 1 && list.items[0].is_open);
    tl_check_ins_free(list);
    CHECK(tl_sdk_set_time(sdk, day_start + 10 * 3600 + 50 * 60));
    CHECK(tl_sdk_check_out(sdk, &c));
    EXPECT(!c.is_open && c.description == NULL);
    EXPECT(c.departure - c.arrival == 45 * 60);
    tl_check_in_free(c);

    /* The next morning: another venue's warnings match nothing, this one's do. */
    CHECK(tl_sdk_set_time(sdk, published_at));
    size_t new_matches = 99;
    uint64_t next_warning = 99;
    CHECK(tl_sdk_warning_next(sdk, "de.rki", &next_warning));
    EXPECT(next_warning == 1);
    EXPECT(tl_sdk_sync_venue_warnings(sdk, (const uint8_t *)"junk", 4, NULL) == TL_ERR_VENUE);
    CHECK(tl_sdk_warning_next(sdk, "de.rki", &next_warning));
    EXPECT(next_warning == 1);
    CHECK(tl_sdk_sync_venue_warnings(sdk, other, other_len, &new_matches));
    EXPECT(new_matches == 0);
    /* Both batches are sequence 1: list from 2 on next time. */
    CHECK(tl_sdk_warning_next(sdk, "de.rki", &next_warning));
    EXPECT(next_warning == 2);
    TlSummary summary;
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    EXPECT(summary.len == 0);
    tl_summary_free(summary);
    CHECK(tl_sdk_sync_venue_warnings(sdk, warnings, warn_len, &new_matches));
    EXPECT(new_matches == 1);
    CHECK(tl_sdk_sync_venue_warnings(sdk, warnings, warn_len, &new_matches));
    EXPECT(new_matches == 0);
    CHECK(tl_sdk_exposure_summary(sdk, &summary));
    for (size_t i = 0; i < summary.len; i++) {
        printf("day=%u kind=%s minutes=%.1f score=%.1f high_risk=%d\n", summary.days[i].day,
               summary.days[i].kind == TL_EXPOSURE_VENUE ? "venue" : "proximity",
               summary.days[i].minutes, summary.days[i].score,
               summary.days[i].high_risk ? 1 : 0);
    }
    tl_summary_free(summary);

    /* The closed check-in is listed by its times only. (Reopening is tested in
     * Rust: tl_sdk_open runs retention at the system clock, before a fixed
     * test time can be set, and would shred these 2023 days.) */
    CHECK(tl_sdk_check_ins(sdk, &list));
    EXPECT(list.len == 1 && !list.items[0].is_open && list.items[0].room == NULL);
    printf("listed: %zu check-in, %llu min\n", list.len,
           (unsigned long long)((list.items[0].departure - list.items[0].arrival) / 60));
    tl_check_ins_free(list);

    /* Self-reported stays: none yet (the visit above was at a traced venue);
     * after a stay at a self-reported venue, a diagnosis needs one token per
     * upload and this phone holds none: refused, with the count in the reason. */
    TlBuffer stays;
    CHECK(tl_sdk_sealed_stay_uploads(sdk, gateway_key, day_start / 86400, &stays));
    EXPECT(stays.len == 0);
    tl_buffer_free(stays);
    EXPECT(tl_sdk_sealed_stay_uploads(sdk, NULL, day_start / 86400, &stays) ==
           TL_ERR_NULL_OR_ENCODING);
    EXPECT(tl_sdk_sealed_stay_uploads(sdk, gateway_key, day_start / 86400, NULL) ==
           TL_ERR_NULL_OR_ENCODING);
    CHECK(tl_sdk_set_time(sdk, published_at + 3600));
    CHECK(tl_sdk_check_in(sdk, self_url, NULL));
    CHECK(tl_sdk_set_time(sdk, published_at + 3600 + 20 * 60));
    CHECK(tl_sdk_check_out(sdk, NULL));
    EXPECT(tl_sdk_sealed_stay_uploads(sdk, gateway_key, day_start / 86400, &stays) ==
           TL_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(tl_last_error_message(), "need 1 uploads, each with a token; 0 are stored") !=
           NULL);
    printf("stays: %s\n", tl_last_error_message());
    tl_sdk_close(sdk);

    free(url);
    free(self_url);
    free(gateway_key);
    free(warnings);
    free(other);
    free(auth);
    free(times);
    printf("OK\n");
    return 0;
}
