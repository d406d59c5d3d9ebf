# A python3 interpreter with a heap worth compressing and worth restoring
# lazily: 120 000 small records (dicts of strings and ints) and a 24 MiB
# bytearray of a deterministic pattern. Each tick adds records and rewrites a
# slice of the bytearray, checking what it holds; DONE prints a digest of all
# of it, which the test compares with a run that was not checkpointed.
import hashlib, os, sys, time

total = int(sys.argv[1]) if len(sys.argv) > 1 else 60
pid = os.getpid()
records = [{"name": f"item-{i}", "size": i * 7 % 1013, "tags": ["a", "bb", str(i % 17)]} for i in range(120_000)]
blob = bytearray((i * 2654435761 >> 13) & 0xFF for i in range(1 << 16)) * 384
print("READY", flush=True)
for i in range(1, total + 1):
    if os.getpid() != pid:
        pid = os.getpid()
        print(f"RESTARTED at {i}", flush=True)
    records.append({"name": f"tick-{i}", "size": i, "tags": [str(i)]})
    at = (i * 400_009) % (len(blob) - 4096)
    for k in range(at, at + 4096, 512):
        blob[k] = (blob[k] + i) & 0xFF
    if len(records) != 120_000 + i or records[-1]["size"] != i or records[1234]["name"] != "item-1234":
        print(f"FAIL: records lost at step {i}", flush=True)
        sys.exit(1)
    print(f"TICK {i}", flush=True)
    time.sleep(0.025)
h = hashlib.sha256(blob)
for r in records:
    h.update(repr(sorted(r.items())).encode())
print(f"DONE {h.hexdigest()}", flush=True)
