// node with a worker_threads worker: the worker counts and posts its count to the
// main thread, which checks that it keeps growing; after the restart both go on.
// The worker posts every 2 ms and the main thread looks every 30 ms; a machine
// under load may run neither for a while, so the count must grow within a
// second (33 ticks), and it must have grown after the restart by the end.
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
let last = 0, seen = 0, i = 0, still = 0, atRestart = -1;
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
    atRestart = seen;
  }
  if (seen <= last) {
    if (++still > 33) { console.log(`FAIL: the worker stopped at step ${i} (count ${seen})`); process.exit(1); }
  } else {
    still = 0;
  }
  last = seen;
  console.log(`TICK ${i}`);
  if (i === total) {
    if (atRestart >= 0 && seen <= atRestart) { console.log(`FAIL: the worker did not count after the restart`); process.exit(1); }
    console.log('DONE');
    process.exit(0);
  }
};
setInterval(tick, 30);
