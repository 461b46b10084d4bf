// The page's two AudioWorklet processors (loaded with audioWorklet.addModule).
//
// kernl-capture: microphone samples -> 20 ms PCM16 frames (+ an RMS level) to the page.
// kernl-player: the agent's audio from a Playout ring buffer -> the speaker, reporting how
// much of each item has really been rendered; "flush" empties it before the next quantum.
import { Playout } from "./ring.js";

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = (options.processorOptions && options.processorOptions.frameMs) || 20;
    this.frame = new Float32Array(Math.round((sampleRate * frameMs) / 1000));
    this.filled = 0;
    this.enabled = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "enable") this.enabled = !!event.data.on;
    };
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input || !this.enabled) return true;
    let i = 0;
    while (i < input.length) {
      const n = Math.min(input.length - i, this.frame.length - this.filled);
      this.frame.set(input.subarray(i, i + n), this.filled);
      this.filled += n;
      i += n;
      if (this.filled === this.frame.length) {
        const pcm = new Int16Array(this.frame.length);
        let energy = 0;
        for (let k = 0; k < this.frame.length; k++) {
          const s = Math.max(-1, Math.min(1, this.frame[k]));
          energy += s * s;
          pcm[k] = s < 0 ? s * 0x8000 : s * 0x7fff;
        }
        const level = Math.sqrt(energy / this.frame.length);
        this.port.postMessage({ type: "frame", pcm: pcm.buffer, level }, [pcm.buffer]);
        this.filled = 0;
      }
    }
    return true;
  }
}

class Player extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.playout = new Playout({
      capacity: Math.round(sampleRate * (opts.bufferSeconds || 30)),
      rate: sampleRate,
      reportMs: opts.reportMs || 20,
    });
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === "audio") {
        this.playout.enqueue(m.item, m.samples);
      } else if (m.type === "flush") {
        const played = this.playout.flush();
        this.playout.forget();
        this.port.postMessage({ type: "flushed", played, dropped: this.playout.dropped });
      }
    };
  }

  process(inputs, outputs) {
    const channels = outputs[0];
    if (!channels || !channels.length) return true;
    const reports = this.playout.render(channels[0]);
    for (let c = 1; c < channels.length; c++) channels[c].set(channels[0]);
    for (const report of reports) {
      this.port.postMessage({
        type: "played",
        item: report.item,
        ms: report.ms,
        end: report.end,
        buffered: this.playout.bufferedMs,
      });
    }
    return true;
  }
}

registerProcessor("kernl-capture", Capture);
registerProcessor("kernl-player", Player);
