# A parent and a forked worker joined by multiprocessing.Pipe() (a UNIX socket
# pair both processes hold both ends of): the parent sends 0..N-1, the worker
# sums their squares and sends the sum back. Under `ckpt --tree`, a checkpoint at
# any moment must bring back one pair for both processes, with the values in
# flight still queued in it.
import multiprocessing as mp
import sys
import time

N = 80


def work(conn):
    s = 0
    for _ in range(N):
        x = conn.recv()
        s += x * x
        time.sleep(0.01)
    conn.send(s)


if __name__ == "__main__":
    mp.set_start_method("fork")
    a, b = mp.Pipe()
    p = mp.Process(target=work, args=(b,))
    p.start()
    print("READY", flush=True)
    for i in range(N):
        a.send(i)
        print("sent", i, flush=True)
        time.sleep(0.01)
    print("result", a.recv(), flush=True)
    p.join()
    print("worker exit", p.exitcode, flush=True)
    sys.exit(0)
