// Paints the agent's screen stream on a <canvas>: JPEG through createImageBitmap, DEFLATE_BGRA through
// DecompressionStream("deflate") into ImageData, SOLID as a fill; the cursor on an overlay canvas.
//
// Everything here comes from the agent and is hostile: sizes are checked before anything is allocated (the
// JPEG header included, so a small file cannot announce a huge image), a region must lie inside its frame and
// decode to exactly width × height pixels, and the queue of messages waiting to be painted is bounded.
// Regions start decoding as they arrive (in parallel) and are painted in order; the ACK for a frame is sent
// after its FRAME_END has been painted, which is what paces the agent.

import { type Bytes } from "./bytes";
import {
  Encoding,
  MANDATORY_ENCODINGS,
  decodeFromAgent,
  encodeAck,
  ScreenProtocolError,
  type AgentMessage,
  type MonitorInfo,
} from "./screenproto";

/** The largest frame the console paints (8K UHD is 33 Mpx); beyond it the session ends. */
export const MAX_FRAME_PIXELS = 40_000_000;
/** Messages and bytes that may wait to be painted: far above what max_in_flight frames need. */
export const MAX_QUEUED_MESSAGES = 16_384;
export const MAX_QUEUED_BYTES = 96 * 1024 * 1024;
const CURSOR_CACHE = 32;
const RTT_SAMPLES = 16;

export interface ScreenCallbacks {
  /** Send one message on the screen channel (ACK). */
  send(payload: Bytes): void;
  onMonitors?(monitors: MonitorInfo[]): void;
  onClipboard?(text: string): void;
  onFrameSize?(width: number, height: number): void;
  /** A protocol violation: the session must end (the decoder stops by itself). */
  onError(code: string, message: string): void;
}

export interface ScreenStatistics {
  framesPainted: number;
  fps: number;
  /** Round trip estimated from ACK → the frame that ACK released; null until measured. */
  rttMs: number | null;
  width: number;
  height: number;
  queuedMessages: number;
  queuedBytes: number;
}

type Painter = (ctx: CanvasRenderingContext2D) => void;

interface Queued {
  message: AgentMessage;
  size: number;
  /** For regions: the decode, started on arrival. */
  decoded?: Promise<Painter>;
}

/** Width and height from a JPEG's SOF marker, without decoding it; null when there is none. */
export function jpegSize(data: Uint8Array): { width: number; height: number } | null {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return null;
  let i = 2;
  while (i + 4 <= data.length) {
    if (data[i] !== 0xff) return null;
    const marker = data[i + 1]!;
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    i += 2;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue;
    if (marker === 0xd9 || marker === 0xda) return null;
    const length = (data[i]! << 8) | data[i + 1]!;
    if (length < 2) return null;
    const sof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (sof) {
      if (i + 7 > data.length) return null;
      return { height: (data[i + 3]! << 8) | data[i + 4]!, width: (data[i + 5]! << 8) | data[i + 6]! };
    }
    i += length;
  }
  return null;
}

/** Inflates a zlib stream into exactly `expected` bytes; more or fewer is an error (no unbounded growth). */
export async function inflateExactly(data: Uint8Array, expected: number): Promise<Uint8ClampedArray<ArrayBuffer>> {
  const out = new Uint8ClampedArray(expected);
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  let offset = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (offset + value.length > expected) throw new ScreenProtocolError("invalid_message", "region inflates to more than its size");
      out.set(value, offset);
      offset += value.length;
    }
  } catch (err) {
    void reader.cancel().catch(() => undefined);
    if (err instanceof ScreenProtocolError) throw err;
    throw new ScreenProtocolError("invalid_message", "region is not a valid zlib stream");
  }
  if (offset !== expected) throw new ScreenProtocolError("invalid_message", "region inflates to less than its size");
  return out;
}

function bgrxToRgba(pixels: Uint8ClampedArray): void {
  for (let i = 0; i < pixels.length; i += 4) {
    const b = pixels[i]!;
    pixels[i] = pixels[i + 2]!;
    pixels[i + 2] = b;
    pixels[i + 3] = 255;
  }
}

async function decodeRegion(message: Extract<AgentMessage, { kind: "region" }>): Promise<Painter> {
  const { x, y, width, height, data } = message;
  switch (message.encoding) {
    case Encoding.SOLID: {
      const [b, g, r] = [data[0]!, data[1]!, data[2]!];
      return (ctx) => {
        ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
        ctx.fillRect(x, y, width, height);
      };
    }
    case Encoding.JPEG: {
      const size = jpegSize(data);
      if (!size || size.width !== width || size.height !== height) {
        throw new ScreenProtocolError("invalid_message", "JPEG size does not match its region");
      }
      let bitmap: ImageBitmap;
      try {
        bitmap = await createImageBitmap(new Blob([data as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }));
      } catch {
        throw new ScreenProtocolError("invalid_message", "JPEG does not decode");
      }
      return (ctx) => {
        ctx.drawImage(bitmap, x, y);
        bitmap.close();
      };
    }
    case Encoding.DEFLATE_BGRA: {
      const pixels = await inflateExactly(data, width * height * 4);
      bgrxToRgba(pixels);
      const image = new ImageData(pixels, width, height);
      return (ctx) => ctx.putImageData(image, x, y);
    }
    default:
      // ZSTD_BGRA is opt-in and this console does not announce it.
      throw new ScreenProtocolError("invalid_message", `encoding ${message.encoding} was not announced`);
  }
}

interface CurrentFrame {
  seq: number;
  width: number;
  height: number;
  receivedAt: number;
  receivedWallMs: number;
  regions: number;
  bytes: number;
}

export class ScreenDecoder {
  private readonly ctx: CanvasRenderingContext2D;
  private readonly cursorCtx: CanvasRenderingContext2D;
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private running = false;
  private dead = false;
  private frame: CurrentFrame | null = null;
  private width = 0;
  private height = 0;
  private painted: number[] = [];
  private framesPainted = 0;
  private readonly ackSentAt = new Map<number, number>();
  private rttSamples: number[] = [];
  private cursors = new Map<number, HTMLCanvasElement>();
  private cursorSerial: number | null = null;
  private cursorPosition: { x: number; y: number; visible: boolean } = { x: 0, y: 0, visible: false };
  private cursorDrawn: { x: number; y: number; w: number; h: number } | null = null;
  /** max_in_flight as configured: an ACK for frame n releases frame n + window. */
  window = 2;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly cursorCanvas: HTMLCanvasElement,
    private readonly callbacks: ScreenCallbacks,
  ) {
    const ctx = canvas.getContext("2d", { alpha: false });
    const cursorCtx = cursorCanvas.getContext("2d");
    if (!ctx || !cursorCtx) throw new Error("no 2D canvas");
    this.ctx = ctx;
    this.cursorCtx = cursorCtx;
  }

  /** The encodings to announce in CONFIGURE. */
  static readonly encodings = MANDATORY_ENCODINGS;

  frameSize(): { width: number; height: number } {
    return { width: this.width, height: this.height };
  }

  statistics(now = performance.now()): ScreenStatistics {
    this.painted = this.painted.filter((t) => now - t <= 1000);
    return {
      framesPainted: this.framesPainted,
      fps: this.painted.length,
      rttMs: this.rttSamples.length > 0 ? Math.min(...this.rttSamples) : null,
      width: this.width,
      height: this.height,
      queuedMessages: this.queue.length,
      queuedBytes: this.queuedBytes,
    };
  }

  /** One screen-channel record from the agent. */
  push(payload: Uint8Array): void {
    if (this.dead) return;
    let message: AgentMessage;
    try {
      message = decodeFromAgent(payload);
    } catch (err) {
      this.fail(err);
      return;
    }
    switch (message.kind) {
      case "monitors":
        this.callbacks.onMonitors?.(message.monitors);
        return;
      case "clipboard":
        this.callbacks.onClipboard?.(message.text);
        return;
      case "cursor_shape":
        this.setCursorShape(message);
        return;
      case "cursor_position":
        this.cursorPosition = { x: message.x, y: message.y, visible: message.visible };
        this.drawCursor();
        return;
      default:
        break;
    }
    if (this.queue.length >= MAX_QUEUED_MESSAGES || this.queuedBytes + payload.length > MAX_QUEUED_BYTES) {
      this.fail(new ScreenProtocolError("overloaded", "the agent sends faster than frames are acknowledged"));
      return;
    }
    const entry: Queued = { message, size: payload.length };
    if (message.kind === "frame_begin") {
      // Noted on arrival: the RTT sample and the ACK's timings start when the frame reaches the console.
      this.sampleRtt(message.seq);
    }
    if (message.kind === "region") {
      entry.decoded = decodeRegion(message);
      entry.decoded.catch(() => undefined);
    }
    this.queue.push(entry);
    this.queuedBytes += payload.length;
    void this.run();
  }

  dispose(): void {
    this.dead = true;
    this.queue = [];
    this.queuedBytes = 0;
  }

  private sampleRtt(seq: number): void {
    const sentAt = this.ackSentAt.get((seq - this.window) >>> 0);
    if (sentAt === undefined) return;
    this.rttSamples.push(performance.now() - sentAt);
    if (this.rttSamples.length > RTT_SAMPLES) this.rttSamples.shift();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.dead) {
        const entry = this.queue.shift()!;
        this.queuedBytes -= entry.size;
        await this.apply(entry);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.running = false;
    }
  }

  private async apply(entry: Queued): Promise<void> {
    const message = entry.message;
    const invalid = (what: string): never => {
      throw new ScreenProtocolError("invalid_message", what);
    };
    switch (message.kind) {
      case "frame_begin": {
        if (message.width * message.height > MAX_FRAME_PIXELS) {
          throw new ScreenProtocolError("frame_too_large", `${message.width}x${message.height}`);
        }
        if (message.width !== this.width || message.height !== this.height) {
          this.width = message.width;
          this.height = message.height;
          this.canvas.width = this.width;
          this.canvas.height = this.height;
          this.cursorCanvas.width = this.width;
          this.cursorCanvas.height = this.height;
          this.cursorDrawn = null;
          this.drawCursor();
          this.callbacks.onFrameSize?.(this.width, this.height);
        }
        this.frame = {
          seq: message.seq,
          width: message.width,
          height: message.height,
          receivedAt: performance.now(),
          receivedWallMs: Date.now(),
          regions: 0,
          bytes: 0,
        };
        return;
      }
      case "region": {
        const frame = this.frame ?? invalid("region outside a frame");
        if (message.seq !== frame.seq) invalid("region of another frame");
        if (message.x + message.width > frame.width || message.y + message.height > frame.height) {
          invalid("region outside its frame");
        }
        const paint = await entry.decoded!;
        if (this.dead) return;
        paint(this.ctx);
        frame.regions += 1;
        frame.bytes += message.data.length;
        return;
      }
      case "frame_end": {
        const frame = this.frame ?? invalid("frame end outside a frame");
        if (message.seq !== frame.seq || message.regions !== frame.regions || message.bytes !== frame.bytes) {
          invalid("frame end does not match its regions");
        }
        this.frame = null;
        const now = performance.now();
        this.painted.push(now);
        this.framesPainted += 1;
        this.callbacks.send(encodeAck(frame.seq, frame.receivedWallMs, now - frame.receivedAt));
        this.ackSentAt.set(frame.seq, now);
        if (this.ackSentAt.size > 64) this.ackSentAt.delete(this.ackSentAt.keys().next().value!);
        return;
      }
      default:
        return;
    }
  }

  private setCursorShape(message: Extract<AgentMessage, { kind: "cursor_shape" }>): void {
    let shape = this.cursors.get(message.serial);
    if (!shape) {
      shape = document.createElement("canvas");
      shape.width = message.width;
      shape.height = message.height;
      const pixels = new Uint8ClampedArray(message.rgba.length);
      pixels.set(message.rgba);
      shape.getContext("2d")?.putImageData(new ImageData(pixels, message.width, message.height), 0, 0);
      shape.dataset["hotX"] = String(message.hotX);
      shape.dataset["hotY"] = String(message.hotY);
      this.cursors.set(message.serial, shape);
      if (this.cursors.size > CURSOR_CACHE) this.cursors.delete(this.cursors.keys().next().value!);
    }
    this.cursorSerial = message.serial;
    this.drawCursor();
  }

  private drawCursor(): void {
    const ctx = this.cursorCtx;
    if (this.cursorDrawn) {
      const d = this.cursorDrawn;
      ctx.clearRect(d.x, d.y, d.w, d.h);
      this.cursorDrawn = null;
    }
    const shape = this.cursorSerial === null ? undefined : this.cursors.get(this.cursorSerial);
    if (!shape || !this.cursorPosition.visible || this.width === 0) return;
    const x = this.cursorPosition.x - Number(shape.dataset["hotX"] ?? 0);
    const y = this.cursorPosition.y - Number(shape.dataset["hotY"] ?? 0);
    ctx.drawImage(shape, x, y);
    this.cursorDrawn = { x, y, w: shape.width, h: shape.height };
  }

  private fail(err: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.queue = [];
    this.queuedBytes = 0;
    const code = err instanceof ScreenProtocolError ? err.code : "internal_error";
    if (!(err instanceof ScreenProtocolError)) console.error("screen decoder failed", err);
    this.callbacks.onError(code, err instanceof Error ? err.message : String(err));
  }
}
