/* A 4 GiB reservation (1 GiB in a 32-bit program, whose whole address space is
 * 4 GiB) of which only 10 MiB are touched: the image must stay near the touched
 * size, and the untouched part must still be there (readable, zero, writable)
 * after the restart. */
#include "tick.h"

#include <stdint.h>
#include <sys/mman.h>

#if UINTPTR_MAX > 0xffffffffu
#define RESERVED (4ull << 30)
#else
#define RESERVED (1ull << 30)
#endif
#define TOUCHED (10ull << 20)

int main(void) {
    unsigned char *p = mmap(0, RESERVED, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) FAIL("mmap %llu MiB", RESERVED >> 20);
    /* 10 MiB spread over the reservation: 160 chunks of 64 KiB, 25 MiB apart. */
    size_t chunk = 64 << 10, stride = RESERVED / (TOUCHED / chunk);
    for (size_t c = 0; c < TOUCHED / chunk; c++)
        for (size_t i = 0; i < chunk; i++) p[c * stride + i] = (unsigned char)(c + i);
    ready();
    for (int t = 1; t <= 60; t++) {
        if (restarted()) {
            for (size_t c = 0; c < TOUCHED / chunk; c++)
                for (size_t i = 0; i < chunk; i++)
                    if (p[c * stride + i] != (unsigned char)(c + i)) FAIL("chunk %zu byte %zu", c, i);
            /* Untouched pages: zero, and writable. */
            for (size_t off = chunk; off < RESERVED; off += 97 * 4096 + 13)
                if (off % stride >= chunk && p[off]) FAIL("untouched byte at %zu is %d", off, p[off]);
            p[RESERVED - 1] = 1;
            say("RESTARTED sparse ok");
        }
        say("TICK %d", t);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
