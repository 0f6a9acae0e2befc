// One bounded reader for the binary channel formats (screen, shell, files, chat), as steun_protocol.binary is
// for the Python side: every length is checked against its cap and against what is left before anything is
// read, text must be UTF-8, and nothing may trail. Each format keeps its own error class (the factory).

import { fromUtf8 } from "./bytes";

/** Makes a format's error: `malformed`, `message_too_large`, ... with a message for the log. */
export type WireError = (code: string, message: string) => Error;

export class WireReader {
  readonly view: DataView;
  private pos: number;

  /** `start`: bytes already read by the caller (the type byte; files also reads its id). */
  constructor(
    private readonly bytes: Uint8Array,
    private readonly fail: WireError,
    start = 1,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  /** Claims `size` bytes of fixed fields at once (as struct.unpack_from): truncation is found before values. */
  fixed(size: number): number {
    if (this.bytes.length - this.pos < size) throw this.fail("malformed", "message is truncated");
    const at = this.pos;
    this.pos += size;
    return at;
  }
  u8(): number {
    return this.view.getUint8(this.fixed(1));
  }
  u16(): number {
    return this.view.getUint16(this.fixed(2));
  }
  u32(): number {
    return this.view.getUint32(this.fixed(4));
  }
  i32(): number {
    return this.view.getInt32(this.fixed(4));
  }
  f64(): number {
    return this.view.getFloat64(this.fixed(8));
  }
  /** `length` bytes, refused above `cap`; a view into the message (copy it to keep it). */
  raw(length: number, cap: number, what: string): Uint8Array {
    if (length > cap) throw this.fail("message_too_large", `${what} of ${length} bytes > ${cap}`);
    if (this.bytes.length - this.pos < length) throw this.fail("malformed", `${what} is truncated`);
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
  text(length: number, cap: number, what: string): string {
    const data = this.raw(length, cap, what);
    try {
      return fromUtf8(data);
    } catch {
      throw this.fail("malformed", `${what} is not UTF-8`);
    }
  }
  end(): void {
    if (this.pos !== this.bytes.length) throw this.fail("malformed", `${this.bytes.length - this.pos} trailing bytes`);
  }
}
