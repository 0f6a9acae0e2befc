// Remote shell messages inside session DATA records on Channel.SHELL, as steun_protocol/shell.py.
//
// Every message starts with type u8, shell u16; fixed-width big-endian fields follow, variable parts come last
// behind a length checked against its cap before anything is copied, and a message must be consumed exactly.
// Errors carry Python's codes (malformed, message_too_large, unknown_type, invalid_message).

import { WireReader } from "./binary";
import { utf8, type Bytes } from "./bytes";

/** Largest DATA payload (bytes) in one message. */
export const MAX_DATA_BYTES = 64 * 1024;
/** Unacknowledged DATA bytes allowed per shell and direction. */
export const WINDOW = 256 * 1024;
export const MAX_TERM_SIDE = 4096;
export const MAX_TERM_NAME = 32;
export const MAX_COMMAND_BYTES = 4096;
export const MAX_ERROR_MESSAGE = 1024;
export const MAX_ERROR_CODE = 32;
/** Shells one session may run at once. */
export const MAX_SHELLS = 8;
/** OPEN flag: no terminal, stdin/stdout/stderr are pipes. */
export const PIPES = 0x01;

export const ShellMessageType = {
  OPEN: 0x01,
  DATA: 0x02,
  ACK: 0x03,
  RESIZE: 0x04,
  SIGNAL: 0x05,
  CLOSE: 0x06,
  EOF: 0x07,
  OPENED: 0x81,
  EXIT: 0x82,
  STDERR: 0x83,
  ERROR: 0x8f,
} as const;
export type ShellMessageType = (typeof ShellMessageType)[keyof typeof ShellMessageType];

/** Signals by their Linux numbers (the agent maps them to its platform's by name). */
export const Signal = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  WINCH: 28,
} as const;
export type Signal = (typeof Signal)[keyof typeof Signal];

/** What a console may ask the agent to send. */
export const SENDABLE_SIGNALS: ReadonlySet<number> = new Set<Signal>([
  Signal.HUP,
  Signal.INT,
  Signal.QUIT,
  Signal.KILL,
  Signal.USR1,
  Signal.USR2,
  Signal.TERM,
  Signal.CONT,
  Signal.STOP,
  Signal.TSTP,
  Signal.WINCH,
]);

/** The name of a (Linux-numbered) signal, or its number when it has none here. */
export function signalName(value: number): string {
  for (const [name, number] of Object.entries(Signal)) if (number === value) return `SIG${name}`;
  return String(value);
}

export type ShellMessage =
  | { kind: "open"; shell: number; cols: number; rows: number; term: string; command: string; pipes: boolean }
  | { kind: "data"; shell: number; data: Uint8Array }
  | { kind: "ack"; shell: number; nbytes: number }
  | { kind: "resize"; shell: number; cols: number; rows: number }
  | { kind: "signal"; shell: number; signal: number }
  | { kind: "close"; shell: number }
  | { kind: "eof"; shell: number }
  | { kind: "stderr"; shell: number; data: Uint8Array }
  | { kind: "opened"; shell: number; pid: number }
  | { kind: "exit"; shell: number; status: number; signal: number }
  | { kind: "error"; shell: number; code: string; message: string };

export type ConsoleShellMessage = Extract<ShellMessage, { kind: "open" | "data" | "ack" | "resize" | "signal" | "close" | "eof" }>;
export type AgentShellMessage = Extract<ShellMessage, { kind: "data" | "stderr" | "ack" | "opened" | "exit" | "error" }>;

const TYPE_OF: Record<ShellMessage["kind"], ShellMessageType> = {
  open: ShellMessageType.OPEN,
  data: ShellMessageType.DATA,
  ack: ShellMessageType.ACK,
  resize: ShellMessageType.RESIZE,
  signal: ShellMessageType.SIGNAL,
  close: ShellMessageType.CLOSE,
  eof: ShellMessageType.EOF,
  stderr: ShellMessageType.STDERR,
  opened: ShellMessageType.OPENED,
  exit: ShellMessageType.EXIT,
  error: ShellMessageType.ERROR,
};

export const CONSOLE_TYPES: ReadonlySet<number> = new Set<number>([
  ShellMessageType.OPEN,
  ShellMessageType.DATA,
  ShellMessageType.ACK,
  ShellMessageType.RESIZE,
  ShellMessageType.SIGNAL,
  ShellMessageType.CLOSE,
  ShellMessageType.EOF,
]);
export const AGENT_TYPES: ReadonlySet<number> = new Set<number>([
  ShellMessageType.DATA,
  ShellMessageType.STDERR,
  ShellMessageType.ACK,
  ShellMessageType.OPENED,
  ShellMessageType.EXIT,
  ShellMessageType.ERROR,
]);

const TERM_NAME = /^[A-Za-z0-9._+-]+$/;
const ERROR_CODE = /^[a-z_]+$/;

export class ShellProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "ShellProtocolError";
    this.code = code;
  }
}

// ------------------------------------------------------------------------------------------------- encoding

function check(ok: boolean, what: string): void {
  if (!ok) throw new ShellProtocolError("invalid_message", what);
}

function tooLarge(length: number, cap: number, what: string): void {
  if (length > cap) throw new ShellProtocolError("message_too_large", `${what} of ${length} bytes > ${cap}`);
}

function uint(value: number, max: number, what: string): number {
  check(Number.isInteger(value) && value >= 0 && value <= max, `${what} ${value}`);
  return value;
}

function sideOk(cols: number, rows: number): boolean {
  return Number.isInteger(cols) && Number.isInteger(rows) && cols >= 1 && cols <= MAX_TERM_SIDE && rows >= 1 && rows <= MAX_TERM_SIDE;
}

/** An error code on the wire: 1..MAX_ERROR_CODE characters of [a-z_]. */
export function validCode(code: string): boolean {
  return code.length >= 1 && code.length <= MAX_ERROR_CODE && ERROR_CODE.test(code);
}

/** `text` as UTF-8, cut to at most `cap` bytes on a character boundary (for human messages). */
export function truncateUtf8(text: string, cap: number): Bytes {
  const data = utf8(text);
  if (data.length <= cap) return data;
  let end = cap;
  // Back up over continuation bytes (10xxxxxx) to the start of the character that does not fit.
  while (end > 0 && (data[end]! & 0xc0) === 0x80) end -= 1;
  return data.slice(0, end);
}

class Writer {
  readonly out: Bytes;
  private readonly view: DataView;
  private pos = 0;
  constructor(size: number) {
    this.out = new Uint8Array(size);
    this.view = new DataView(this.out.buffer);
  }
  u8(value: number): this {
    this.view.setUint8(this.pos, value);
    this.pos += 1;
    return this;
  }
  u16(value: number): this {
    this.view.setUint16(this.pos, value);
    this.pos += 2;
    return this;
  }
  u32(value: number): this {
    this.view.setUint32(this.pos, value);
    this.pos += 4;
    return this;
  }
  bytes(data: Uint8Array): this {
    this.out.set(data, this.pos);
    this.pos += data.length;
    return this;
  }
}

function head(kind: ShellMessage["kind"], shell: number, size: number): Writer {
  return new Writer(3 + size).u8(TYPE_OF[kind]).u16(uint(shell, 0xffff, "shell id"));
}

/** Serialise one message; throws ShellProtocolError for values outside the layout or its caps. */
export function encode(message: ShellMessage): Bytes {
  switch (message.kind) {
    case "open": {
      const { cols, rows, term, command, pipes } = message;
      check(sideOk(cols, rows), `terminal ${cols}x${rows}`);
      check(term.length <= MAX_TERM_NAME && TERM_NAME.test(term), `TERM ${JSON.stringify(term)}`);
      const cmd = utf8(command);
      tooLarge(cmd.length, MAX_COMMAND_BYTES, "command");
      check(!command.includes("\0"), "command contains NUL");
      return head("open", message.shell, 6 + term.length + 2 + cmd.length)
        .u16(cols)
        .u16(rows)
        .u8(pipes ? PIPES : 0)
        .u8(term.length)
        .bytes(utf8(term))
        .u16(cmd.length)
        .bytes(cmd).out;
    }
    case "data":
    case "stderr": {
      check(message.data.length > 0, "empty DATA");
      tooLarge(message.data.length, MAX_DATA_BYTES, "shell data");
      return head(message.kind, message.shell, 4 + message.data.length).u32(message.data.length).bytes(message.data).out;
    }
    case "ack":
      return head("ack", message.shell, 4).u32(uint(message.nbytes, 0xffffffff, "ack bytes")).out;
    case "resize":
      check(sideOk(message.cols, message.rows), `terminal ${message.cols}x${message.rows}`);
      return head("resize", message.shell, 4).u16(message.cols).u16(message.rows).out;
    case "signal":
      check(SENDABLE_SIGNALS.has(message.signal), `signal ${message.signal} cannot be sent`);
      return head("signal", message.shell, 1).u8(message.signal).out;
    case "close":
    case "eof":
      return head(message.kind, message.shell, 0).out;
    case "opened":
      return head("opened", message.shell, 4).u32(uint(message.pid, 0xffffffff, "pid")).out;
    case "exit":
      check(message.signal === 0 || message.status === 0, "a shell ended by a signal has no status");
      return head("exit", message.shell, 2).u8(uint(message.status, 0xff, "status")).u8(uint(message.signal, 0xff, "signal")).out;
    case "error": {
      check(validCode(message.code), `error code ${JSON.stringify(message.code)}`);
      const text = truncateUtf8(message.message, MAX_ERROR_MESSAGE);
      return head("error", message.shell, 1 + message.code.length + 2 + text.length)
        .u8(message.code.length)
        .bytes(utf8(message.code))
        .u16(text.length)
        .bytes(text).out;
    }
  }
}

export const encodeOpen = (shell: number, cols: number, rows: number, term = "xterm-256color", command = "", pipes = false): Bytes =>
  encode({ kind: "open", shell, cols, rows, term, command, pipes });
export const encodeData = (shell: number, data: Uint8Array): Bytes => encode({ kind: "data", shell, data });
export const encodeAck = (shell: number, nbytes: number): Bytes => encode({ kind: "ack", shell, nbytes });
export const encodeResize = (shell: number, cols: number, rows: number): Bytes => encode({ kind: "resize", shell, cols, rows });
export const encodeSignal = (shell: number, signal: Signal): Bytes => encode({ kind: "signal", shell, signal });
export const encodeClose = (shell: number): Bytes => encode({ kind: "close", shell });
export const encodeEof = (shell: number): Bytes => encode({ kind: "eof", shell });

// ------------------------------------------------------------------------------------------------- decoding


function invalid(ok: boolean, what: string): void {
  if (!ok) throw new ShellProtocolError("invalid_message", what);
}

const KNOWN_TYPES: ReadonlySet<number> = new Set<number>(Object.values(ShellMessageType));

/** Parse one message; `allowed` restricts the types (see decodeFromAgent / decodeFromConsole). */
export function decode(data: Uint8Array, allowed: ReadonlySet<number> | null = null): ShellMessage {
  if (data.length === 0) throw new ShellProtocolError("malformed", "empty message");
  const type = data[0]!;
  if (!KNOWN_TYPES.has(type)) throw new ShellProtocolError("unknown_type", `unknown shell message 0x${type.toString(16).padStart(2, "0")}`);
  if (allowed !== null && !allowed.has(type)) {
    throw new ShellProtocolError("unknown_type", `shell message 0x${type.toString(16)} is not sent in this direction`);
  }
  const r = new WireReader(data, (code, message) => new ShellProtocolError(code, message));
  const shell = r.u16();
  let message: ShellMessage;
  switch (type) {
    case ShellMessageType.OPEN: {
      const cols = r.u16();
      const rows = r.u16();
      const flags = r.u8();
      const termLength = r.u8();
      invalid(sideOk(cols, rows), `terminal ${cols}x${rows}`);
      invalid((flags & ~PIPES) === 0, `unknown OPEN flags 0x${flags.toString(16)}`);
      invalid(termLength >= 1, "empty TERM");
      const term = r.text(termLength, MAX_TERM_NAME, "TERM");
      invalid(TERM_NAME.test(term), "TERM has characters outside [A-Za-z0-9._+-]");
      const command = r.text(r.u16(), MAX_COMMAND_BYTES, "command");
      invalid(!command.includes("\0"), "command contains NUL");
      message = { kind: "open", shell, cols, rows, term, command, pipes: (flags & PIPES) !== 0 };
      break;
    }
    case ShellMessageType.DATA:
    case ShellMessageType.STDERR: {
      const length = r.u32();
      const stderr = type === ShellMessageType.STDERR;
      invalid(length > 0, stderr ? "empty STDERR" : "empty DATA");
      message = { kind: stderr ? "stderr" : "data", shell, data: r.raw(length, MAX_DATA_BYTES, stderr ? "shell stderr" : "shell data").slice() };
      break;
    }
    case ShellMessageType.ACK:
      message = { kind: "ack", shell, nbytes: r.u32() };
      break;
    case ShellMessageType.RESIZE: {
      const cols = r.u16();
      const rows = r.u16();
      invalid(sideOk(cols, rows), `terminal ${cols}x${rows}`);
      message = { kind: "resize", shell, cols, rows };
      break;
    }
    case ShellMessageType.SIGNAL: {
      const signal = r.u8();
      invalid(Object.values(Signal).includes(signal as Signal), `unknown signal ${signal}`);
      invalid(SENDABLE_SIGNALS.has(signal), `signal ${signalName(signal)} cannot be sent`);
      message = { kind: "signal", shell, signal };
      break;
    }
    case ShellMessageType.CLOSE:
      message = { kind: "close", shell };
      break;
    case ShellMessageType.EOF:
      message = { kind: "eof", shell };
      break;
    case ShellMessageType.OPENED:
      message = { kind: "opened", shell, pid: r.u32() };
      break;
    case ShellMessageType.EXIT: {
      const status = r.u8();
      const signal = r.u8();
      invalid(signal === 0 || status === 0, "a shell ended by a signal has no status");
      message = { kind: "exit", shell, status, signal };
      break;
    }
    case ShellMessageType.ERROR: {
      const codeLength = r.u8();
      invalid(codeLength >= 1, "empty error code");
      const code = r.text(codeLength, MAX_ERROR_CODE, "error code");
      invalid(validCode(code), "error code has characters outside [a-z_]");
      message = { kind: "error", shell, code, message: r.text(r.u16(), MAX_ERROR_MESSAGE, "error message") };
      break;
    }
    default:
      throw new ShellProtocolError("unknown_type", `unknown shell message 0x${type.toString(16)}`);
  }
  r.end();
  return message;
}

/** What a console accepts. */
export function decodeFromAgent(data: Uint8Array): AgentShellMessage {
  return decode(data, AGENT_TYPES) as AgentShellMessage;
}

/** What an agent accepts. */
export function decodeFromConsole(data: Uint8Array): ConsoleShellMessage {
  return decode(data, CONSOLE_TYPES) as ConsoleShellMessage;
}
