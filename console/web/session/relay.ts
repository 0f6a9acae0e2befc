// The console's side of a session on the relay: one binary websocket to /relay/ws?ticket=…, the handshake as
// JSON in DATA frames on channel 0, then sealed records only.
//
// The relay pairs the two tickets and forwards frames unread; it can drop or delay them but not read or forge
// them. Anything that breaks the protocol ends the session: there is no plaintext fallback.

import { fromUtf8, utf8, type Bytes } from "./bytes";
import {
  ConsoleHandshake,
  RecordType,
  SessionError,
  isCapability,
  readAccept,
  readConfirm,
  type Capability,
  type RecordOpener,
  type RecordSealer,
  type SessionOffer,
  type SessionRecord,
  type SignedOffer,
} from "./crypto";
import { FrameError, FrameType, decodeFrame, encodeFrame, type Frame } from "./frames";

/** Channel ids in record headers (steun_protocol.sessionplane.Channel). */
export const Channel = { CONTROL: 0, SCREEN: 1, INPUT: 2, CLIPBOARD: 3, SHELL: 4, FILES: 5, CHAT: 6 } as const;
export type Channel = (typeof Channel)[keyof typeof Channel];

export type RelayState = "connecting" | "awaiting_accept" | "awaiting_confirm" | "established" | "closed";

/** In-session control messages the agent sends (JSON in CONTROL records). */
export type ControlMessage =
  | { type: "granted"; capabilities: Capability[]; denied: Capability[] }
  | { type: "stop"; reason: string }
  | { type: "refused"; channel: number; reason: string };

export interface CloseInfo {
  /**
   * Stable word: stopped (by us), stopped_by_server, peer_stopped, peer_closed, no_partner, relay_closed,
   * timeout, or a SessionError / protocol code.
   */
  code: string;
  /** Text from the peer or the relay (hostile: show as text only, already clipped). */
  detail: string;
}

export interface RelayHandlers {
  onState?(state: RelayState): void;
  onEstablished?(sas: string, offer: SessionOffer): void;
  onControl?(message: ControlMessage): void;
  onData?(channel: number, payload: Bytes): void;
  onClosed?(info: CloseInfo): void;
}

export interface RelayStatistics {
  bytesIn: number;
  bytesOut: number;
  recordsIn: number;
  recordsOut: number;
}

/** How long the device may take to answer the offer (the agent may ask its user first), and to confirm. */
export const ACCEPT_TIMEOUT_MS = 180_000;
export const CONFIRM_TIMEOUT_MS = 30_000;
const MAX_HANDSHAKE_JSON = 4096;
const MAX_CONTROL_JSON = 16 * 1024;
/** Frames that may wait while the handshake is computed (the agent sends "granted" right after confirming). */
const MAX_PENDING_FRAMES = 256;
const MAX_DETAIL = 256;

function clipText(text: string): string {
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text;
}

function lenientText(data: Uint8Array): string {
  return clipText(new TextDecoder("utf-8").decode(data.subarray(0, 1024)));
}

function parseJson(data: Uint8Array, cap: number, code: string): unknown {
  if (data.length > cap) throw new SessionError(code, `JSON of ${data.length} bytes > ${cap}`);
  try {
    return JSON.parse(fromUtf8(data));
  } catch {
    throw new SessionError(code, "not UTF-8 JSON");
  }
}

function capabilityList(value: unknown): Capability[] | null {
  if (!Array.isArray(value) || value.length > 16 || !value.every(isCapability)) return null;
  return value;
}

/** Strict reading of ``SessionControl`` as the agent sends it (granted, stop, refused); anything else is fatal. */
export function readControl(data: Uint8Array): ControlMessage {
  const value = parseJson(data, MAX_CONTROL_JSON, "invalid_message");
  const bad = (): never => {
    throw new SessionError("invalid_message", "control message does not match SessionControl");
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) return bad();
  const fields = value as Record<string, unknown>;
  const keys = Object.keys(fields);
  const only = (...allowed: string[]): boolean => keys.every((key) => allowed.includes(key));
  const text = (v: unknown): v is string => typeof v === "string" && [...v].length <= 256;
  switch (fields["type"]) {
    case "granted": {
      const capabilities = capabilityList(fields["capabilities"]);
      const denied = fields["denied"] === undefined ? [] : capabilityList(fields["denied"]);
      if (!only("type", "capabilities", "denied") || capabilities === null || denied === null) return bad();
      return { type: "granted", capabilities, denied };
    }
    case "stop": {
      const reason = fields["reason"] ?? "";
      if (!only("type", "reason") || !text(reason)) return bad();
      return { type: "stop", reason };
    }
    case "refused": {
      const { channel, reason } = fields;
      if (!only("type", "channel", "reason") || !Number.isSafeInteger(channel) || !text(reason)) return bad();
      return { type: "refused", channel: channel as number, reason };
    }
    default:
      return bad();
  }
}

/**
 * Why the relay closed our socket, from its close code and reason (steun_server.sessions.relay): the device
 * left, the session was stopped on the server, the device never joined, or the connection was lost.
 */
export function relayCloseCode(code: number, reason: string): string {
  if (code === 4408) return "no_partner";
  if (/^agent_(closed|sent_close|error|bad_frame|sent_text)$/.test(reason)) return "peer_closed";
  if (code === 1000 && reason === "stopped") return "stopped_by_server";
  return "relay_closed";
}

/** The relay URL on this origin; the path comes from the server and is checked against the protocol's pattern. */
export function relayUrl(relayPath: string, ticket: string, base: Location = location): string {
  if (!/^\/[A-Za-z0-9/_-]{0,127}$/.test(relayPath)) throw new SessionError("invalid_message", "relay path");
  if (!/^[A-Za-z0-9_-]{32,64}$/.test(ticket)) throw new SessionError("invalid_message", "relay ticket");
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${base.host}${relayPath}?ticket=${ticket}`;
}

export class RelayClient {
  private socket: WebSocket | null = null;
  private state: RelayState = "connecting";
  private sealer: RecordSealer | null = null;
  private opener: RecordOpener | null = null;
  private pending: Frame[] = [];
  private busy = false;
  private timer: number | null = null;
  private readonly stats: RelayStatistics = { bytesIn: 0, bytesOut: 0, recordsIn: 0, recordsOut: 0 };

  constructor(
    private readonly url: string,
    private readonly handshake: ConsoleHandshake,
    private readonly signedOffer: SignedOffer,
    private readonly handlers: RelayHandlers,
  ) {}

  connectionState(): RelayState {
    return this.state;
  }

  statistics(): RelayStatistics {
    return { ...this.stats };
  }

  connect(): void {
    if (this.socket) return;
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.finish({ code: "relay_closed", detail: "" });
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.setState("connecting");
    socket.addEventListener("open", () => {
      if (this.socket !== socket || this.state === "closed") return;
      this.setState("awaiting_accept");
      this.arm(ACCEPT_TIMEOUT_MS);
    });
    socket.addEventListener("message", (event: MessageEvent<unknown>) => {
      if (this.socket !== socket || this.state === "closed") return;
      if (!(event.data instanceof ArrayBuffer)) {
        this.fail(new FrameError("bad_frame", "text message on the relay"));
        return;
      }
      this.stats.bytesIn += event.data.byteLength;
      let frame: Frame;
      try {
        frame = decodeFrame(event.data);
      } catch (err) {
        this.fail(err);
        return;
      }
      this.receive(frame);
    });
    socket.addEventListener("close", (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.state !== "closed") this.finish({ code: relayCloseCode(event.code, event.reason), detail: "" }, false);
    });
  }

  /** Seal and send one record; records leave in the order send() was called. */
  send(channel: number, payload: Uint8Array, type: RecordType = RecordType.DATA): void {
    const sealer = this.sealer;
    const socket = this.socket;
    if (this.state !== "established" || sealer === null || socket === null) return;
    this.stats.recordsOut += 1;
    sealer.seal(channel, type, payload).then(
      (record) => this.sendFrame(encodeFrame(FrameType.SEALED, channel, record), socket),
      (err: unknown) => this.fail(err),
    );
  }

  sendControl(message: Record<string, unknown>): void {
    this.send(Channel.CONTROL, utf8(JSON.stringify(message)), RecordType.CONTROL);
  }

  /** The technician ends the session: say why, close the record stream, then the socket. */
  stop(reason = ""): void {
    if (this.state === "closed") return;
    const socket = this.socket;
    const sealer = this.sealer;
    if (this.state === "established" && sealer !== null && socket !== null) {
      this.sendControl({ type: "stop", reason: clipText(reason) });
      sealer.seal(Channel.CONTROL, RecordType.CLOSE, utf8(clipText(reason))).then(
        (record) => {
          this.sendFrame(encodeFrame(FrameType.SEALED, Channel.CONTROL, record), socket);
          socket.close(1000, "stopped");
        },
        () => socket.close(1000, "stopped"),
      );
    } else {
      socket?.close(1000, "stopped");
    }
    this.finish({ code: "stopped", detail: "" }, false);
  }

  private sendFrame(data: Bytes, socket: WebSocket | null = this.socket): void {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    this.stats.bytesOut += data.length;
    socket.send(data);
  }

  private receive(frame: Frame): void {
    if (this.state === "established" && !this.busy) {
      this.receiveEstablished(frame);
      return;
    }
    if (this.pending.length >= MAX_PENDING_FRAMES) {
      this.fail(new SessionError("overloaded", "too many frames during the handshake"));
      return;
    }
    this.pending.push(frame);
    void this.pump();
  }

  // Handshake frames need async crypto; later frames wait here so that records are opened in arrival order.
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.pending.length > 0 && this.state !== "established" && this.state !== "closed") {
        await this.receiveHandshake(this.pending.shift()!);
      }
      if (this.state === "established") {
        const rest = this.pending;
        this.pending = [];
        for (const frame of rest) this.receiveEstablished(frame);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy = false;
    }
  }

  private async receiveHandshake(frame: Frame): Promise<void> {
    if (frame.type === FrameType.CLOSE) {
      this.finish({ code: "peer_closed", detail: lenientText(frame.payload) });
      return;
    }
    if (frame.type === FrameType.CREDIT) return;
    if (frame.type !== FrameType.DATA || frame.channel !== Channel.CONTROL) {
      throw new SessionError("handshake_failed", "a record before the handshake completed");
    }
    const message = parseJson(frame.payload, MAX_HANDSHAKE_JSON, "handshake_failed");
    if (this.state === "awaiting_accept") {
      const reveal = await this.handshake.receiveAccept(this.signedOffer, readAccept(message));
      if (this.isClosed()) return;
      this.sendFrame(encodeFrame(FrameType.DATA, Channel.CONTROL, utf8(JSON.stringify(reveal))));
      this.setState("awaiting_confirm");
      this.arm(CONFIRM_TIMEOUT_MS);
    } else if (this.state === "awaiting_confirm") {
      const keys = await this.handshake.receiveConfirm(readConfirm(message));
      if (this.isClosed()) return;
      const { sealer, opener } = this.handshake.recordLayer();
      this.sealer = sealer;
      this.opener = opener;
      this.disarm();
      this.setState("established");
      const offer = this.handshake.offer;
      if (offer) this.handlers.onEstablished?.(keys.sas, offer);
    } else {
      throw new SessionError("handshake_failed", `handshake message in state ${this.state}`);
    }
  }

  private receiveEstablished(frame: Frame): void {
    switch (frame.type) {
      case FrameType.SEALED: {
        const opener = this.opener;
        if (!opener) return;
        opener.open(frame.payload).then(
          (record) => this.deliver(record),
          (err: unknown) => this.fail(err),
        );
        return;
      }
      case FrameType.CLOSE:
        this.finish({ code: "peer_closed", detail: lenientText(frame.payload) });
        return;
      case FrameType.CREDIT:
        return;
      default:
        // After the handshake nothing travels in the clear.
        this.fail(new SessionError("record_invalid", "plaintext data after the handshake"));
    }
  }

  private deliver(record: SessionRecord): void {
    if (this.state === "closed") return;
    this.stats.recordsIn += 1;
    try {
      if (record.type === RecordType.CLOSE) {
        this.finish({ code: "peer_closed", detail: lenientText(record.payload) });
      } else if (record.type === RecordType.CONTROL) {
        const message = readControl(record.payload);
        this.handlers.onControl?.(message);
        if (message.type === "stop") this.finish({ code: "peer_stopped", detail: clipText(message.reason) });
      } else {
        this.handlers.onData?.(record.channel, record.payload);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    const code = err instanceof SessionError || err instanceof FrameError ? err.code : "internal_error";
    if (!(err instanceof SessionError || err instanceof FrameError)) console.error("session failed", err);
    this.finish({ code, detail: "" });
  }

  private finish(info: CloseInfo, closeSocket = true): void {
    if (this.state === "closed") return;
    this.disarm();
    this.setState("closed");
    this.pending = [];
    if (closeSocket) {
      const socket = this.socket;
      this.socket = null;
      // Scripts may only use 1000 or 3000–4999; 4400 says "refused by the console" to the relay's logs.
      const normal = info.code === "peer_closed" || info.code === "peer_stopped" || info.code === "stopped";
      try {
        socket?.close(normal ? 1000 : 4400, info.code.slice(0, 60));
      } catch {
        // Already closing.
      }
    } else {
      this.socket = null;
    }
    this.handlers.onClosed?.(info);
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = window.setTimeout(() => this.finish({ code: "timeout", detail: "" }), ms);
  }

  private disarm(): void {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
  }

  // A method, so that checks after an await are not narrowed away by the type checker.
  private isClosed(): boolean {
    return this.state === "closed";
  }

  private setState(state: RelayState): void {
    this.state = state;
    this.handlers.onState?.(state);
  }
}
