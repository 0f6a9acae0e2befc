// Chat messages inside session DATA records on Channel.CHAT, as steun_protocol/chat.py: text, canned phrases,
// typing and read marks.
//
// type u8 first, fixed-width big-endian fields, the text last behind a length checked before anything is
// copied, no trailing bytes. A console sends only TECHNICIAN messages and accepts only USER ones. Text with
// control characters (other than tab and newline) is refused, so nothing can smuggle escapes into a transcript.

import { WireReader } from "./binary";
import { utf8, type Bytes } from "./bytes";

/** Longest message text (UTF-8 bytes). */
export const MAX_TEXT_BYTES = 4096;
const MESSAGE_HEADER = 1 + 4 + 8 + 1 + 2 + 2;

export const ChatMessageType = { MESSAGE: 0x01, TYPING: 0x02, READ: 0x03 } as const;
export type ChatMessageType = (typeof ChatMessageType)[keyof typeof ChatMessageType];

export const Sender = { TECHNICIAN: 1, USER: 2 } as const;
export type Sender = (typeof Sender)[keyof typeof Sender];

/** Canned phrases: the ids are the protocol, the texts are each UI's (the console's are in its catalogues). */
export const Phrase = {
  HELLO: 1,
  ONE_MOMENT: 2,
  DONT_TOUCH: 3,
  SAVE_WORK: 4,
  RESTART: 5,
  CAN_YOU_SEE: 6,
  ALL_DONE: 7,
  THANKS_BYE: 8,
  YES: 100,
  NO: 101,
  OK: 102,
  WAIT: 103,
  NOT_UNDERSTOOD: 104,
  CALL_ME: 105,
  THANKS: 106,
} as const;
export type Phrase = (typeof Phrase)[keyof typeof Phrase];

/** Technician phrases have ids below 100, the user's from 100. */
export function phraseSender(phrase: Phrase): Sender {
  return phrase < 100 ? Sender.TECHNICIAN : Sender.USER;
}

/** The phrase with this id, or null for 0 and for ids this console does not know (a newer peer's). */
export function knownPhrase(value: number): Phrase | null {
  return (Object.values(Phrase) as number[]).includes(value) ? (value as Phrase) : null;
}

/** The phrase's name as in the protocol (HELLO, ONE_MOMENT, ...). */
export function phraseName(phrase: Phrase): string {
  return Object.entries(Phrase).find(([, value]) => value === phrase)![0];
}

export type ChatMessage =
  | { kind: "message"; id: number; sender: Sender; text: string; time: number; phrase: number }
  | { kind: "typing"; sender: Sender; active: boolean }
  | { kind: "read"; sender: Sender; upTo: number };

export class ChatProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "ChatProtocolError";
    this.code = code;
  }
}

// C0 controls except tab and newline, DEL and the C1 range.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;
const CONTROL_ALL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** `text` without the characters the wire refuses (for text a person typed): CR/CRLF become newlines. */
export function cleanText(text: string): string {
  return text.replace(/\r\n/g, "\n").replace(/\r/g, "\n").replace(CONTROL_ALL, "");
}

/**
 * What a person typed, ready to send: cleaned, without leading/trailing newlines, cut to MAX_TEXT_BYTES on a
 * character boundary; "" when nothing is left to say.
 */
export function prepareText(text: string): string {
  const cleaned = cleanText(text).replace(/^\n+|\n+$/g, "");
  let out = cleaned;
  if (utf8(out).length > MAX_TEXT_BYTES) {
    // Cut by characters (code points), so a surrogate pair or a multi-byte character is never split.
    const chars = [...cleaned];
    let size = 0;
    let end = 0;
    for (; end < chars.length; end++) {
      const next = utf8(chars[end]!).length;
      if (size + next > MAX_TEXT_BYTES) break;
      size += next;
    }
    out = chars.slice(0, end).join("");
  }
  return out.trim() === "" ? "" : out;
}

// ------------------------------------------------------------------------------------------------- encoding

function check(ok: boolean, what: string): void {
  if (!ok) throw new ChatProtocolError("invalid_message", what);
}

function senderOk(value: number): boolean {
  return value === Sender.TECHNICIAN || value === Sender.USER;
}

/** Serialise one message; throws ChatProtocolError for values outside the layout or its caps. */
export function encode(message: ChatMessage): Bytes {
  check(senderOk(message.sender), `sender ${message.sender}`);
  switch (message.kind) {
    case "message": {
      const data = utf8(message.text);
      if (data.length > MAX_TEXT_BYTES) throw new ChatProtocolError("message_too_large", `chat text of ${data.length} bytes`);
      check(data.length > 0 && !CONTROL.test(message.text), "empty text or control characters");
      check(Number.isInteger(message.id) && message.id >= 1 && message.id <= 0xffffffff && Number.isFinite(message.time), "id or time");
      check(Number.isInteger(message.phrase) && message.phrase >= 0 && message.phrase <= 0xffff, `phrase ${message.phrase}`);
      // type u8, id u32, time f64, sender u8, phrase u16, text_len u16, text
      const out = new Uint8Array(MESSAGE_HEADER + data.length);
      const view = new DataView(out.buffer);
      view.setUint8(0, ChatMessageType.MESSAGE);
      view.setUint32(1, message.id);
      view.setFloat64(5, message.time);
      view.setUint8(13, message.sender);
      view.setUint16(14, message.phrase);
      view.setUint16(16, data.length);
      out.set(data, MESSAGE_HEADER);
      return out;
    }
    case "typing":
      return Uint8Array.of(ChatMessageType.TYPING, message.sender, message.active ? 1 : 0);
    case "read": {
      check(Number.isInteger(message.upTo) && message.upTo >= 0 && message.upTo <= 0xffffffff, `up_to ${message.upTo}`);
      const out = new Uint8Array(6);
      const view = new DataView(out.buffer);
      view.setUint8(0, ChatMessageType.READ);
      view.setUint8(1, message.sender);
      view.setUint32(2, message.upTo);
      return out;
    }
  }
}

// ------------------------------------------------------------------------------------------------- decoding


function invalid(ok: boolean, what: string): void {
  if (!ok) throw new ChatProtocolError("invalid_message", what);
}

function sender(value: number): Sender {
  invalid(senderOk(value), `unknown sender ${value}`);
  return value as Sender;
}

/** Parse one message; `from` is who may have sent it (see decodeFromAgent / decodeFromConsole). */
export function decode(data: Uint8Array, from: Sender | null = null): ChatMessage {
  if (data.length === 0) throw new ChatProtocolError("malformed", "empty message");
  const r = new WireReader(data, (code, message) => new ChatProtocolError(code, message));
  let message: ChatMessage;
  switch (data[0]) {
    case ChatMessageType.MESSAGE: {
      // Read the whole fixed part first (as struct.unpack does), then check it.
      const id = r.u32();
      const time = r.f64();
      const who = r.u8();
      const phrase = r.u16();
      const length = r.u16();
      const s = sender(who);
      invalid(id >= 1, "message id 0");
      invalid(Number.isFinite(time), "time is not a number");
      invalid(length > 0, "empty text");
      const text = r.text(length, MAX_TEXT_BYTES, "chat text");
      invalid(!CONTROL.test(text), "control characters in chat text");
      message = { kind: "message", id, sender: s, text, time, phrase };
      break;
    }
    case ChatMessageType.TYPING: {
      const who = r.u8();
      const active = r.u8();
      invalid(active === 0 || active === 1, "active must be 0 or 1");
      message = { kind: "typing", sender: sender(who), active: active === 1 };
      break;
    }
    case ChatMessageType.READ: {
      const who = r.u8();
      message = { kind: "read", sender: sender(who), upTo: r.u32() };
      break;
    }
    default:
      throw new ChatProtocolError("unknown_type", `unknown chat message 0x${data[0]!.toString(16).padStart(2, "0")}`);
  }
  r.end();
  if (from !== null && message.sender !== from) {
    throw new ChatProtocolError("invalid_message", `a sender ${message.sender} message from sender ${from}`);
  }
  return message;
}

/** What a console accepts: the user's messages only. */
export function decodeFromAgent(data: Uint8Array): ChatMessage {
  return decode(data, Sender.USER);
}

/** What an agent accepts: the technician's messages only. */
export function decodeFromConsole(data: Uint8Array): ChatMessage {
  return decode(data, Sender.TECHNICIAN);
}
