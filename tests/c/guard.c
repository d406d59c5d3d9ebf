/* Memory a checkpoint must read with care, checked at every step:
 * - guard pages (MADV_GUARD_INSTALL, Linux 6.13) in anonymous memory, in a
 *   PROT_NONE region that holds data, in a private file mapping and in shared
 *   anonymous memory: the data around them intact, the guards still guards
 *   (pagemap bit 58, and write(2) from them fails with EFAULT);
 * - a private and a shared mapping of a file truncated under them: the page
 *   still inside the file keeps its content (the pages past its end, which
 *   raise SIGBUS, are not touched).
 * The mappings are 8 pages; guards on pages 2-3. */
#include "tick.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define PAGES 8
#define MADV_GUARD_INSTALL_ 102

static long ps;
static int pipefd[2]; /* descriptors do not survive a restart: made again */

static int is_guard(const char *p) {
    uint64_t v = 0;
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    CHECK(pagemap >= 0);
    CHECK(pread(pagemap, &v, 8, (off_t)((uintptr_t)p / ps) * 8) == 8);
    close(pagemap);
    return (v >> 58) & 1;
}

/* Pages 2-3 of M are guards, the others hold FILL+page number. */
static void check(const char *what, char *m, int fill, int readable) {
    for (int i = 0; i < PAGES; i++) {
        char *pg = m + i * ps;
        if (i == 2 || i == 3) {
            if (!is_guard(pg)) FAIL("%s: page %d is no longer a guard page", what, i);
            errno = 0;
            if (write(pipefd[1], pg, 1) != -1 || errno != EFAULT) FAIL("%s: guard page %d is readable", what, i);
        } else if (readable) {
            for (long j = 0; j < ps; j += 512)
                if (pg[j] != (char)(fill + i)) FAIL("%s: page %d byte %ld is %d", what, i, j, pg[j]);
        }
    }
}

static char *guarded(int prot, int flags, int fd, int fill) {
    char *m = mmap(0, PAGES * ps, PROT_READ | PROT_WRITE, flags, fd, 0);
    CHECK(m != MAP_FAILED);
    if (!(flags & MAP_PRIVATE) || fd < 0)
        for (int i = 0; i < PAGES; i++) memset(m + i * ps, fill + i, ps);
    CHECK(madvise(m + 2 * ps, 2 * ps, MADV_GUARD_INSTALL_) == 0);
    if (prot != (PROT_READ | PROT_WRITE)) CHECK(mprotect(m, PAGES * ps, prot) == 0);
    return m;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ps = sysconf(_SC_PAGESIZE);
    CHECK(pipe(pipefd) == 0);
    /* Two files of PAGES pages of 40+page, made by the program itself, removed
     * once mapped; the second one is truncated under its mappings. */
    int fds[2];
    for (int k = 0; k < 2; k++) {
        char path[64];
        snprintf(path, sizeof path, "guard-file-%d.%d", k, (int)getpid());
        CHECK((fds[k] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
        unlink(path);
        for (int i = 0; i < PAGES; i++) {
            char buf[4096];
            memset(buf, 40 + i, sizeof buf);
            CHECK(write(fds[k], buf, ps) == ps);
        }
    }
    int fd = fds[1];
    char *anon = guarded(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 10);
    char *none = guarded(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 20);
    char *shared = guarded(PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 30);
    char *file = guarded(PROT_READ, MAP_PRIVATE, fds[0], 40);
    close(fds[0]);
    /* Truncated under the mappings: one page and a half left. */
    char *tpriv = mmap(0, PAGES * ps, PROT_READ, MAP_PRIVATE, fd, 0);
    char *tshared = mmap(0, PAGES * ps, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(tpriv != MAP_FAILED && tshared != MAP_FAILED);
    CHECK(tpriv[0] == 40 && tshared[0] == 40);
    CHECK(ftruncate(fd, ps + ps / 2) == 0);
    close(fd);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            CHECK(pipe(pipefd) == 0);
        }
        check("anonymous", anon, 10, 1);
        check("PROT_NONE", none, 20, 0);
        check("shared", shared, 30, 1);
        check("file", file, 40, 1);
        for (long j = 0; j < ps + ps / 2; j += 256)
            if (tpriv[j] != (char)(40 + j / ps) || tshared[j] != (char)(40 + j / ps))
                FAIL("truncated file: byte %ld lost", j);
        say("TICK %d", i);
        pause_ms(25);
    }
    /* The PROT_NONE region's data too, once. */
    CHECK(mprotect(none, PAGES * ps, PROT_READ) == 0);
    check("PROT_NONE", none, 20, 1);
    say("DONE");
    return 0;
}
