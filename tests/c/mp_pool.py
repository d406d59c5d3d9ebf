# multiprocessing.Pool(2) mapping a function over 0..N-1: the parent runs three
# threads of its own (task, result and worker handlers) and talks to its two
# forked workers through pipes. Under `ckpt --tree`, a checkpoint at any moment,
# from a signal to the whole process group (Ctrl-Z), must write one image of the
# tree that finishes the map after the restart with the reference digest.
import hashlib
import multiprocessing as mp
import sys
import time

N = 120


def f(i):
    time.sleep(0.02)
    return hashlib.sha256(str(i).encode()).hexdigest()[:8]


if __name__ == "__main__":
    mp.set_start_method("fork")
    with mp.Pool(2) as pool:
        print("READY", flush=True)
        out = []
        for k, r in enumerate(pool.imap(f, range(N))):
            out.append(r)
            print("got", k, flush=True)
    print("digest", hashlib.sha256("".join(out).encode()).hexdigest()[:16], flush=True)
    sys.exit(0)
