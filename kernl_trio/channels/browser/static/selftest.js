// The page's own test (selftest.html): the ring buffer and the played-position accounting
// of ring.js, run in the browser that runs the page. Results: window.selftest.
import { Playout, RingBuffer } from "./ring.js";

const results = { passed: 0, failed: 0, failures: [], done: false };
window.selftest = results;

function check(name, condition, detail) {
  if (condition) results.passed += 1;
  else {
    results.failed += 1;
    results.failures.push(name + (detail === undefined ? "" : ": " + JSON.stringify(detail)));
  }
}

function ramp(start, n) {
  return Float32Array.from({ length: n }, (_, i) => (start + i) / 1000);
}

function test(name, body) {
  try {
    body();
  } catch (err) {
    check(name + " threw", false, String(err));
  }
}

test("ring buffer wraps around", () => {
  const ring = new RingBuffer(8);
  check("push 6", ring.push(ramp(0, 6)) === 6);
  const out = new Float32Array(4);
  check("pull 4", ring.pullInto(out, 0, 4) === 4 && out[3] === Math.fround(3 / 1000), Array.from(out));
  check("push past the end", ring.push(ramp(6, 6)) === 6 && ring.size === 8);
  const all = new Float32Array(8);
  check("pull across the wrap", ring.pullInto(all, 0, 8) === 8, ring.size);
  check("order kept", all.every((v, i) => v === Math.fround((4 + i) / 1000)), Array.from(all));
  check("empty", ring.size === 0 && ring.free === 8);
});

test("ring buffer overflow writes what fits", () => {
  const ring = new RingBuffer(5);
  check("only 5 written", ring.push(ramp(0, 7)) === 5);
  check("full", ring.free === 0 && ring.push(ramp(0, 1)) === 0);
  ring.clear();
  check("clear empties", ring.size === 0 && ring.free === 5);
});

test("played position: reports every 20 ms and at the end", () => {
  const p = new Playout({ capacity: 24000, rate: 24000, reportMs: 20 });
  p.enqueue("a", new Float32Array(1000)); // 41.666... ms
  const reports = [];
  const quantum = new Float32Array(128);
  for (let i = 0; i < 10; i++) reports.push(...p.render(quantum));
  const ms = reports.map((r) => r.item + ":" + r.ms.toFixed(3) + (r.end ? "!" : ""));
  // 480 samples are 20 ms: the quantum that reaches 512 crosses it; the item's 1000th and
  // last sample comes in the eighth quantum, whose report is the exact end.
  check("reports", JSON.stringify(ms) === JSON.stringify(["a:21.333", "a:41.667!"]), ms);
  check("played ms", Math.abs(p.playedMs("a") - 1000 / 24) < 1e-9, p.playedMs("a"));
  check("then silence", quantum.every((v) => v === 0));
});

test("played position follows items through one quantum", () => {
  const p = new Playout({ capacity: 4800, rate: 24000, reportMs: 20 });
  p.enqueue("a", ramp(1, 100));
  p.enqueue("b", ramp(101, 100));
  const out = new Float32Array(128);
  const reports = p.render(out);
  check("a ended inside the quantum", reports[0].item === "a" && reports[0].end && reports[0].ms === (100 * 1000) / 24000, reports);
  check("a played 100 samples", p.playedMs("a") === (100 * 1000) / 24000);
  check("b played 28 samples", p.playedMs("b") === (28 * 1000) / 24000, p.playedMs("b"));
  check("samples in order", out[0] === Math.fround(1 / 1000) && out[99] === Math.fround(0.1) && out[100] === Math.fround(0.101), [out[0], out[99], out[100]]);
});

test("flush stops at once and keeps the played position", () => {
  const p = new Playout({ capacity: 48000, rate: 24000, reportMs: 20 });
  p.enqueue("a", new Float32Array(24000).fill(0.5)); // 1 s
  const out = new Float32Array(128);
  for (let i = 0; i < 40; i++) p.render(out); // 5120 samples
  const played = p.flush();
  check("flush reports where a stopped", played.a === (5120 * 1000) / 24000, played);
  check("nothing buffered", p.bufferedMs === 0);
  const reports = p.render(out);
  check("next quantum is silent", out.every((v) => v === 0) && reports.length === 0, reports);
  p.enqueue("b", new Float32Array(480).fill(0.25));
  p.render(out);
  check("plays again after a flush", out[0] === 0.25 && p.playedMs("b") === (128 * 1000) / 24000);
  check("a keeps its position", p.playedMs("a") === (5120 * 1000) / 24000);
});

test("overflow is counted, accounting stays right", () => {
  const p = new Playout({ capacity: 1000, rate: 24000, reportMs: 20 });
  p.enqueue("a", new Float32Array(800));
  const kept = p.enqueue("a", new Float32Array(800));
  check("only what fits", kept === 200 && p.dropped === 600, [kept, p.dropped]);
  const out = new Float32Array(128);
  for (let i = 0; i < 10; i++) p.render(out);
  check("played what was kept", p.playedMs("a") === (1000 * 1000) / 24000, p.playedMs("a"));
});

results.done = true;
document.getElementById("out").textContent =
  `${results.passed} passed, ${results.failed} failed\n` + results.failures.join("\n");
