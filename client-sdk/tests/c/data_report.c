/*
 * "Where is my data" through the C ABI only (SPEC.md §8.3.1-2), in two runs on
 * one store: the first uploads, the test publishes the upload and builds node
 * logs, the second syncs with proofs required and reads the data report.
 *
 * usage: data_report DIR INPUT_DIR upload|report
 *   INPUT_DIR/times.bin        LE64 day start, LE64 publication time
 *   upload writes INPUT_DIR/upload.bin (the plaintext upload request);
 *   report reads:
 *   INPUT_DIR/authority.bin    origin NUL, LE32 key id, 32-byte Ed25519 public key
 *   INPUT_DIR/witness.bin      the trusted witness's 32-byte node key
 *   INPUT_DIR/batch.bin        the batch carrying the upload
 *   INPUT_DIR/proof.bin        a node's publication proof of it
 *   INPUT_DIR/lying.bin        a proof of other bytes under its number
 *   INPUT_DIR/deleted.bin      the same node's proof once it deleted the batch
 * Prints what it saw and "OK" at the end; exits non-zero on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traceless.h"
#include "check.h"

static void print_report(TlSdk *sdk, const char *when) {
    TlDataReport r;
    CHECK(tl_sdk_data_report(sdk, &r));
    printf("%s: uploaded=%d keys=%zu rows=%zu\n", when, r.uploaded_at != 0, r.keys_uploaded,
           r.len);
    for (size_t i = 0; i < r.len; i++) {
        TlDataRow *row = &r.rows[i];
        printf("  %s/%llu day=%u own=%u/%u node=%s witnesses=%u deleted=%d\n", row->origin,
               (unsigned long long)row->sequence, row->day, row->own_keys, row->keys,
               row->node ? row->node : "-", row->witnesses, row->deleted_at != 0);
    }
    tl_data_report_free(r);
}

int main(int argc, char **argv) {
    EXPECT(argc == 4);
    const char *input = argv[2];
    size_t times_len;
    unsigned char *times = read_file(input, "times.bin", &times_len);
    EXPECT(times_len == 16);
    uint64_t day_start = le64(times), published_at = le64(times + 8);
    uint8_t master_key[TL_MASTER_KEY_LEN];
    for (int i = 0; i < TL_MASTER_KEY_LEN; i++) master_key[i] = (uint8_t)(i * 7 + 1);
    TlSdk *sdk = NULL;
    CHECK(tl_sdk_open(argv[1], master_key, &sdk));

    if (strcmp(argv[3], "upload") == 0) {
        uint8_t ad[TL_ADVERTISEMENT_LEN];
        CHECK(tl_sdk_set_time(sdk, day_start + 9 * 3600));
        CHECK(tl_sdk_advertisement(sdk, ad));
        CHECK(tl_sdk_set_time(sdk, published_at - 3600));
        print_report(sdk, "before upload");
        TlBuffer upload;
        const char *code = "CCODE0000001";
        CHECK(tl_sdk_diagnosis_upload(sdk, (const uint8_t *)code, strlen(code),
                                      (uint32_t)(day_start / 86400), NULL, 0, &upload));
        char path[4096];
        snprintf(path, sizeof path, "%s/upload.bin", input);
        FILE *f = fopen(path, "wb");
        EXPECT(f != NULL && fwrite(upload.data, 1, upload.len, f) == upload.len);
        fclose(f);
        tl_buffer_free(upload);
        print_report(sdk, "after upload");
    } else {
        size_t auth_len, witness_len, batch_len, proof_len, lying_len, deleted_len;
        unsigned char *auth = read_file(input, "authority.bin", &auth_len);
        unsigned char *witness = read_file(input, "witness.bin", &witness_len);
        unsigned char *batch = read_file(input, "batch.bin", &batch_len);
        unsigned char *proof = read_file(input, "proof.bin", &proof_len);
        unsigned char *lying = read_file(input, "lying.bin", &lying_len);
        unsigned char *deleted = read_file(input, "deleted.bin", &deleted_len);
        EXPECT(witness_len == TL_PUBLIC_KEY_LEN);
        const char *origin = (const char *)auth;
        uint32_t key_id;
        memcpy(&key_id, auth + strlen(origin) + 1, 4);
        CHECK(tl_sdk_set_time(sdk, published_at));
        CHECK(tl_sdk_trust_authority(sdk, origin, key_id, auth + strlen(origin) + 1 + 4));
        CHECK(tl_sdk_trust_witness(sdk, witness));
        CHECK(tl_sdk_require_log_proofs(sdk, 1));

        /* Without a proof, or with one of other bytes: refused, nothing synced. */
        EXPECT(tl_sdk_sync_batch(sdk, batch, batch_len, NULL) == TL_ERR_LOG);
        EXPECT(tl_sdk_sync_batch_proven(sdk, batch, batch_len, lying, lying_len, NULL) ==
               TL_ERR_LOG);
        printf("lying proof: %s\n", tl_last_error_message());
        EXPECT(tl_sdk_sync_batch_proven(sdk, batch, batch_len, NULL, 5, NULL) ==
               TL_ERR_NULL_OR_ENCODING);
        TlSyncReport synced;
        CHECK(tl_sdk_sync_batch_proven(sdk, batch, batch_len, proof, proof_len, &synced));
        printf("synced keys=%llu\n", (unsigned long long)synced.keys);
        print_report(sdk, "after sync");

        CHECK(tl_sdk_record_log_proof(sdk, "relay-a.example", proof, proof_len));
        EXPECT(tl_sdk_record_log_proof(sdk, "relay-a.example", lying, lying_len) == TL_ERR_LOG);
        EXPECT(tl_sdk_record_log_proof(sdk, NULL, proof, proof_len) == TL_ERR_NULL_OR_ENCODING);
        print_report(sdk, "on a node");
        CHECK(tl_sdk_record_log_proof(sdk, "relay-a.example", deleted, deleted_len));
        print_report(sdk, "deleted");
        CHECK(tl_sdk_forget_data_report(sdk));
        print_report(sdk, "forgotten");
        free(auth);
        free(witness);
        free(batch);
        free(proof);
        free(lying);
        free(deleted);
    }
    tl_sdk_close(sdk);
    free(times);
    printf("OK\n");
    return 0;
}
