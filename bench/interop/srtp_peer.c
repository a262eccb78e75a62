/*
 * A libsrtp2 peer for interop tests and benchmarks. Not part of the relay: Debian's
 * libsrtp2 is a correctness reference (and a speed yardstick) only.
 *
 *   srtp_peer protect|unprotect SUITE KEY_HEX SALT_HEX [MKI_HEX]   < frames > frames
 *     frames: [u8 kind (0 = RTP, 1 = RTCP)][u16 BE length][bytes]; output frames carry
 *     the result, or length 0xffff and the libsrtp error code as one byte on failure.
 *     With MKI_HEX every packet carries that MKI (libsrtp's srtp_*_mki calls).
 *   Suites: libsrtp2's, named as in SDES; F8_128_HMAC_SHA1_* is not in libsrtp2.
 *   srtp_peer bench SUITE PACKETS
 *     prints "protect_ns unprotect_ns" per 172-byte RTP packet.
 */
#include <srtp2/srtp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int set_suite(srtp_policy_t *p, const char *s, int *key_len, int *salt_len) {
    *salt_len = 14;
    if (!strcmp(s, "AES_CM_128_HMAC_SHA1_80")) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
        *key_len = 16;
    } else if (!strcmp(s, "AES_CM_128_HMAC_SHA1_32")) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
        *key_len = 16;
    } else if (!strcmp(s, "AES_256_CM_HMAC_SHA1_80")) {
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&p->rtcp);
        *key_len = 32;
    } else if (!strcmp(s, "AES_256_CM_HMAC_SHA1_32")) {
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(&p->rtp);
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&p->rtcp);
        *key_len = 32;
    } else if (!strcmp(s, "AES_192_CM_HMAC_SHA1_80")) {
        srtp_crypto_policy_set_aes_cm_192_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_192_hmac_sha1_80(&p->rtcp);
        *key_len = 24;
    } else if (!strcmp(s, "AES_192_CM_HMAC_SHA1_32")) {
        srtp_crypto_policy_set_aes_cm_192_hmac_sha1_32(&p->rtp);
        srtp_crypto_policy_set_aes_cm_192_hmac_sha1_80(&p->rtcp);
        *key_len = 24;
    } else if (!strcmp(s, "NULL_HMAC_SHA1_80") || !strcmp(s, "NULL_HMAC_SHA1_32")) {
        srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&p->rtcp);
        if (!strcmp(s, "NULL_HMAC_SHA1_32")) p->rtp.auth_tag_len = 4; /* no setter in libsrtp2 */
        *key_len = 16;
    } else if (!strcmp(s, "AEAD_AES_128_GCM")) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
        *key_len = 16;
        *salt_len = 12;
    } else if (!strcmp(s, "AEAD_AES_256_GCM")) {
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p->rtcp);
        *key_len = 32;
        *salt_len = 12;
    } else {
        return -1;
    }
    return 0;
}

static void unhex(const char *h, uint8_t *out, int n) {
    for (int i = 0; i < n; i++) sscanf(h + 2 * i, "%2hhx", &out[i]);
}

static srtp_t make(const char *suite, const char *key, const char *salt, const char *mki, int inbound) {
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    int kl, sl;
    if (set_suite(&p, suite, &kl, &sl)) { fprintf(stderr, "unknown suite %s\n", suite); exit(2); }
    static uint8_t material[64];
    unhex(key, material, kl);
    unhex(salt, material + kl, sl);
    p.key = material;
    static uint8_t mki_id[128];
    static srtp_master_key_t master;
    static srtp_master_key_t *masters[1] = {&master};
    if (mki) {
        int mki_len = (int)strlen(mki) / 2;
        if (mki_len < 1 || mki_len > 128) { fprintf(stderr, "bad MKI\n"); exit(2); }
        unhex(mki, mki_id, mki_len);
        master.key = material;
        master.mki_id = mki_id;
        master.mki_size = (unsigned)mki_len;
        p.key = NULL;
        p.keys = masters;
        p.num_master_keys = 1;
    }
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.window_size = 128;
    p.allow_repeat_tx = 0;
    srtp_t s;
    if (srtp_create(&s, &p) != srtp_err_status_ok) { fprintf(stderr, "srtp_create failed\n"); exit(2); }
    return s;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (srtp_init() != srtp_err_status_ok) return 2;
    if (argc == 4 && !strcmp(argv[1], "bench")) {
        const char *suite = argv[2];
        int n = atoi(argv[3]);
        const char *key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        const char *salt = "a0a1a2a3a4a5a6a7a8a9aaabacad";
        srtp_t tx = make(suite, key, salt, NULL, 0), rx = make(suite, key, salt, NULL, 1);
        /* chunks of 1024 packets (L2-resident), as the relay's benchmark does */
        enum { CHUNK = 1024 };
        uint8_t *pk = malloc((size_t)CHUNK * 256);
        int lens[CHUNK];
        double tp = 0, tu = 0;
        int chunks = n / CHUNK;
        for (int c = 0; c < chunks; c++) {
            for (int i = 0; i < CHUNK; i++) {
                uint8_t *b = pk + (size_t)i * 256;
                int seq = c * CHUNK + i;
                memset(b, 0x5a, 184);
                b[0] = 0x80; b[1] = 0; b[2] = seq >> 8; b[3] = seq; b[8] = 0x12; b[9] = 0x34; b[10] = 0x56; b[11] = 0x78;
            }
            double t0 = now_ns();
            for (int i = 0; i < CHUNK; i++) {
                lens[i] = 184;
                srtp_protect(tx, pk + (size_t)i * 256, &lens[i]);
            }
            double t1 = now_ns();
            for (int i = 0; i < CHUNK; i++) srtp_unprotect(rx, pk + (size_t)i * 256, &lens[i]);
            double t2 = now_ns();
            tp += t1 - t0;
            tu += t2 - t1;
        }
        n = chunks * CHUNK;
        double t0 = 0, t1 = tp, t2 = tp + tu;
        printf("%.1f %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
        return 0;
    }
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: srtp_peer protect|unprotect SUITE KEY_HEX SALT_HEX [MKI_HEX]\n");
        return 2;
    }
    int protect = !strcmp(argv[1], "protect");
    srtp_t s = make(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL, !protect);
    unsigned use_mki = argc == 6;
    uint8_t hdr[3], buf[2048];
    while (fread(hdr, 1, 3, stdin) == 3) {
        int kind = hdr[0], len = (hdr[1] << 8) | hdr[2];
        if (len > 1500 || fread(buf, 1, len, stdin) != (size_t)len) return 3;
        srtp_err_status_t e;
        if (kind == 0)
            e = protect ? srtp_protect_mki(s, buf, &len, use_mki, 0) : srtp_unprotect_mki(s, buf, &len, use_mki);
        else
            e = protect ? srtp_protect_rtcp_mki(s, buf, &len, use_mki, 0) : srtp_unprotect_rtcp_mki(s, buf, &len, use_mki);
        if (e != srtp_err_status_ok) {
            uint8_t out[4] = {(uint8_t)kind, 0xff, 0xff, (uint8_t)e};
            fwrite(out, 1, 4, stdout);
            continue;
        }
        uint8_t out[3] = {(uint8_t)kind, (uint8_t)(len >> 8), (uint8_t)len};
        fwrite(out, 1, 3, stdout);
        fwrite(buf, 1, len, stdout);
    }
    return 0;
}
