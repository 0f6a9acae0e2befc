// File-channel messages inside session DATA records (Channel.FILES), byte for byte as steun_protocol/files.py.
//
// Every message starts with ``type u8, id u32``; fixed-width big-endian fields come first (u64 sizes and offsets
// are at most 2^53 − 1, so a JavaScript number holds them exactly; times are f64 Unix seconds), variable parts
// last behind a length that is checked against its cap before anything is copied, and a message must be
// consumed exactly. Errors carry Python's codes (malformed, message_too_large, unknown_type, invalid_message).
// The tables of fields are in files.py's docstring; this file follows it field for field.

import { WireReader } from "./binary";
import { utf8, type Bytes } from "./bytes";

/** Largest CHUNK payload. */
export const MAX_CHUNK = 256 * 1024;
/** Largest initial window / outstanding credit per transfer. */
export const MAX_WINDOW = 16 * 1024 * 1024;
/** What a receiver grants when it has no better idea (8 chunks in flight). */
export const DEFAULT_WINDOW = 2 * 1024 * 1024;
/** Transfers one session may run at once (the agent refuses more with too_many_transfers). */
export const MAX_TRANSFERS = 8;
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 1024;
export const MAX_PAGE_ENTRIES = 256;
export const MAX_LIST_ENTRIES = 100_000;
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER; // 2^53 − 1
export const SHA256_SIZE = 32;
export const MAX_ERROR_CODE = 32;
export const MAX_ERROR_MESSAGE = 1024;
/** Bytes of a CHUNK message before its data. */
export const CHUNK_HEADER_SIZE = 1 + 4 + 8 + 4;
const ZERO_HASH = new Uint8Array(SHA256_SIZE);

export const MessageType = {
  LIST: 0x01,
  STAT: 0x02,
  DOWNLOAD: 0x03,
  UPLOAD: 0x04,
  FINISH: 0x05,
  MKDIR: 0x06,
  REMOVE: 0x07,
  RENAME: 0x08,
  CHUNK: 0x10,
  CREDIT: 0x11,
  CANCEL: 0x12,
  ENTRIES: 0x81,
  STAT_RESULT: 0x82,
  DOWNLOAD_META: 0x83,
  DOWNLOAD_END: 0x84,
  UPLOAD_READY: 0x85,
  UPLOAD_DONE: 0x86,
  DONE: 0x87,
  ERROR: 0x8f,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const BOTH_TYPES: readonly number[] = [MessageType.CHUNK, MessageType.CREDIT, MessageType.CANCEL];
const CONSOLE_TYPES: readonly number[] = [
  ...BOTH_TYPES,
  MessageType.LIST,
  MessageType.STAT,
  MessageType.DOWNLOAD,
  MessageType.UPLOAD,
  MessageType.FINISH,
  MessageType.MKDIR,
  MessageType.REMOVE,
  MessageType.RENAME,
];
const ALL_TYPES: readonly number[] = Object.values(MessageType);
const AGENT_TYPES: readonly number[] = ALL_TYPES.filter((t) => !CONSOLE_TYPES.includes(t) || BOTH_TYPES.includes(t));

export const EntryKind = { FILE: 1, DIRECTORY: 2, SYMLINK: 3, OTHER: 4 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** What an upload does when the target exists. */
export const Overwrite = { FAIL: 0, REPLACE: 1 } as const;
export type Overwrite = (typeof Overwrite)[keyof typeof Overwrite];

/** What a REMOVE expects to find: anything (a file, a link or an empty directory), not a directory, a directory. */
export const Removal = { ANY: 0, NOT_DIRECTORY: 1, DIRECTORY: 2 } as const;
export type Removal = (typeof Removal)[keyof typeof Removal];

/** Stable codes of files ERROR messages (FileErrorCode); the agent may add codes, so a code is any string. */
export const FILE_ERROR_CODES = [
  "path_invalid",
  "path_outside_root",
  "symlink_escape",
  "not_found",
  "permission_denied",
  "exists",
  "not_a_directory",
  "not_a_file",
  "hash_mismatch",
  "file_changed",
  "no_space",
  "io_error",
  "cancelled",
  "too_many_transfers",
  "id_in_use",
  "busy",
  "transfer_unknown",
  "flow_violation",
  "invalid",
  "closed",
  "not_empty",
] as const;
export type FileErrorCode = (typeof FILE_ERROR_CODES)[number];

export interface Entry {
  name: string;
  kind: EntryKind;
  size: number;
  mtime: number;
  mode: number;
  /** The name is not valid UTF-8 on disk and is shown with U+FFFD: it cannot be addressed. */
  nameLossy: boolean;
}

export type ConsoleMessage =
  | { kind: "list"; id: number; path: string }
  | { kind: "stat"; id: number; path: string }
  | { kind: "download"; id: number; path: string; offset: number; window: number }
  | {
      kind: "upload";
      id: number;
      path: string;
      size: number;
      sha256: Uint8Array | null;
      overwrite: Overwrite;
      resume: boolean;
      mtime: number;
    }
  | { kind: "finish"; id: number; sha256: Uint8Array }
  | { kind: "mkdir"; id: number; path: string }
  | { kind: "remove"; id: number; path: string; what: Removal }
  | { kind: "rename"; id: number; source: string; target: string; overwrite: Overwrite };

export type BothMessage =
  | { kind: "chunk"; id: number; offset: number; data: Uint8Array }
  | { kind: "credit"; id: number; nbytes: number }
  | { kind: "cancel"; id: number };

export type AgentOnlyMessage =
  | { kind: "entries"; id: number; entries: Entry[]; last: boolean; truncated: boolean }
  | { kind: "stat_result"; id: number; entry: Entry }
  | { kind: "download_meta"; id: number; size: number; mtime: number; offset: number; sha256: Uint8Array | null }
  | { kind: "download_end"; id: number; sha256: Uint8Array }
  | { kind: "upload_ready"; id: number; offset: number; window: number }
  | { kind: "upload_done"; id: number; sha256: Uint8Array }
  | { kind: "done"; id: number }
  | { kind: "error"; id: number; code: string; message: string };

export type AgentMessage = AgentOnlyMessage | BothMessage;
export type FilesMessage = ConsoleMessage | AgentMessage;

export class FilesProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "FilesProtocolError";
    this.code = code;
  }
}

// ------------------------------------------------------------------------------------------------ decoding


function invalid(ok: boolean, what: string): void {
  if (!ok) throw new FilesProtocolError("invalid_message", what);
}

function validCode(code: string): boolean {
  return code.length >= 1 && code.length <= MAX_ERROR_CODE && /^[a-z_]+$/.test(code);
}

function readPath(r: WireReader): string {
  const at = r.fixed(2);
  return r.text(r.view.getUint16(at), MAX_PATH_BYTES, "path");
}

function readHash(r: WireReader): Uint8Array {
  return r.raw(SHA256_SIZE, SHA256_SIZE, "sha256");
}

function isZero(data: Uint8Array): boolean {
  return data.every((b) => b === 0);
}

function readEntry(r: WireReader): Entry {
  const at = r.fixed(1 + 1 + 2 + 8 + 8 + 2);
  const kind = r.view.getUint8(at);
  const flags = r.view.getUint8(at + 1);
  const mode = r.view.getUint16(at + 2);
  const size = Number(r.view.getBigUint64(at + 4));
  const mtime = r.view.getFloat64(at + 12);
  const nameLength = r.view.getUint16(at + 20);
  invalid(kind >= EntryKind.FILE && kind <= EntryKind.OTHER, `unknown entry kind ${kind}`);
  invalid(flags <= 1, `entry flags ${flags}`);
  invalid(size <= MAX_FILE_SIZE && Number.isFinite(mtime), "entry size or mtime");
  const name = r.text(nameLength, MAX_NAME_BYTES, "entry name");
  return { name, kind: kind as EntryKind, size, mtime, mode, nameLossy: flags === 1 };
}

function decodeBody(type: number, id: number, r: WireReader): FilesMessage {
  switch (type) {
    case MessageType.LIST:
      return { kind: "list", id, path: readPath(r) };
    case MessageType.STAT:
      return { kind: "stat", id, path: readPath(r) };
    case MessageType.DOWNLOAD: {
      const at = r.fixed(12);
      const offset = Number(r.view.getBigUint64(at));
      const window = r.view.getUint32(at + 8);
      invalid(offset <= MAX_FILE_SIZE, `offset ${offset}`);
      invalid(window >= 1 && window <= MAX_WINDOW, `window ${window}`);
      return { kind: "download", id, path: readPath(r), offset, window };
    }
    case MessageType.UPLOAD: {
      const at = r.fixed(18);
      const size = Number(r.view.getBigUint64(at));
      const mtime = r.view.getFloat64(at + 8);
      const flags = r.view.getUint8(at + 16);
      const policy = r.view.getUint8(at + 17);
      invalid(size <= MAX_FILE_SIZE && Number.isFinite(mtime), "size or mtime");
      invalid(flags <= 3, `upload flags ${flags}`);
      invalid(policy === Overwrite.FAIL || policy === Overwrite.REPLACE, `unknown overwrite policy ${policy}`);
      const digest = readHash(r);
      invalid((flags & 1) === 1 || isZero(digest), "a hash without its flag");
      const path = readPath(r);
      return {
        kind: "upload",
        id,
        path,
        size,
        sha256: flags & 1 ? digest : null,
        overwrite: policy as Overwrite,
        resume: (flags & 2) !== 0,
        mtime,
      };
    }
    case MessageType.FINISH:
      return { kind: "finish", id, sha256: readHash(r) };
    case MessageType.MKDIR:
      return { kind: "mkdir", id, path: readPath(r) };
    case MessageType.REMOVE: {
      const what = r.u8();
      invalid(what <= Removal.DIRECTORY, `unknown removal ${what}`);
      return { kind: "remove", id, path: readPath(r), what: what as Removal };
    }
    case MessageType.RENAME: {
      const policy = r.u8();
      invalid(policy === Overwrite.FAIL || policy === Overwrite.REPLACE, `unknown overwrite policy ${policy}`);
      const source = readPath(r);
      return { kind: "rename", id, source, target: readPath(r), overwrite: policy as Overwrite };
    }
    case MessageType.CHUNK: {
      const at = r.fixed(12);
      const offset = Number(r.view.getBigUint64(at));
      const length = r.view.getUint32(at + 8);
      invalid(offset <= MAX_FILE_SIZE, `offset ${offset}`);
      invalid(length > 0, "empty chunk");
      return { kind: "chunk", id, offset, data: r.raw(length, MAX_CHUNK, "chunk") };
    }
    case MessageType.CREDIT:
      return { kind: "credit", id, nbytes: r.u32() };
    case MessageType.CANCEL:
      return { kind: "cancel", id };
    case MessageType.ENTRIES: {
      const at = r.fixed(3);
      const flags = r.view.getUint8(at);
      const count = r.view.getUint16(at + 1);
      invalid(flags <= 3, `entries flags ${flags}`);
      invalid(count <= MAX_PAGE_ENTRIES, `${count} entries in one page`);
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) entries.push(readEntry(r));
      return { kind: "entries", id, entries, last: (flags & 1) !== 0, truncated: (flags & 2) !== 0 };
    }
    case MessageType.STAT_RESULT:
      return { kind: "stat_result", id, entry: readEntry(r) };
    case MessageType.DOWNLOAD_META: {
      const at = r.fixed(25);
      const size = Number(r.view.getBigUint64(at));
      const mtime = r.view.getFloat64(at + 8);
      const offset = Number(r.view.getBigUint64(at + 16));
      const flags = r.view.getUint8(at + 24);
      invalid(offset <= size && size <= MAX_FILE_SIZE && Number.isFinite(mtime), "size, offset or mtime");
      invalid(flags <= 1, `meta flags ${flags}`);
      const digest = readHash(r);
      invalid(flags === 1 || isZero(digest), "a hash without its flag");
      return { kind: "download_meta", id, size, mtime, offset, sha256: flags ? digest : null };
    }
    case MessageType.DOWNLOAD_END:
      return { kind: "download_end", id, sha256: readHash(r) };
    case MessageType.UPLOAD_READY: {
      const at = r.fixed(12);
      const offset = Number(r.view.getBigUint64(at));
      const window = r.view.getUint32(at + 8);
      invalid(offset <= MAX_FILE_SIZE && window >= 1 && window <= MAX_WINDOW, "offset or window");
      return { kind: "upload_ready", id, offset, window };
    }
    case MessageType.UPLOAD_DONE:
      return { kind: "upload_done", id, sha256: readHash(r) };
    case MessageType.DONE:
      return { kind: "done", id };
    case MessageType.ERROR: {
      const codeLength = r.u8();
      invalid(codeLength >= 1, "empty error code");
      const code = r.text(codeLength, MAX_ERROR_CODE, "error code");
      invalid(validCode(code), "error code has characters outside [a-z_]");
      const messageLength = r.u16();
      return { kind: "error", id, code, message: r.text(messageLength, MAX_ERROR_MESSAGE, "error message") };
    }
    default:
      throw new FilesProtocolError("unknown_type", `unknown files message 0x${type.toString(16).padStart(2, "0")}`);
  }
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(MessageType).map(([name, type]) => [type, name]));

/** Parse one message; ``allowed`` restricts the types to one direction (see decodeFromAgent / decodeFromConsole). */
export function decode(data: Uint8Array, allowed: readonly number[] | null = null): FilesMessage {
  if (data.length === 0) throw new FilesProtocolError("malformed", "empty message");
  const type = data[0]!;
  if (!ALL_TYPES.includes(type)) {
    throw new FilesProtocolError("unknown_type", `unknown files message 0x${type.toString(16).padStart(2, "0")}`);
  }
  if (allowed !== null && !allowed.includes(type)) {
    throw new FilesProtocolError("unknown_type", `${NAMES[type] ?? type} is not sent in this direction`);
  }
  if (data.length < 5) throw new FilesProtocolError("malformed", "message is truncated");
  const id = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  const r = new WireReader(data, (code, message) => new FilesProtocolError(code, message), 5);
  const message = decodeBody(type, id, r);
  r.end();
  return message;
}

/** What a console accepts from an agent (``decode_from_agent``). */
export function decodeFromAgent(data: Uint8Array): AgentMessage {
  return decode(data, AGENT_TYPES) as AgentMessage;
}

/** What an agent accepts (``decode_from_console``); the console uses it only in tests. */
export function decodeFromConsole(data: Uint8Array): ConsoleMessage | BothMessage {
  return decode(data, CONSOLE_TYPES) as ConsoleMessage | BothMessage;
}

// ------------------------------------------------------------------------------------------------ encoding

function check(ok: boolean, what: string): void {
  if (!ok) throw new FilesProtocolError("invalid_message", what);
}

function u64ok(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= MAX_FILE_SIZE;
}

function pathBytes(path: string): Bytes {
  const data = utf8(path);
  if (data.length > MAX_PATH_BYTES) {
    throw new FilesProtocolError("message_too_large", `path of ${data.length} bytes > ${MAX_PATH_BYTES}`);
  }
  return data;
}

function hashBytes(value: Uint8Array): Uint8Array {
  check(value.length === SHA256_SIZE, "a SHA-256 is 32 bytes");
  return value;
}

/** ``text`` as UTF-8, cut to at most ``cap`` bytes on a character boundary (truncate_utf8 in Python). */
export function truncateUtf8(text: string, cap: number): Bytes {
  const data = utf8(text);
  if (data.length <= cap) return data;
  let end = cap;
  // Step back over continuation bytes (10xxxxxx) to the start of the character that does not fit.
  while (end > 0 && (data[end]! & 0xc0) === 0x80) end--;
  return data.slice(0, end);
}

/** Writes fixed fields and variable parts into one buffer, in order. */
class Writer {
  private readonly parts: { size: number; put: (view: DataView, out: Uint8Array, at: number) => void }[] = [];
  private size = 0;
  private add(size: number, put: (view: DataView, out: Uint8Array, at: number) => void): this {
    this.parts.push({ size, put });
    this.size += size;
    return this;
  }
  u8(value: number): this {
    return this.add(1, (v, _o, at) => v.setUint8(at, value));
  }
  u16(value: number): this {
    return this.add(2, (v, _o, at) => v.setUint16(at, value));
  }
  u32(value: number): this {
    check(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, `u32 ${value}`);
    return this.add(4, (v, _o, at) => v.setUint32(at, value));
  }
  u64(value: number): this {
    return this.add(8, (v, _o, at) => v.setBigUint64(at, BigInt(value)));
  }
  f64(value: number): this {
    return this.add(8, (v, _o, at) => v.setFloat64(at, value));
  }
  bytes(data: Uint8Array): this {
    return this.add(data.length, (_v, out, at) => out.set(data, at));
  }
  /** u16 length, then the bytes. */
  short(data: Uint8Array): this {
    return this.u16(data.length).bytes(data);
  }
  finish(): Bytes {
    const out = new Uint8Array(this.size);
    const view = new DataView(out.buffer);
    let at = 0;
    for (const part of this.parts) {
      part.put(view, out, at);
      at += part.size;
    }
    return out;
  }
}

function entryBytes(w: Writer, entry: Entry): void {
  const name = truncateUtf8(entry.name, MAX_NAME_BYTES);
  check(u64ok(entry.size) && Number.isFinite(entry.mtime), `entry ${entry.name}`);
  check(entry.kind >= EntryKind.FILE && entry.kind <= EntryKind.OTHER, `entry kind ${entry.kind}`);
  w.u8(entry.kind).u8(entry.nameLossy ? 1 : 0).u16(entry.mode & 0xffff).u64(entry.size).f64(entry.mtime).short(name);
}

const TYPE_OF: Record<FilesMessage["kind"], number> = {
  list: MessageType.LIST,
  stat: MessageType.STAT,
  download: MessageType.DOWNLOAD,
  upload: MessageType.UPLOAD,
  finish: MessageType.FINISH,
  mkdir: MessageType.MKDIR,
  remove: MessageType.REMOVE,
  rename: MessageType.RENAME,
  chunk: MessageType.CHUNK,
  credit: MessageType.CREDIT,
  cancel: MessageType.CANCEL,
  entries: MessageType.ENTRIES,
  stat_result: MessageType.STAT_RESULT,
  download_meta: MessageType.DOWNLOAD_META,
  download_end: MessageType.DOWNLOAD_END,
  upload_ready: MessageType.UPLOAD_READY,
  upload_done: MessageType.UPLOAD_DONE,
  done: MessageType.DONE,
  error: MessageType.ERROR,
};

/** Serialise one message; throws FilesProtocolError for values outside the layout or its caps (as encode()). */
export function encode(message: FilesMessage): Bytes {
  check(Number.isInteger(message.id) && message.id >= 0 && message.id <= 0xffff_ffff, `id ${message.id}`);
  const w = new Writer().u8(TYPE_OF[message.kind]).u32(message.id);
  switch (message.kind) {
    case "list":
    case "stat":
    case "mkdir":
      return w.short(pathBytes(message.path)).finish();
    case "remove":
      check(message.what >= Removal.ANY && message.what <= Removal.DIRECTORY, `removal ${message.what}`);
      return w.u8(message.what).short(pathBytes(message.path)).finish();
    case "rename":
      check(message.overwrite === Overwrite.FAIL || message.overwrite === Overwrite.REPLACE, "overwrite");
      return w.u8(message.overwrite).short(pathBytes(message.source)).short(pathBytes(message.target)).finish();
    case "download":
      check(u64ok(message.offset) && message.window >= 1 && message.window <= MAX_WINDOW, "offset or window");
      return w.u64(message.offset).u32(message.window).short(pathBytes(message.path)).finish();
    case "upload": {
      check(u64ok(message.size) && Number.isFinite(message.mtime), "size or mtime");
      const flags = (message.sha256 !== null ? 1 : 0) | (message.resume ? 2 : 0);
      const digest = message.sha256 !== null ? hashBytes(message.sha256) : ZERO_HASH;
      check(message.overwrite === Overwrite.FAIL || message.overwrite === Overwrite.REPLACE, "overwrite");
      return w.u64(message.size).f64(message.mtime).u8(flags).u8(message.overwrite).bytes(digest).short(pathBytes(message.path)).finish();
    }
    case "finish":
    case "download_end":
    case "upload_done":
      return w.bytes(hashBytes(message.sha256)).finish();
    case "chunk":
      check(u64ok(message.offset) && message.data.length > 0, "chunk offset or empty chunk");
      if (message.data.length > MAX_CHUNK) {
        throw new FilesProtocolError("message_too_large", `chunk of ${message.data.length} bytes`);
      }
      return w.u64(message.offset).u32(message.data.length).bytes(message.data).finish();
    case "credit":
      return w.u32(message.nbytes).finish();
    case "cancel":
    case "done":
      return w.finish();
    case "entries": {
      check(message.entries.length <= MAX_PAGE_ENTRIES, `${message.entries.length} entries in one page`);
      w.u8((message.last ? 1 : 0) | (message.truncated ? 2 : 0)).u16(message.entries.length);
      for (const entry of message.entries) entryBytes(w, entry);
      return w.finish();
    }
    case "stat_result":
      entryBytes(w, message.entry);
      return w.finish();
    case "download_meta": {
      const { size, offset, mtime, sha256 } = message;
      check(u64ok(size) && u64ok(offset) && offset <= size && Number.isFinite(mtime), "size, offset or mtime");
      const digest = sha256 !== null ? hashBytes(sha256) : ZERO_HASH;
      return w.u64(size).f64(mtime).u64(offset).u8(sha256 !== null ? 1 : 0).bytes(digest).finish();
    }
    case "upload_ready":
      check(u64ok(message.offset) && message.window >= 1 && message.window <= MAX_WINDOW, "offset or window");
      return w.u64(message.offset).u32(message.window).finish();
    case "error": {
      check(validCode(message.code), `error code ${message.code}`);
      return w.u8(message.code.length).bytes(utf8(message.code)).short(truncateUtf8(message.message, MAX_ERROR_MESSAGE)).finish();
    }
  }
}
