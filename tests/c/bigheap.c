/* A large heap (argv[1] MiB, default 1024) of pseudo-random data whose checksum is
 * verified after a restart; argv[2] TICKs of 50 ms (default 40). The checksum is
 * kept in a variable that was computed before the checkpoint, so a single wrong
 * page after restart is caught. */
#include "tick.h"

#include <stdint.h>

static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 1024;
    int ticks = argc > 2 ? atoi(argv[2]) : 40;
    size_t n = mib << 17; /* 8-byte words */
    uint64_t *p = malloc(n * sizeof *p);
    if (!p) FAIL("malloc %zu MiB", mib);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = x;
    }
    const uint64_t want = sum(p, n);
    ready();
    for (int i = 1; i <= ticks; i++) {
        if (restarted()) {
            uint64_t got = sum(p, n);
            if (got != want) FAIL("checksum %016llx, expected %016llx", (unsigned long long)got,
                                  (unsigned long long)want);
            say("RESTARTED checksum ok %016llx", (unsigned long long)got);
        }
        p[(size_t)i * 4099 % n] ^= 0; /* keep touching the heap */
        say("TICK %d", i);
        pause_ms(50);
    }
    say("DONE");
    return 0;
}
