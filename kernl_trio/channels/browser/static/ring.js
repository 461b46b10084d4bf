// The page's playout buffer: a Float32 ring buffer plus the accounting that says how much
// of each item has really been played. Shared by the player worklet (worklet.js) and the
// in-browser test (selftest.html); no DOM, no Web Audio, so both can import it.

export class RingBuffer {
  constructor(capacity) {
    if (!(capacity > 0)) throw new RangeError("capacity must be positive");
    this.buffer = new Float32Array(capacity);
    this.start = 0; // index of the oldest sample
    this.size = 0; // samples held
  }

  get capacity() {
    return this.buffer.length;
  }

  get free() {
    return this.buffer.length - this.size;
  }

  // Append as many of `samples` as fit; returns how many were written.
  push(samples) {
    const n = Math.min(samples.length, this.free);
    const cap = this.buffer.length;
    let end = (this.start + this.size) % cap;
    const first = Math.min(n, cap - end);
    this.buffer.set(samples.subarray(0, first), end);
    if (n > first) this.buffer.set(samples.subarray(first, n), 0);
    this.size += n;
    return n;
  }

  // Move up to `count` samples into `out` at `offset`; returns how many were moved.
  pullInto(out, offset, count) {
    const n = Math.min(count, this.size);
    const cap = this.buffer.length;
    const first = Math.min(n, cap - this.start);
    out.set(this.buffer.subarray(this.start, this.start + first), offset);
    if (n > first) out.set(this.buffer.subarray(0, n - first), offset + first);
    this.start = (this.start + n) % cap;
    this.size -= n;
    return n;
  }

  clear() {
    this.start = 0;
    this.size = 0;
  }
}

// Playout: the ring buffer, which item each buffered sample belongs to, and the played
// position of every item, in samples (exact) and reported in milliseconds.
//
// render(out) fills one render quantum and returns the reports due: one each time an item's
// played position crosses a multiple of `reportMs`, and one when an item's buffered audio
// runs out (its exact end). flush() drops everything buffered and returns the final played
// position of every item that had audio buffered.
export class Playout {
  constructor({ capacity, rate, reportMs = 20 }) {
    this.ring = new RingBuffer(capacity);
    this.rate = rate;
    this.reportSamples = Math.max(1, Math.round((rate * reportMs) / 1000));
    this.segments = []; // [{item, count}] in buffer order
    this.played = new Map(); // item -> samples played
    this.dropped = 0; // samples that did not fit
    this.underruns = 0; // quanta that ran out of audio mid-item
  }

  ms(samples) {
    return (samples * 1000) / this.rate;
  }

  playedMs(item) {
    return this.ms(this.played.get(item) || 0);
  }

  get bufferedMs() {
    return this.ms(this.ring.size);
  }

  enqueue(item, samples) {
    const n = this.ring.push(samples);
    this.dropped += samples.length - n;
    if (n === 0) return 0;
    const last = this.segments[this.segments.length - 1];
    if (last && last.item === item) last.count += n;
    else this.segments.push({ item, count: n });
    if (!this.played.has(item)) this.played.set(item, 0);
    return n;
  }

  render(out) {
    const reports = [];
    let offset = 0;
    while (offset < out.length && this.segments.length) {
      const segment = this.segments[0];
      const want = Math.min(out.length - offset, segment.count);
      const got = this.ring.pullInto(out, offset, want);
      offset += got;
      segment.count -= got;
      const before = this.played.get(segment.item) || 0;
      const after = before + got;
      this.played.set(segment.item, after);
      const crossed =
        Math.floor(after / this.reportSamples) > Math.floor(before / this.reportSamples);
      if (segment.count === 0) {
        this.segments.shift();
        reports.push({ item: segment.item, ms: this.ms(after), end: true });
      } else if (crossed) {
        reports.push({ item: segment.item, ms: this.ms(after), end: false });
      }
      if (got < want) break; // cannot happen while segments match the ring
    }
    if (offset < out.length) {
      out.fill(0, offset);
    }
    return reports;
  }

  flush() {
    const positions = {};
    for (const segment of this.segments) {
      positions[segment.item] = this.playedMs(segment.item);
    }
    this.segments = [];
    this.ring.clear();
    return positions;
  }

  // Forget items the server no longer asks about (bounded memory over a long session).
  forget(keep = 64) {
    if (this.played.size <= keep) return;
    const live = new Set(this.segments.map((s) => s.item));
    for (const item of this.played.keys()) {
      if (this.played.size <= keep) break;
      if (!live.has(item)) this.played.delete(item);
    }
  }
}
