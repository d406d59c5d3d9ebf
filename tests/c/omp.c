/* OpenMP (libgomp): every tick a parallel reduction over a large array whose
 * result is known; the team's threads (and libgomp's pool, which sleeps between
 * regions) are checkpointed wherever they are, and after the restart the same
 * team computes the same sums. */
#include "threads.h"

#include <omp.h>

#define N (1 << 20)
static double a[N];

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    omp_set_num_threads(4);
    for (int i = 0; i < N; i++) a[i] = (double)(i % 1000);
    double want = 0;
    for (int i = 0; i < N; i++) want += a[i];
    int team = 0;
#pragma omp parallel
    {
#pragma omp single
        team = omp_get_num_threads();
    }
    CHECK(team == 4);
    ready_threads();
    for (int i = 1; i <= total; i++) {
        if (restarted_threads()) say("RESTARTED omp");
        for (int rep = 0; rep < 5; rep++) {
            double s = 0;
            int seen = 0;
#pragma omp parallel for reduction(+ : s) reduction(| : seen)
            for (int k = 0; k < N; k++) {
                s += a[k];
                seen |= 1 << omp_get_thread_num();
            }
            if (s != want) FAIL("sum %f, want %f", s, want);
            if (seen != 0xf) FAIL("threads of the team seen: %x", seen);
        }
        pause_ms(20);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
