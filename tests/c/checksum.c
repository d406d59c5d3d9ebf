/* A long computation for the batch-scheduler tests: ROUNDS passes over a 32 MiB
 * table, each pass mixing every word with its neighbour and the pass number,
 * then folding the table into a running checksum. The result depends on every
 * word of every pass, so a restart that lost or repeated anything, or brought
 * back one page wrong, gives a different CHECKSUM line. Prints `PASS n` every
 * 16 passes (with the running checksum), `CHECKSUM %016llx` at the end.
 * Usage: checksum ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WORDS (4u << 20) /* 32 MiB of uint64_t */

static uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    uint64_t *t = malloc(WORDS * sizeof *t);
    if (!t) return 2;
    for (uint32_t i = 0; i < WORDS; i++) t[i] = mix(i);
    uint64_t sum = 0;
    for (long r = 1; r <= rounds; r++) {
        uint64_t prev = t[WORDS - 1];
        for (uint32_t i = 0; i < WORDS; i++) {
            uint64_t v = mix(t[i] ^ prev ^ (uint64_t)r);
            prev = t[i];
            t[i] = v;
        }
        for (uint32_t i = 0; i < WORDS; i += 512) sum = mix(sum ^ t[i]);
        if (r % 16 == 0) {
            printf("PASS %ld %016llx\n", r, (unsigned long long)sum);
            fflush(stdout);
        }
    }
    printf("CHECKSUM %016llx\n", (unsigned long long)sum);
    return 0;
}
