# Several threading.Thread workers updating shared state under a lock, checkpointed
# at any moment: after the restart every worker goes on, the shared total is the
# sum of the workers' own counts, and each worker's native thread id is the one it
# had (threading.get_native_id() is gettid()).
import os, sys, threading, time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 60
nworkers = 4
lock = threading.Lock()
shared = {"total": 0}
counts = [0] * nworkers
tids = [0] * nworkers
fail = []

def work(k):
    tids[k] = threading.get_native_id()
    while True:
        with lock:
            shared["total"] += 1
            counts[k] += 1
        if threading.get_native_id() != tids[k]:
            fail.append(f"worker {k}: tid changed")
        time.sleep(0.001)

for k in range(nworkers):
    threading.Thread(target=work, args=(k,), daemon=True).start()
while 0 in tids:
    time.sleep(0.001)

def start_time():
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]

started = start_time()
pid = os.getpid()
print("READY", flush=True)
last = [0] * nworkers
for i in range(1, total + 1):
    if start_time() != started:
        started = start_time()
        if os.getpid() != pid:
            print(f"FAIL: pid {os.getpid()}, was {pid}", flush=True)
            sys.exit(1)
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        print(f"RESTARTED python threads at {i}", flush=True)
    time.sleep(0.025)
    with lock:
        now = list(counts)
        ok = shared["total"] == sum(now)
    if not ok or fail:
        print(f"FAIL: shared state {shared['total']} != {sum(now)} {fail}", flush=True)
        sys.exit(1)
    for k in range(nworkers):
        if now[k] == last[k]:
            print(f"FAIL: worker {k} stopped at step {i}", flush=True)
            sys.exit(1)
    last = now
    print(f"TICK {i}", flush=True)
print("DONE", flush=True)
