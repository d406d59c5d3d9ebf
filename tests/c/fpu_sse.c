/* The interrupted registers come back whole: a busy loop keeps known values in
 * xmm0-xmm7, the x87 stack (1 and pi) and a non-default MXCSR rounding mode while
 * the checkpoint signal lands in it, and compares them when the loop ends. The
 * state lives in the kernel's signal frame (x86_64 or i386 layout) until
 * rt_sigreturn puts it back after the restart. Built for both word sizes. */
#include "tick.h"

#include <stdint.h>
#include <string.h>

static const unsigned char pat[8][16] __attribute__((aligned(16))) = {
    "xmm0-pattern-00", "xmm1-pattern-11", "xmm2-pattern-22", "xmm3-pattern-33",
    "xmm4-pattern-44", "xmm5-pattern-55", "xmm6-pattern-66", "xmm7-pattern-77",
};

/* Spin N times with the registers loaded; returns the pmovmskb masks ANDed
 * (0xffff when every xmm register still equals its pattern). */
__attribute__((target("sse2"), noinline)) static unsigned spin(unsigned long n, double *one,
                                                               double *pi, unsigned *mxcsr) {
    unsigned acc = 0xffff, t, rc_down = 0x1f80 | 0x2000; /* default MXCSR, RC = down */
    __asm__ volatile(
        "ldmxcsr %[rc]\n\t"
        "movdqa 0(%[p]), %%xmm0\n\t"
        "movdqa 16(%[p]), %%xmm1\n\t"
        "movdqa 32(%[p]), %%xmm2\n\t"
        "movdqa 48(%[p]), %%xmm3\n\t"
        "movdqa 64(%[p]), %%xmm4\n\t"
        "movdqa 80(%[p]), %%xmm5\n\t"
        "movdqa 96(%[p]), %%xmm6\n\t"
        "movdqa 112(%[p]), %%xmm7\n\t"
        "fldpi\n\t"
        "fld1\n\t"
        "1: dec %[n]\n\t"
        "jnz 1b\n\t"
        "fstpl %[one]\n\t"
        "fstpl %[pi]\n\t"
        "stmxcsr %[mx]\n\t"
        "pcmpeqb 0(%[p]), %%xmm0\n\t"   "pmovmskb %%xmm0, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 16(%[p]), %%xmm1\n\t"  "pmovmskb %%xmm1, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 32(%[p]), %%xmm2\n\t"  "pmovmskb %%xmm2, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 48(%[p]), %%xmm3\n\t"  "pmovmskb %%xmm3, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 64(%[p]), %%xmm4\n\t"  "pmovmskb %%xmm4, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 80(%[p]), %%xmm5\n\t"  "pmovmskb %%xmm5, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 96(%[p]), %%xmm6\n\t"  "pmovmskb %%xmm6, %[t]\n\t" "and %[t], %[acc]\n\t"
        "pcmpeqb 112(%[p]), %%xmm7\n\t" "pmovmskb %%xmm7, %[t]\n\t" "and %[t], %[acc]\n\t"
        "movl $0x1f80, %[t]\n\t"
        "movl %[t], %[rc]\n\t"
        "ldmxcsr %[rc]\n\t"            /* the default again for the C code */
        : [n] "+r"(n), [acc] "+r"(acc), [t] "=&r"(t), [one] "=m"(*one), [pi] "=m"(*pi),
          [mx] "=m"(*mxcsr), [rc] "+m"(rc_down)
        : [p] "r"(pat)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "st", "st(1)",
          "cc", "memory");
    return acc;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        double one = 0, pi = 0;
        unsigned mx = 0;
        unsigned eq = spin(40000000ul, &one, &pi, &mx);
        if (eq != 0xffff) FAIL("xmm registers changed at step %d (mask %#x)", i, eq);
        if (one != 1.0 || pi != 3.141592653589793) FAIL("x87 stack changed: %g %g", one, pi);
        if ((mx & 0x6000) != 0x2000) FAIL("MXCSR rounding mode lost: %#x", mx);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
