/* Two views of one shared object must stay one object after a restart: a write
 * through either view shows in the other. Three kinds of object, each mapped
 * twice: a memfd (the second view at an offset of one page), a MAP_SHARED|
 * MAP_ANONYMOUS region and its mremap(old_size 0) alias, and a POSIX shm object
 * (unlinked once mapped). At every step the step number is written through one
 * view (alternately the first and the second) and read back through the other,
 * after checking that the previous step's number is still there. */
#define _GNU_SOURCE
#include "tick.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

static long ps;

struct pair {
    const char *what;
    volatile long *a, *b; /* the same word, seen through each view */
};

static void step(struct pair *p, int i) {
    if (*p->a != i - 1 || *p->b != i - 1)
        FAIL("%s: step %d found %ld and %ld, not %d", p->what, i, *p->a, *p->b, i - 1);
    volatile long *w = i % 2 ? p->a : p->b, *r = i % 2 ? p->b : p->a;
    *w = i;
    if (*r != i) FAIL("%s: wrote %d through one view, the other shows %ld", p->what, i, *r);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ps = sysconf(_SC_PAGESIZE);
    struct pair pairs[3];

    int m = memfd_create("views", 0);
    CHECK(m >= 0 && ftruncate(m, 4 * ps) == 0);
    char *m1 = mmap(0, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    char *m2 = mmap(0, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, m, ps);
    CHECK(m1 != MAP_FAILED && m2 != MAP_FAILED);
    close(m);
    pairs[0] = (struct pair){"memfd", (long *)(m1 + 2 * ps + 8), (long *)(m2 + ps + 8)};

    char *s1 = mmap(0, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s1 != MAP_FAILED);
    char *s2 = mremap(s1, 0, 2 * ps, MREMAP_MAYMOVE);
    CHECK(s2 != MAP_FAILED && s2 != s1);
    pairs[1] = (struct pair){"shared anonymous + mremap alias", (long *)(s1 + ps), (long *)(s2 + ps)};

    char name[64];
    snprintf(name, sizeof name, "/ckpt-test-views.%d", (int)getpid());
    int h = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(h >= 0 && ftruncate(h, ps) == 0);
    char *h1 = mmap(0, ps, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
    char *h2 = mmap(0, ps, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
    CHECK(h1 != MAP_FAILED && h2 != MAP_FAILED);
    close(h);
    shm_unlink(name);
    pairs[2] = (struct pair){"POSIX shm", (long *)(h1 + 16), (long *)(h2 + 16)};

    /* Some content that must come back too. */
    memset(m1, 'm', ps);
    memset(s2, 's', 64);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        for (int k = 0; k < 3; k++) step(&pairs[k], i);
        CHECK(m1[100] == 'm' && s1[10] == 's');
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
