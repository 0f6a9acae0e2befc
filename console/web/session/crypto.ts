// The console's half of the end-to-end session, in WebCrypto: commit-reveal X25519 handshake, transcript,
// HKDF-SHA256 key schedule, the six-digit SAS and sealed records (AES-256-GCM).
//
// This is a second implementation of steun_protocol/session.py and must agree with it byte for byte:
// tests/browser/test_session_crypto.py runs it in Chromium against tests/vectors/session-v1.json and against a
// Python AgentHandshake. There is no plaintext mode and no way to "continue anyway": every check that fails
// throws a SessionError with the same stable code as Python, and the caller ends the session.
//
// Private keys are generated non-extractable: the technician's Ed25519 key and the X25519 ephemeral never
// leave WebCrypto. The X25519 result goes straight into a non-extractable HKDF key. Only the 64 bytes of
// AES key material exist briefly in script memory (WebCrypto cannot split one HKDF output into two keys);
// they are imported as non-extractable AES-GCM keys and overwritten at once.

import { b64urlDecode, b64urlEncode, concat, equalBytes, fromUtf8, own, utf8, type Bytes } from "./bytes";

export const SESSION_VERSION = 1;
export const SUITE = "x25519-ed25519-hkdf-sha256-aes-256-gcm";
const TRANSCRIPT_CONTEXT = utf8("steun-session-v1\0");
const SIGNATURE_CONTEXT = {
  console: utf8("steun-session-sig-v1\0console\0"),
  agent: utf8("steun-session-sig-v1\0agent\0"),
};
const KEYS_INFO = utf8("steun-session-keys-v1");
const SAS_INFO = utf8("steun-sas-v1");
export const SESSION_ID_SIZE = 16;
export const MAX_OFFER_BYTES = 4096;
const SHORT_TEXT = 256;
const MAX_B64 = 128;

export const CAPABILITIES = ["view", "control", "clipboard", "shell", "files", "chat", "install"] as const;
export type Capability = (typeof CAPABILITIES)[number];

export function isCapability(value: unknown): value is Capability {
  return typeof value === "string" && (CAPABILITIES as readonly string[]).includes(value);
}

/** A handshake or record that must end the session; `code` is the same stable word as in Python. */
export class SessionError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "SessionError";
    this.code = code;
  }
}

// ------------------------------------------------------------------------------------------- messages

export interface TechnicianIdentity {
  user_id: string;
  name: string;
  key: string;
}

export interface SessionOffer {
  version: number;
  suite: string;
  session_id: string;
  org_name: string;
  technician: TechnicianIdentity;
  device_id: string;
  agent_key: string;
  capabilities: Capability[];
  reason: string;
  console_commitment: string;
  created_at: number;
  expires_at: number;
}

export interface SignedOffer {
  offer: string; // b64url of the exact offer JSON bytes
  signature: string;
}

export interface Accept {
  agent_ephemeral: string;
  agent_key: string;
}

export interface Reveal {
  type: "reveal";
  console_ephemeral: string;
  signature: string;
}

export interface Confirm {
  signature: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Like msgspec's forbid_unknown_fields + required fields: exactly these keys (optional ones may be absent). */
function exactKeys(value: Json, required: readonly string[], optional: readonly string[] = []): boolean {
  const keys = Object.keys(value);
  if (!required.every((key) => Object.prototype.hasOwnProperty.call(value, key))) return false;
  return keys.every((key) => required.includes(key) || optional.includes(key));
}

function shortText(value: unknown, max = SHORT_TEXT): value is string {
  // msgspec counts code points, not UTF-16 units.
  return typeof value === "string" && (value.length <= max || [...value].length <= max);
}

function b64Text(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_B64 && /^[A-Za-z0-9_-]*$/.test(value);
}

function integer(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Parses the offer bytes as msgspec does for SessionOffer (strict); the bytes themselves are never re-encoded. */
export function parseOffer(offerBytes: Uint8Array): SessionOffer {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(offerBytes));
  } catch {
    throw new SessionError("offer_invalid", "offer: not UTF-8 JSON");
  }
  const fields = [
    "version", "suite", "session_id", "org_name", "technician", "device_id", "agent_key",
    "capabilities", "reason", "console_commitment", "created_at", "expires_at",
  ];
  const ok =
    isObject(value) &&
    exactKeys(value, fields) &&
    integer(value["version"]) &&
    shortText(value["suite"]) &&
    b64Text(value["session_id"]) &&
    shortText(value["org_name"]) &&
    isObject(value["technician"]) &&
    exactKeys(value["technician"], ["user_id", "name", "key"]) &&
    shortText(value["technician"]["user_id"]) &&
    shortText(value["technician"]["name"]) &&
    b64Text(value["technician"]["key"]) &&
    shortText(value["device_id"]) &&
    b64Text(value["agent_key"]) &&
    Array.isArray(value["capabilities"]) &&
    value["capabilities"].length >= 1 &&
    value["capabilities"].length <= 16 &&
    value["capabilities"].every(isCapability) &&
    shortText(value["reason"]) &&
    b64Text(value["console_commitment"]) &&
    finite(value["created_at"]) &&
    finite(value["expires_at"]);
  if (!ok) throw new SessionError("offer_invalid", "offer: fields do not match SessionOffer");
  return value as unknown as SessionOffer;
}

function decodeField(text: unknown, size: number, what: string, code = "handshake_failed"): Bytes {
  try {
    if (typeof text !== "string") throw new Error("not a string");
    return b64urlDecode(text, { size });
  } catch (err) {
    throw new SessionError(code, `${what}: ${err instanceof Error ? err.message : "invalid"}`);
  }
}

/** Validates an Accept as it comes off the relay (JSON already parsed). */
export function readAccept(value: unknown): Accept {
  if (
    !isObject(value) ||
    !exactKeys(value, ["agent_ephemeral", "agent_key"], ["type"]) ||
    (value["type"] !== undefined && value["type"] !== "accept") ||
    !b64Text(value["agent_ephemeral"]) ||
    !b64Text(value["agent_key"])
  ) {
    throw new SessionError("handshake_failed", "the agent's accept is malformed");
  }
  return { agent_ephemeral: value["agent_ephemeral"], agent_key: value["agent_key"] };
}

export function readConfirm(value: unknown): Confirm {
  if (
    !isObject(value) ||
    !exactKeys(value, ["signature"], ["type"]) ||
    (value["type"] !== undefined && value["type"] !== "confirm") ||
    !b64Text(value["signature"])
  ) {
    throw new SessionError("handshake_failed", "the agent's confirm is malformed");
  }
  return { signature: value["signature"] };
}

export function readSignedOffer(value: unknown): SignedOffer {
  if (
    !isObject(value) ||
    !exactKeys(value, ["offer", "signature"]) ||
    typeof value["offer"] !== "string" ||
    value["offer"].length > MAX_OFFER_BYTES * 2 ||
    !b64Text(value["signature"])
  ) {
    throw new SessionError("offer_invalid", "the signed offer is malformed");
  }
  return { offer: value["offer"], signature: value["signature"] };
}

// ------------------------------------------------------------------------------------------- key schedule

async function sha256(data: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", own(data)));
}

function lengthPrefixed(data: Uint8Array): Bytes {
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, data.length);
  out.set(data, 4);
  return out;
}

/** T: the same length-prefixed fields, in the same order, as ``transcript_hash`` in Python. */
export async function transcriptHash(
  offerBytes: Uint8Array,
  offer: SessionOffer,
  consoleEphemeral: Uint8Array,
  agentEphemeral: Uint8Array,
  agentKey: Uint8Array,
): Promise<Bytes> {
  const version = new Uint8Array(2);
  new DataView(version.buffer).setUint16(0, offer.version);
  // Python sorts the capability strings by code point; they are ASCII, so UTF-16 order is the same.
  const capabilities = [...offer.capabilities].sort().join(",");
  const parts = [
    version,
    utf8(offer.suite),
    decodeField(offer.session_id, SESSION_ID_SIZE, "session id", "offer_invalid"),
    await sha256(offerBytes),
    decodeField(offer.technician.key, 32, "technician key", "offer_invalid"),
    agentKey,
    consoleEphemeral,
    agentEphemeral,
    utf8(capabilities),
  ];
  return sha256(concat(TRANSCRIPT_CONTEXT, ...parts.map(lengthPrefixed)));
}

async function hkdf(ikm: CryptoKey, salt: Uint8Array, info: Uint8Array, bytes: number): Promise<Bytes> {
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: own(salt), info: own(info) },
    ikm,
    bytes * 8,
  );
  return new Uint8Array(bits);
}

/**
 * ``derive_keys`` without the import: 64 bytes of key material (console→agent ‖ agent→console) and the SAS.
 * `ikm` is the X25519 result held as a non-extractable HKDF key. Exported for the vector tests.
 */
export async function deriveKeyMaterial(ikm: CryptoKey, transcript: Uint8Array): Promise<{ okm: Bytes; sas: string }> {
  const okm = await hkdf(ikm, transcript, KEYS_INFO, 64);
  const sasBytes = await hkdf(ikm, transcript, SAS_INFO, 4);
  const sas = (new DataView(sasBytes.buffer).getUint32(0) % 1_000_000).toString().padStart(6, "0");
  return { okm, sas };
}

/** X25519(private, peer) straight into a non-extractable HKDF key; an all-zero result is refused by WebCrypto. */
export async function sharedSecret(privateKey: CryptoKey, peerPublic: Uint8Array): Promise<CryptoKey> {
  try {
    const peer = await crypto.subtle.importKey("raw", own(peerPublic), { name: "X25519" }, false, []);
    return await crypto.subtle.deriveKey({ name: "X25519", public: peer }, privateKey, "HKDF", false, ["deriveBits"]);
  } catch (err) {
    throw new SessionError("handshake_failed", `bad ephemeral key: ${err instanceof Error ? err.name : "error"}`);
  }
}

async function verifyEd25519(publicKey: Uint8Array, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey("raw", own(publicKey), { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, own(signature), own(data));
  } catch {
    return false;
  }
}

async function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", own(raw), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

export interface SessionKeys {
  transcript: Bytes;
  consoleToAgent: CryptoKey;
  agentToConsole: CryptoKey;
  sas: string; // six digits, read out on the phone
}

/** A key pair as WebCrypto holds it, with the raw public half. */
export interface KeyPairWithRaw {
  privateKey: CryptoKey;
  publicRaw: Bytes;
}

// ------------------------------------------------------------------------------------------- the console side

type HandshakeState = "new" | "accepting" | "revealed" | "confirming" | "established" | "failed";

export class ConsoleHandshake {
  readonly technicianPublic: Bytes;
  readonly ephemeralPublic: Bytes;
  readonly commitment: Bytes;
  offer: SessionOffer | null = null;
  sessionId: Bytes | null = null;
  private keys: SessionKeys | null = null;
  private agentKey: Bytes | null = null;
  private state: HandshakeState = "new";

  private constructor(
    private readonly technician: KeyPairWithRaw,
    private readonly ephemeral: KeyPairWithRaw,
    commitment: Bytes,
  ) {
    this.technicianPublic = technician.publicRaw;
    this.ephemeralPublic = ephemeral.publicRaw;
    this.commitment = commitment;
  }

  /** The production path: a fresh Ed25519 technician key and X25519 ephemeral, private halves non-extractable. */
  static async generate(): Promise<ConsoleHandshake> {
    const technician = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const ephemeral = (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveKey", "deriveBits"])) as CryptoKeyPair;
    return ConsoleHandshake.fromKeys(
      { privateKey: technician.privateKey, publicRaw: new Uint8Array(await crypto.subtle.exportKey("raw", technician.publicKey)) },
      { privateKey: ephemeral.privateKey, publicRaw: new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey)) },
    );
  }

  /** From keys made elsewhere (the vector tests import fixed ones; see web/harness/keys.ts). */
  static async fromKeys(technician: KeyPairWithRaw, ephemeral: KeyPairWithRaw): Promise<ConsoleHandshake> {
    if (technician.publicRaw.length !== 32 || ephemeral.publicRaw.length !== 32) {
      throw new SessionError("handshake_failed", "keys must be 32 bytes");
    }
    return new ConsoleHandshake(technician, ephemeral, await sha256(ephemeral.publicRaw));
  }

  get established(): boolean {
    return this.state === "established";
  }

  /** What session/request needs: the technician's public key and the commitment, base64url. */
  requestFields(): { technician_key: string; console_commitment: string } {
    return { technician_key: b64urlEncode(this.technicianPublic), console_commitment: b64urlEncode(this.commitment) };
  }

  /** The agent answered the offer: check it, derive the keys, reveal our ephemeral key and sign the transcript. */
  async receiveAccept(signed: SignedOffer, accept: Accept): Promise<Reveal> {
    if (this.state !== "new") throw new SessionError("handshake_failed", "accept received twice");
    this.state = "accepting";
    try {
      let offerBytes: Bytes;
      try {
        offerBytes = b64urlDecode(signed.offer, { limit: MAX_OFFER_BYTES });
      } catch (err) {
        throw new SessionError("offer_invalid", `offer: ${err instanceof Error ? err.message : "invalid"}`);
      }
      const offer = parseOffer(offerBytes);
      const commitment = decodeField(offer.console_commitment, 32, "commitment");
      if (!equalBytes(commitment, this.commitment)) {
        throw new SessionError("handshake_failed", "the offer does not carry this console's commitment");
      }
      const agentKey = decodeField(accept.agent_key, 32, "agent key");
      if (!equalBytes(agentKey, decodeField(offer.agent_key, 32, "offer agent key"))) {
        throw new SessionError("handshake_failed", "the answering agent is not the device the offer is for");
      }
      const agentEphemeral = decodeField(accept.agent_ephemeral, 32, "agent ephemeral");
      const transcript = await transcriptHash(offerBytes, offer, this.ephemeralPublic, agentEphemeral, agentKey);
      const ikm = await sharedSecret(this.ephemeral.privateKey, agentEphemeral);
      const { okm, sas } = await deriveKeyMaterial(ikm, transcript);
      const [consoleToAgent, agentToConsole] = await Promise.all([aesKey(okm.subarray(0, 32)), aesKey(okm.subarray(32))]);
      okm.fill(0);
      const signature = new Uint8Array(
        await crypto.subtle.sign({ name: "Ed25519" }, this.technician.privateKey, concat(SIGNATURE_CONTEXT.console, transcript)),
      );
      this.keys = { transcript, consoleToAgent, agentToConsole, sas };
      this.offer = offer;
      this.sessionId = decodeField(offer.session_id, SESSION_ID_SIZE, "session id", "offer_invalid");
      this.agentKey = agentKey;
      this.state = "revealed";
      return { type: "reveal", console_ephemeral: b64urlEncode(this.ephemeralPublic), signature: b64urlEncode(signature) };
    } catch (err) {
      this.state = "failed";
      throw err;
    }
  }

  /** The agent signed the same transcript: the session is established. */
  async receiveConfirm(confirm: Confirm): Promise<SessionKeys> {
    if (this.state !== "revealed" || this.keys === null || this.agentKey === null) {
      throw new SessionError("handshake_failed", "confirm before accept");
    }
    this.state = "confirming";
    const signature = decodeField(confirm.signature, 64, "agent signature");
    if (!(await verifyEd25519(this.agentKey, signature, concat(SIGNATURE_CONTEXT.agent, this.keys.transcript)))) {
      this.state = "failed";
      throw new SessionError("handshake_failed", "the agent's signature does not match the transcript");
    }
    this.state = "established";
    return this.keys;
  }

  /** The sealer and opener of the console side (only once established). */
  recordLayer(): { sealer: RecordSealer; opener: RecordOpener } {
    if (this.state !== "established" || this.keys === null || this.sessionId === null) {
      throw new SessionError("handshake_failed", "no record layer before the handshake is complete");
    }
    return {
      sealer: new RecordSealer(this.keys.consoleToAgent, Direction.CONSOLE_TO_AGENT, this.sessionId),
      opener: new RecordOpener(this.keys.agentToConsole, Direction.AGENT_TO_CONSOLE, this.sessionId),
    };
  }
}

// ------------------------------------------------------------------------------------------- records

export const Direction = { CONSOLE_TO_AGENT: 1, AGENT_TO_CONSOLE: 2 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

export const RecordType = { CONTROL: 1, DATA: 2, CLOSE: 3 } as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** version u8 | direction u8 | channel u16 | record type u8 | reserved u8 | sequence u64 — big-endian */
export const RECORD_HEADER_SIZE = 14;
export const TAG_SIZE = 16;
export const MAX_RECORD_PLAINTEXT = 1024 * 1024 - RECORD_HEADER_SIZE - TAG_SIZE;

export interface SessionRecord {
  channel: number;
  type: RecordType;
  sequence: bigint;
  payload: Bytes;
}

function nonce(direction: Direction, sequence: bigint): Bytes {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint32(0, direction);
  view.setBigUint64(4, sequence);
  return out;
}

function header(direction: Direction, channel: number, type: RecordType, sequence: bigint): Bytes {
  const out = new Uint8Array(RECORD_HEADER_SIZE);
  const view = new DataView(out.buffer);
  view.setUint8(0, SESSION_VERSION);
  view.setUint8(1, direction);
  view.setUint16(2, channel);
  view.setUint8(4, type);
  view.setUint8(5, 0);
  view.setBigUint64(6, sequence);
  return out;
}

/**
 * Seals records in one direction. Sequences start at 1 and never repeat (the nonce is built on them); the
 * number is taken when seal() is called and the promises resolve in that order, so callers that send in
 * their `then` send in sequence order.
 */
export class RecordSealer {
  private sequence = 0n;
  private tail: Promise<unknown> = Promise.resolve();
  closed = false;

  constructor(
    private readonly key: CryptoKey,
    private readonly direction: Direction,
    private readonly sessionId: Uint8Array,
  ) {}

  seal(channel: number, type: RecordType, payload: Uint8Array): Promise<Bytes> {
    if (this.closed) return Promise.reject(new SessionError("session_closed", "no records after close"));
    if (payload.length > MAX_RECORD_PLAINTEXT) {
      return Promise.reject(new SessionError("record_too_large", `record of ${payload.length} bytes > ${MAX_RECORD_PLAINTEXT}`));
    }
    if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) {
      return Promise.reject(new SessionError("record_invalid", `channel ${channel}`));
    }
    this.sequence += 1n;
    const head = header(this.direction, channel, type, this.sequence);
    if (type === RecordType.CLOSE) this.closed = true;
    const sealed = crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce(this.direction, this.sequence), additionalData: concat(this.sessionId, head), tagLength: 128 },
      this.key,
      own(payload),
    );
    const ordered = this.tail.then(async () => concat(head, new Uint8Array(await sealed)));
    this.tail = ordered.catch(() => undefined);
    return ordered;
  }
}

/** Opens the peer's records, in arrival order. Anything replayed, reordered, forged, truncated or after close throws. */
export class RecordOpener {
  lastSequence = 0n;
  closed = false;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly key: CryptoKey,
    private readonly direction: Direction,
    private readonly sessionId: Uint8Array,
  ) {}

  open(data: Uint8Array): Promise<SessionRecord> {
    const record = own(data);
    // Authentication starts at once (in parallel with earlier records); the checks that depend on what came
    // before run in arrival order.
    let decrypted: Promise<ArrayBuffer> | null = null;
    let fields: { direction: number; version: number; channel: number; kind: number; reserved: number; sequence: bigint } | null =
      null;
    if (record.length >= RECORD_HEADER_SIZE + TAG_SIZE) {
      const view = new DataView(record.buffer);
      fields = {
        version: view.getUint8(0),
        direction: view.getUint8(1),
        channel: view.getUint16(2),
        kind: view.getUint8(4),
        reserved: view.getUint8(5),
        sequence: view.getBigUint64(6),
      };
      if (fields.version === SESSION_VERSION && fields.direction === this.direction && fields.reserved === 0) {
        decrypted = crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: nonce(this.direction, fields.sequence),
            additionalData: concat(this.sessionId, record.subarray(0, RECORD_HEADER_SIZE)),
            tagLength: 128,
          },
          this.key,
          record.subarray(RECORD_HEADER_SIZE),
        );
        decrypted.catch(() => undefined);
      }
    }
    const result = this.tail.then(async (): Promise<SessionRecord> => {
      if (this.closed) throw new SessionError("session_closed", "record after the peer closed the session");
      if (fields === null) {
        throw new SessionError("record_truncated", `record of ${record.length} bytes is shorter than header and tag`);
      }
      if (decrypted === null) {
        throw new SessionError("record_invalid", `record header v${fields.version} dir${fields.direction} is not for this side`);
      }
      let plaintext: ArrayBuffer;
      try {
        plaintext = await decrypted;
      } catch {
        // Authenticate first, so a damaged record always reads "forged" and "replayed" means a genuine replay.
        throw new SessionError("record_forged", `record ${fields.sequence} failed authentication`);
      }
      if (fields.sequence <= this.lastSequence) {
        throw new SessionError("record_replayed", `sequence ${fields.sequence} is not above the last one (${this.lastSequence})`);
      }
      if (fields.kind !== RecordType.CONTROL && fields.kind !== RecordType.DATA && fields.kind !== RecordType.CLOSE) {
        throw new SessionError("record_invalid", `unknown record type ${fields.kind}`);
      }
      this.lastSequence = fields.sequence;
      if (fields.kind === RecordType.CLOSE) this.closed = true;
      return { channel: fields.channel, type: fields.kind as RecordType, sequence: fields.sequence, payload: new Uint8Array(plaintext) };
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** The sealer and opener of one side, keyed per direction (the agent side serves tests only). */
export function recordLayer(
  keys: { consoleToAgent: CryptoKey; agentToConsole: CryptoKey },
  sessionId: Uint8Array,
  side: "console" | "agent",
): { sealer: RecordSealer; opener: RecordOpener } {
  const c2a = Direction.CONSOLE_TO_AGENT;
  const a2c = Direction.AGENT_TO_CONSOLE;
  return side === "console"
    ? { sealer: new RecordSealer(keys.consoleToAgent, c2a, sessionId), opener: new RecordOpener(keys.agentToConsole, a2c, sessionId) }
    : { sealer: new RecordSealer(keys.agentToConsole, a2c, sessionId), opener: new RecordOpener(keys.consoleToAgent, c2a, sessionId) };
}
