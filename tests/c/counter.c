/* The quick example: count, one number per step; the count must go on after a
 * restart with no gap and no repeat. A few variables in every kind of memory
 * (data, bss, heap, stack) follow the count and are checked at each step. */
#include "tick.h"

#include <string.h>

static long in_data = 1000;
static long in_bss;

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    long on_stack = -1;
    long *on_heap = malloc(sizeof *on_heap);
    *on_heap = 0;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        in_data++, in_bss++, on_stack--, (*on_heap)++;
        if (in_data != 1000 + i || in_bss != i || on_stack != -1 - i || *on_heap != i)
            FAIL("state lost at step %d: data %ld bss %ld stack %ld heap %ld", i, in_data,
                 in_bss, on_stack, *on_heap);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
