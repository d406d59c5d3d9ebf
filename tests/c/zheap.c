/* A heap that compresses like a real program's (text records, small numbers,
 * pointers) with a part that does not (pseudo-random words): argv[1] MiB
 * (default 24), argv[2] percent of it random (default 12), argv[3] TICKs of 25 ms
 * (default 60).
 * Each tick rewrites a few words; a position-weighted checksum of the whole heap
 * is kept up to date and recomputed in full after a restart, so a single wrong
 * byte anywhere (a piece decoded wrong, a page left out) is caught. */
#include "tick.h"

#include <stdint.h>
#include <string.h>

static uint64_t f(size_t i, uint64_t v) { return (v ^ (i * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull; }

static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h += f(i, p[i]);
    return h;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 24;
    size_t pct = argc > 2 ? strtoul(argv[2], 0, 10) : 12;
    int ticks = argc > 3 ? atoi(argv[3]) : 60;
    size_t bytes = mib << 20, n = bytes / 8;
    char *c = malloc(bytes);
    if (!c) FAIL("malloc %zu MiB", mib);
    uint64_t *p = (uint64_t *)c;
    size_t text = bytes - bytes / 100 * pct, at = 0;
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (unsigned id = 0; at < text; id++) {
        char line[160];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = snprintf(line, sizeof line, "{\"id\": %u, \"name\": \"user%u\", \"email\": \"user%u@example.com\", \"score\": %u, \"next\": %p}\n",
                         id, id, (unsigned)(x % 100000), (unsigned)(x >> 40) % 1000, (void *)(c + at));
        if (at + k > text) k = text - at;
        memcpy(c + at, line, k);
        at += k;
    }
    for (size_t i = text / 8; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = x;
    }
    uint64_t want = sum(p, n);
    ready();
    for (int t = 1; t <= ticks; t++) {
        if (restarted()) {
            uint64_t got = sum(p, n);
            if (got != want) FAIL("checksum %016llx, expected %016llx", (unsigned long long)got, (unsigned long long)want);
            say("RESTARTED checksum ok %016llx", (unsigned long long)got);
        }
        for (int k = 0; k < 16; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t i = x % n;
            want -= f(i, p[i]);
            p[i] = x >> 3;
            want += f(i, p[i]);
        }
        say("TICK %d", t);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
