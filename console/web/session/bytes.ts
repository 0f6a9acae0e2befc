// Byte helpers for the session plane: strict base64url (as steun_protocol.auth), UTF-8, concatenation.

/** Bytes in a buffer of their own: what WebCrypto and WebSocket take. */
export type Bytes = Uint8Array<ArrayBuffer>;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** URL-safe base64 without padding (``b64encode`` in Python). */
export function b64urlEncode(data: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i]! << 16;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8);
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

export interface DecodeLimits {
  /** Exact decoded length demanded. */
  size?: number;
  /** Largest decoded length accepted (checked on the text before decoding). */
  limit?: number;
}

/**
 * Strict inverse of b64urlEncode, like ``b64decode`` in Python: no padding, no whitespace, canonical only
 * (the unused low bits of the last character must be zero), bounded before anything is allocated.
 */
export function b64urlDecode(text: string, limits: DecodeLimits = {}): Bytes {
  const limit = limits.limit ?? 384;
  if (typeof text !== "string" || text.length > Math.floor((limit * 4 + 2) / 3)) {
    throw new Error("base64 text too long or not a string");
  }
  if (text.length % 4 === 1) throw new Error("not base64url: impossible length");
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c]! : -1;
    if (v < 0) throw new Error("not base64url: bad character");
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 0xff;
    }
    value &= (1 << bits) - 1;
  }
  if (value !== 0) throw new Error("non-canonical base64url");
  if (limits.size !== undefined && out.length !== limits.size) {
    throw new Error(`expected ${limits.size} bytes, got ${out.length}`);
  }
  return out;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(text: string): Bytes {
  return encoder.encode(text);
}

/** Decodes UTF-8, throwing on invalid sequences (never substitutes U+FFFD). */
export function fromUtf8(data: Uint8Array): string {
  return strictDecoder.decode(data);
}

export function concat(...parts: Uint8Array[]): Bytes {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Equality that does not stop at the first difference (the inputs are public here, but habits matter). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** A copy backed by its own ArrayBuffer (WebCrypto and WebSocket want plain buffers, not views of others). */
export function own(data: Uint8Array | ArrayBuffer): Bytes {
  const view = data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(view.length);
  out.set(view);
  return out;
}

export function hex(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}
