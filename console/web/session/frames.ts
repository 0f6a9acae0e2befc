// Binary frames on the relay websocket, as steun_protocol/frames.py: type u8, flags u8, channel u16, length u32.

import type { Bytes } from "./bytes";

export const FrameType = { DATA: 0x01, SEALED: 0x02, CREDIT: 0x03, CLOSE: 0x04 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_SIZE = 8;
const MAX_FRAME_PAYLOAD = 1024 * 1024;
const MAX_PAYLOAD: Record<FrameType, number> = {
  [FrameType.DATA]: MAX_FRAME_PAYLOAD,
  [FrameType.SEALED]: MAX_FRAME_PAYLOAD,
  [FrameType.CREDIT]: 4,
  [FrameType.CLOSE]: 256,
};

export interface Frame {
  type: FrameType;
  channel: number;
  payload: Uint8Array;
  flags: number;
}

/** A frame that breaks the layout; `code` is the protocol's (bad_frame, message_too_large). */
export class FrameError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "FrameError";
    this.code = code;
  }
}

function isFrameType(value: number): value is FrameType {
  return value >= 0x01 && value <= 0x04;
}

export function encodeFrame(type: FrameType, channel: number, payload: Uint8Array, flags = 0): Bytes {
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) throw new FrameError("bad_frame", `channel ${channel}`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) throw new FrameError("bad_frame", `flags ${flags}`);
  if (payload.length > MAX_PAYLOAD[type]) {
    throw new FrameError("message_too_large", `payload of ${payload.length} bytes > ${MAX_PAYLOAD[type]}`);
  }
  const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  view.setUint8(1, flags);
  view.setUint16(2, channel);
  view.setUint32(4, payload.length);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/** Parses one websocket binary message; the announced length must equal what follows, within the type's cap. */
export function decodeFrame(data: ArrayBuffer | Uint8Array): Frame {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < FRAME_HEADER_SIZE) {
    throw new FrameError("bad_frame", `frame of ${bytes.length} bytes is shorter than its header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint8(0);
  if (!isFrameType(type)) throw new FrameError("bad_frame", `unknown frame type 0x${type.toString(16).padStart(2, "0")}`);
  const length = view.getUint32(4);
  if (length > MAX_PAYLOAD[type]) throw new FrameError("message_too_large", `frame announces ${length} bytes`);
  if (length !== bytes.length - FRAME_HEADER_SIZE) {
    throw new FrameError("bad_frame", `frame announces ${length} bytes but carries ${bytes.length - FRAME_HEADER_SIZE}`);
  }
  return { type, flags: view.getUint8(1), channel: view.getUint16(2), payload: bytes.subarray(FRAME_HEADER_SIZE) };
}
