// Screen, input, cursor and clipboard messages inside session DATA records, as steun_protocol/screen.py.
//
// Fixed-width big-endian fields read with one DataView; every variable part is checked against its cap before
// anything is copied, and a message must be consumed exactly. Errors carry Python's codes (malformed,
// message_too_large, unknown_type, invalid_message).

import { WireReader } from "./binary";
import { utf8, type Bytes } from "./bytes";
import { MAX_RECORD_PLAINTEXT } from "./crypto";

export const MAX_MONITORS = 16;
export const MAX_MONITOR_NAME = 64;
export const REGION_HEADER_SIZE = 1 + 18;
export const MAX_REGION_BYTES = MAX_RECORD_PLAINTEXT - REGION_HEADER_SIZE;
export const MAX_CURSOR_SIDE = 256;
export const MAX_CLIPBOARD_BYTES = 512 * 1024;
export const MAX_TEXT_BYTES = 1024;
export const MAX_SIDE = 16384;
export const MAX_IN_FLIGHT = 8;
export const MAX_FPS = 60;

export const Encoding = { JPEG: 1, ZSTD_BGRA: 2, DEFLATE_BGRA: 3, SOLID: 4 } as const;
export type Encoding = (typeof Encoding)[keyof typeof Encoding];
/** The encodings every console decodes: JPEG, DEFLATE_BGRA and SOLID (ZSTD_BGRA is opt-in; not here). */
export const MANDATORY_ENCODINGS = (1 << Encoding.JPEG) | (1 << Encoding.DEFLATE_BGRA) | (1 << Encoding.SOLID);

export const MessageType = {
  MONITORS: 0x01,
  FRAME_BEGIN: 0x02,
  REGION: 0x03,
  FRAME_END: 0x04,
  CURSOR_POSITION: 0x05,
  CURSOR_SHAPE: 0x06,
  CLIPBOARD: 0x07,
  ACK: 0x41,
  CONFIGURE: 0x42,
  SELECT_MONITOR: 0x43,
  REFRESH: 0x44,
  POINTER_MOVE: 0x50,
  POINTER_BUTTON: 0x51,
  WHEEL: 0x52,
  KEY: 0x53,
  TEXT: 0x54,
  RELEASE_ALL: 0x55,
} as const;

export interface MonitorInfo {
  id: number;
  x: number;
  y: number;
  width: number;
  height: number;
  name: string;
  primary: boolean;
  selected: boolean;
}

export type AgentMessage =
  | { kind: "monitors"; monitors: MonitorInfo[] }
  | { kind: "frame_begin"; seq: number; monitor: number; width: number; height: number; captureMs: number; full: boolean }
  | { kind: "region"; seq: number; x: number; y: number; width: number; height: number; encoding: Encoding; reset: boolean; data: Uint8Array }
  | { kind: "frame_end"; seq: number; regions: number; bytes: number }
  | { kind: "cursor_position"; x: number; y: number; visible: boolean }
  | { kind: "cursor_shape"; serial: number; width: number; height: number; hotX: number; hotY: number; rgba: Uint8Array }
  | { kind: "clipboard"; text: string };

export class ScreenProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "ScreenProtocolError";
    this.code = code;
  }
}


function invalid(ok: boolean, what: string): void {
  if (!ok) throw new ScreenProtocolError("invalid_message", what);
}

function flag(value: number, what: string): boolean {
  invalid(value === 0 || value === 1, `${what} must be 0 or 1`);
  return value === 1;
}

function sizeOk(width: number, height: number): boolean {
  return width >= 1 && width <= MAX_SIDE && height >= 1 && height <= MAX_SIDE;
}

/** What a console accepts from an agent (``decode_from_agent``). */
export function decodeFromAgent(data: Uint8Array): AgentMessage {
  if (data.length === 0) throw new ScreenProtocolError("malformed", "empty message");
  const r = new WireReader(data, (code, message) => new ScreenProtocolError(code, message));
  let message: AgentMessage;
  switch (data[0]) {
    case MessageType.MONITORS: {
      const count = r.u8();
      invalid(count >= 1 && count <= MAX_MONITORS, `${count} monitors`);
      const monitors: MonitorInfo[] = [];
      for (let i = 0; i < count; i++) {
        const id = r.u8();
        const flags = r.u8();
        const x = r.i32();
        const y = r.i32();
        const width = r.u16();
        const height = r.u16();
        const nameLength = r.u8();
        invalid(sizeOk(width, height) && flags < 4, "monitor");
        const name = r.text(nameLength, MAX_MONITOR_NAME, "monitor name");
        monitors.push({ id, x, y, width, height, name, primary: (flags & 1) !== 0, selected: (flags & 2) !== 0 });
      }
      message = { kind: "monitors", monitors };
      break;
    }
    case MessageType.FRAME_BEGIN: {
      const seq = r.u32();
      const monitor = r.u8();
      const flags = r.u8();
      const width = r.u16();
      const height = r.u16();
      const captureMs = r.u32();
      invalid(sizeOk(width, height), `frame ${width}x${height}`);
      message = { kind: "frame_begin", seq, monitor, width, height, captureMs, full: flag(flags, "frame flags") };
      break;
    }
    case MessageType.REGION: {
      const seq = r.u32();
      const x = r.u16();
      const y = r.u16();
      const width = r.u16();
      const height = r.u16();
      const encoding = r.u8();
      const flags = r.u8();
      const length = r.u32();
      invalid(sizeOk(width, height) && x + width <= MAX_SIDE && y + height <= MAX_SIDE, "region size");
      invalid(encoding >= 1 && encoding <= 4, `unknown encoding ${encoding}`);
      invalid(flags === 0 || (flags === 1 && encoding === Encoding.ZSTD_BGRA), `region flags ${flags}`);
      invalid(encoding !== Encoding.SOLID || length === 4, "a SOLID region carries 4 bytes");
      const regionData = r.raw(length, MAX_REGION_BYTES, "region data");
      message = { kind: "region", seq, x, y, width, height, encoding: encoding as Encoding, reset: flags === 1, data: regionData };
      break;
    }
    case MessageType.FRAME_END:
      message = { kind: "frame_end", seq: r.u32(), regions: r.u16(), bytes: r.u32() };
      break;
    case MessageType.CURSOR_POSITION: {
      const x = r.i32();
      const y = r.i32();
      message = { kind: "cursor_position", x, y, visible: flag(r.u8(), "visible") };
      break;
    }
    case MessageType.CURSOR_SHAPE: {
      const serial = r.u32();
      const width = r.u16();
      const height = r.u16();
      const hotX = r.u16();
      const hotY = r.u16();
      invalid(width >= 1 && width <= MAX_CURSOR_SIDE && height >= 1 && height <= MAX_CURSOR_SIDE, `cursor ${width}x${height}`);
      invalid(hotX < width && hotY < height, "cursor hotspot outside the cursor");
      const rgba = r.raw(width * height * 4, MAX_CURSOR_SIDE * MAX_CURSOR_SIDE * 4, "cursor pixels");
      message = { kind: "cursor_shape", serial, width, height, hotX, hotY, rgba };
      break;
    }
    case MessageType.CLIPBOARD: {
      const length = r.u32();
      message = { kind: "clipboard", text: r.text(length, MAX_CLIPBOARD_BYTES, "clipboard") };
      break;
    }
    default:
      if (data[0] !== undefined && Object.values(MessageType).includes(data[0] as never)) {
        throw new ScreenProtocolError("unknown_type", `message 0x${data[0].toString(16)} is not sent in this direction`);
      }
      throw new ScreenProtocolError("unknown_type", `unknown screen message 0x${(data[0] ?? 0).toString(16)}`);
  }
  r.end();
  return message;
}

// ------------------------------------------------------------------------------------------- console → agent

function message(type: number, size: number, fill: (view: DataView) => void = () => {}): Bytes {
  const out = new Uint8Array(1 + size);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  fill(view);
  return out;
}

function u16(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new ScreenProtocolError("invalid_message", `${what} ${value}`);
  return value;
}

export function encodeAck(seq: number, receivedMs: number, renderMs: number): Bytes {
  return message(MessageType.ACK, 10, (v) => {
    v.setUint32(1, seq >>> 0);
    v.setUint32(5, Math.max(0, Math.floor(receivedMs)) % 0x1_0000_0000);
    v.setUint16(9, Math.min(0xffff, Math.max(0, Math.round(renderMs))));
  });
}

export interface ConfigureOptions {
  quality: number; // 0 adaptive, 1..100 fixed JPEG quality
  maxFps: number; // 0 default
  encodings: number;
  maxInFlight: number;
}

export function encodeConfigure(options: ConfigureOptions): Bytes {
  const { quality, maxFps, encodings, maxInFlight } = options;
  if (!(quality >= 0 && quality <= 100 && maxFps >= 0 && maxFps <= MAX_FPS && maxInFlight >= 1 && maxInFlight <= MAX_IN_FLIGHT)) {
    throw new ScreenProtocolError("invalid_message", "configure out of range");
  }
  return message(MessageType.CONFIGURE, 5, (v) => {
    v.setUint8(1, quality);
    v.setUint8(2, maxFps);
    v.setUint16(3, encodings);
    v.setUint8(5, maxInFlight);
  });
}

export function encodeSelectMonitor(monitor: number): Bytes {
  return message(MessageType.SELECT_MONITOR, 1, (v) => v.setUint8(1, monitor & 0xff));
}

export function encodeRefresh(): Bytes {
  return message(MessageType.REFRESH, 0);
}

export function encodePointerMove(x: number, y: number): Bytes {
  return message(MessageType.POINTER_MOVE, 4, (v) => {
    v.setUint16(1, u16(x, "x"));
    v.setUint16(3, u16(y, "y"));
  });
}

export const PointerButton = { LEFT: 1, MIDDLE: 2, RIGHT: 3, BACK: 8, FORWARD: 9 } as const;
export type PointerButton = (typeof PointerButton)[keyof typeof PointerButton];

export function encodePointerButton(button: PointerButton, down: boolean, x: number, y: number): Bytes {
  return message(MessageType.POINTER_BUTTON, 6, (v) => {
    v.setUint8(1, button);
    v.setUint8(2, down ? 1 : 0);
    v.setUint16(3, u16(x, "x"));
    v.setUint16(5, u16(y, "y"));
  });
}

export function encodeWheel(dx: number, dy: number): Bytes {
  const clamp = (n: number): number => Math.max(-32768, Math.min(32767, Math.trunc(n)));
  return message(MessageType.WHEEL, 4, (v) => {
    v.setInt16(1, clamp(dx));
    v.setInt16(3, clamp(dy));
  });
}

export function encodeKey(keysym: number, down: boolean): Bytes {
  if (!Number.isInteger(keysym) || keysym <= 0 || keysym > 0x1fffffff) throw new ScreenProtocolError("invalid_message", `keysym ${keysym}`);
  return message(MessageType.KEY, 5, (v) => {
    v.setUint32(1, keysym);
    v.setUint8(5, down ? 1 : 0);
  });
}

export function encodeText(text: string): Bytes {
  const data = utf8(text);
  if (data.length > MAX_TEXT_BYTES) throw new ScreenProtocolError("message_too_large", `text of ${data.length} bytes`);
  const out = message(MessageType.TEXT, 2 + data.length, (v) => v.setUint16(1, data.length));
  out.set(data, 3);
  return out;
}

export function encodeReleaseAll(): Bytes {
  return message(MessageType.RELEASE_ALL, 0);
}

export function encodeClipboard(text: string): Bytes {
  const data = utf8(text);
  if (data.length > MAX_CLIPBOARD_BYTES) throw new ScreenProtocolError("message_too_large", `clipboard of ${data.length} bytes`);
  const out = message(MessageType.CLIPBOARD, 4 + data.length, (v) => v.setUint32(1, data.length));
  out.set(data, 5);
  return out;
}
