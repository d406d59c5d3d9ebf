/* Memory registered with userfaultfd: a missing page there is the program's
 * fault handler's to supply, so a checkpoint that read it would block forever
 * (or read EFAULT with UFFD_USER_MODE_ONLY) and a restart would lose the
 * registration. The checkpoint must be refused with a message naming it, and
 * the program go on. After step argv[1] the program unregisters the range
 * ("UNREGISTERED"); a checkpoint then works and restarts.
 * Uses a full userfaultfd where allowed (root), else UFFD_USER_MODE_ONLY. */
#include "tick.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

int main(int argc, char **argv) {
    int unreg_at = argc > 1 ? atoi(argv[1]) : 30;
    int total = argc > 2 ? atoi(argv[2]) : 60;
    long ps = sysconf(_SC_PAGESIZE);
    int u = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (u < 0) u = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    CHECK(u >= 0);
    struct uffdio_api api = {.api = UFFD_API};
    CHECK(ioctl(u, UFFDIO_API, &api) == 0);
    char *m = mmap(0, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    memset(m, 'u', 2 * ps); /* pages 2..7 stay missing */
    struct uffdio_register r = {.range = {(unsigned long)m, 8 * ps}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    CHECK(ioctl(u, UFFDIO_REGISTER, &r) == 0);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        if (i == unreg_at) {
            struct uffdio_range range = {(unsigned long)m, 8 * ps};
            CHECK(ioctl(u, UFFDIO_UNREGISTER, &range) == 0);
            say("UNREGISTERED");
        }
        CHECK(m[0] == 'u' && m[2 * ps - 1] == 'u');
        if (i > unreg_at) CHECK(m[5 * ps] == 0); /* missing: a zero page now */
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
