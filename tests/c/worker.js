// node with a worker_threads worker: the worker counts and posts its count to the
// main thread, which checks that it keeps growing; after the restart both go on.
const { Worker, isMainThread, parentPort } = require('worker_threads');
const fs = require('fs');

if (!isMainThread) {
  let n = 0;
  setInterval(() => { n++; parentPort.postMessage(n); }, 2);
  return;
}
const total = Number(process.argv[2] || 60);
const startTime = () => fs.readFileSync('/proc/self/stat', 'utf8').split(')').pop().trim().split(' ')[19];
let started = startTime();
const pid = process.pid;
let last = 0, seen = 0, i = 0;
const w = new Worker(__filename);
w.on('message', (n) => { seen = n; });
w.on('error', (e) => { console.log(`FAIL: worker ${e}`); process.exit(1); });
let ready = false;
const tick = () => {
  if (!ready) {
    if (seen > 0) { ready = true; console.log('READY'); }
    return;
  }
  i++;
  if (startTime() !== started) {
    started = startTime();
    if (process.pid !== pid) { console.log(`FAIL: pid ${process.pid}, was ${pid}`); process.exit(1); }
    console.log(`RESTARTED node at ${i}`);
  }
  if (seen <= last) { console.log(`FAIL: the worker stopped at step ${i}`); process.exit(1); }
  last = seen;
  console.log(`TICK ${i}`);
  if (i === total) { console.log('DONE'); process.exit(0); }
};
setInterval(tick, 30);
