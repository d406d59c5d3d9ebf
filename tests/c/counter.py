# A Python interpreter running a counter with some dict state: the interpreter's
# heap, its objects and its bytecode position all come back after a restart.
import os, sys, time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 60
pid = os.getpid()
state = {}
print("READY", flush=True)
for i in range(1, total + 1):
    if os.getpid() != pid:
        pid = os.getpid()
        print(f"RESTARTED at {i}", flush=True)
    state[f"k{i}"] = [i] * i
    if len(state) != i or sum(sum(v) for v in state.values()) != sum(j * j for j in range(1, i + 1)):
        print(f"FAIL: dict state lost at step {i}", flush=True)
        sys.exit(1)
    print(f"TICK {i}", flush=True)
    time.sleep(0.025)
print("DONE", flush=True)
