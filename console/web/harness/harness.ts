// Test-only page: exposes the console's session code to tests/browser/test_session*.py as window.steunHarness.
// Everything here runs the production modules unchanged; only the key import from fixed seeds is test-only.

import "../styles/app.css";
import { initLanguage } from "../lib/i18n";
import { b64urlDecode, b64urlEncode, type Bytes } from "../session/bytes";
import {
  ConsoleHandshake,
  SessionError,
  deriveKeyMaterial,
  parseOffer,
  readAccept,
  readConfirm,
  readSignedOffer,
  recordLayer,
  sharedSecret,
  transcriptHash,
  type RecordType,
  type SignedOffer,
} from "../session/crypto";
import { keyDownAction } from "../session/input";
import { RelayClient, type CloseInfo, type ControlMessage } from "../session/relay";
import { sessionViewer } from "../views/session";
import { ed25519FromSeed, x25519FromSeed } from "./keys";

interface Vectors {
  inputs: Record<string, string | number>;
  signed_offer: SignedOffer;
  accept: { agent_ephemeral: string; agent_key: string };
  confirm: { signature: string };
  records: { direction: string; channel: number; type: number; plaintext: string; record: string }[];
}

const b64 = b64urlEncode;
const d64 = (text: string, limit = 2 * 1024 * 1024): Bytes => b64urlDecode(text, { limit });

function codeOf(err: unknown): string {
  if (err instanceof SessionError) return err.code;
  return `unexpected:${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
}

async function handshakeFromVectors(v: Vectors): Promise<ConsoleHandshake> {
  const technician = await ed25519FromSeed(d64(String(v.inputs["technician_private"])));
  const ephemeral = await x25519FromSeed(d64(String(v.inputs["console_ephemeral_private"])));
  return ConsoleHandshake.fromKeys(technician, ephemeral);
}

/** Every value of session-v1.json, computed by the console's code. */
async function runVectors(v: Vectors): Promise<Record<string, unknown>> {
  const handshake = await handshakeFromVectors(v);
  const reveal = await handshake.receiveAccept(readSignedOffer(v.signed_offer), readAccept(v.accept));
  // The key schedule on its own, from the same inputs (the handshake keeps its AES keys non-extractable).
  const offerBytes = d64(v.signed_offer.offer);
  const offer = parseOffer(offerBytes);
  const agentEphemeral = d64(v.accept.agent_ephemeral);
  const agentKey = d64(v.accept.agent_key);
  const transcript = await transcriptHash(offerBytes, offer, handshake.ephemeralPublic, agentEphemeral, agentKey);
  const ephemeral = await x25519FromSeed(d64(String(v.inputs["console_ephemeral_private"])));
  const { okm, sas } = await deriveKeyMaterial(await sharedSecret(ephemeral.privateKey, agentEphemeral), transcript);
  const keys = await handshake.receiveConfirm(readConfirm(v.confirm));
  const { sealer, opener } = handshake.recordLayer();
  const sealed: string[] = [];
  const opened: Record<string, unknown>[] = [];
  for (const record of v.records) {
    if (record.direction === "console_to_agent") {
      sealed.push(b64(await sealer.seal(record.channel, record.type as RecordType, d64(record.plaintext))));
    } else {
      const r = await opener.open(d64(record.record));
      opened.push({ channel: r.channel, type: r.type, sequence: Number(r.sequence), plaintext: b64(r.payload) });
    }
  }
  return {
    console_commitment: b64(handshake.commitment),
    technician_key: b64(handshake.technicianPublic),
    console_ephemeral: b64(handshake.ephemeralPublic),
    reveal,
    transcript: b64(transcript),
    console_to_agent_key: b64(okm.subarray(0, 32)),
    agent_to_console_key: b64(okm.subarray(32)),
    sas,
    handshake_transcript: b64(keys.transcript),
    handshake_sas: keys.sas,
    sealed,
    opened,
  };
}

interface HandshakeCase {
  technician_private: string;
  console_ephemeral_private: string;
  signed_offer: unknown;
  accept: unknown;
  confirm?: unknown;
  confirm_first?: boolean;
}

/** Drives the console half with whatever the test hands in; reports how far it got and the error code. */
async function handshakeCase(c: HandshakeCase): Promise<Record<string, unknown>> {
  const hs = await ConsoleHandshake.fromKeys(
    await ed25519FromSeed(d64(c.technician_private)),
    await x25519FromSeed(d64(c.console_ephemeral_private)),
  );
  try {
    if (c.confirm_first) await hs.receiveConfirm(readConfirm(c.confirm));
    const reveal = await hs.receiveAccept(readSignedOffer(c.signed_offer), readAccept(c.accept));
    if (c.confirm === undefined) return { stage: "revealed", reveal };
    const keys = await hs.receiveConfirm(readConfirm(c.confirm));
    return { stage: "established", reveal, sas: keys.sas };
  } catch (err) {
    return { stage: "failed", code: codeOf(err) };
  }
}

interface RecordKeys {
  console_to_agent: string;
  agent_to_console: string;
  session_id: string;
  side: "console" | "agent";
}

async function layerFor(k: RecordKeys): Promise<ReturnType<typeof recordLayer>> {
  const importKey = (raw: string): Promise<CryptoKey> =>
    crypto.subtle.importKey("raw", d64(raw), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  const keys = { consoleToAgent: await importKey(k.console_to_agent), agentToConsole: await importKey(k.agent_to_console) };
  return recordLayer(keys, d64(k.session_id), k.side);
}

/** Opens records with one fresh opener, all handed in at once (as the relay client does); one result each. */
async function openRecords(k: RecordKeys, records: string[]): Promise<Record<string, unknown>[]> {
  const { opener } = await layerFor(k);
  const pending = records.map((record) => opener.open(d64(record)));
  const results = await Promise.allSettled(pending);
  return results.map((result) =>
    result.status === "fulfilled"
      ? {
          ok: true,
          channel: result.value.channel,
          type: result.value.type,
          sequence: Number(result.value.sequence),
          plaintext: b64(result.value.payload),
        }
      : { ok: false, code: codeOf(result.reason) },
  );
}

/** Seals with one fresh sealer, all calls made at once; one result each, in call order. */
async function sealRecords(
  k: RecordKeys,
  items: { channel: number; type: number; plaintext?: string; size?: number }[],
): Promise<Record<string, unknown>[]> {
  const { sealer } = await layerFor(k);
  const pending = items.map((item) =>
    sealer.seal(item.channel, item.type as RecordType, item.size !== undefined ? new Uint8Array(item.size) : d64(item.plaintext ?? "")),
  );
  const results = await Promise.allSettled(pending);
  return results.map((result) =>
    result.status === "fulfilled" ? { ok: true, record: b64(result.value) } : { ok: false, code: codeOf(result.reason) },
  );
}

// ------------------------------------------------------------------ live sessions over a websocket relay

interface LogEntry {
  kind: string;
  [key: string]: unknown;
}

const state: {
  handshake: ConsoleHandshake | null;
  relay: RelayClient | null;
  log: LogEntry[];
  viewer: { dispose(): void } | null;
} = { handshake: null, relay: null, log: [], viewer: null };

async function newHandshake(): Promise<{ technician_key: string; console_commitment: string }> {
  state.handshake = await ConsoleHandshake.generate();
  return state.handshake.requestFields();
}

function requireHandshake(): ConsoleHandshake {
  if (!state.handshake) throw new Error("call newHandshake() first");
  return state.handshake;
}

function connectRelay(options: { relay_path: string; ticket: string; offer: SignedOffer }): void {
  const url = `ws://${location.host}${options.relay_path}?ticket=${options.ticket}`;
  state.log = [];
  state.relay = new RelayClient(url, requireHandshake(), readSignedOffer(options.offer), {
    onState: (s) => state.log.push({ kind: "state", state: s }),
    onEstablished: (sas, offer) => state.log.push({ kind: "established", sas, capabilities: offer.capabilities }),
    onControl: (message: ControlMessage) => state.log.push({ kind: "control", message }),
    onData: (channel, payload) => state.log.push({ kind: "data", channel, payload: b64(payload) }),
    onClosed: (info: CloseInfo) => state.log.push({ kind: "closed", ...info }),
  });
  state.relay.connect();
}

function relaySend(channel: number, type: number, payload: string): void {
  state.relay?.send(channel, d64(payload), type as RecordType);
}

function relayControl(message: Record<string, unknown>): void {
  state.relay?.sendControl(message);
}

function mountViewer(options: {
  session_id: string;
  device_id: string;
  device_label: string;
  relay_path: string;
  ticket: string;
  offer: SignedOffer;
  capabilities: ("view" | "control" | "clipboard")[];
  /** session/extend answers with this offer (or fails with extend_error); absent: no session/extend. */
  extend_offer?: SignedOffer;
  extend_error?: string;
}): void {
  state.viewer?.dispose();
  const { extend_offer, extend_error } = options;
  const extend =
    extend_offer || extend_error
      ? async (capabilities: string[]): Promise<SignedOffer> => {
          state.log.push({ kind: "extend", capabilities });
          if (extend_error) throw new Error(extend_error);
          return readSignedOffer(extend_offer);
        }
      : undefined;
  state.log = [];
  const view = sessionViewer({
    sessionId: options.session_id,
    deviceId: options.device_id,
    deviceLabel: options.device_label,
    relayUrl: `ws://${location.host}${options.relay_path}?ticket=${options.ticket}`,
    handshake: requireHandshake(),
    signedOffer: readSignedOffer(options.offer),
    capabilities: options.capabilities,
    ...(extend ? { extend } : {}),
    onEnded: (info) => state.log.push({ kind: "ended", ...info }),
  });
  state.viewer = view;
  document.getElementById("app")?.replaceChildren(view.el);
}

function unmountViewer(): void {
  state.viewer?.dispose();
  state.viewer = null;
}

/** The RGBA of one pixel of a canvas, in the canvas's own (remote) pixels. */
function pixel(selector: string, x: number, y: number): number[] {
  const canvas = document.querySelector<HTMLCanvasElement>(selector);
  const ctx = canvas?.getContext("2d");
  if (!canvas || !ctx) throw new Error(`no canvas ${selector}`);
  return Array.from(ctx.getImageData(x, y, 1, 1).data);
}

declare global {
  interface Window {
    steunHarness: unknown;
  }
}

initLanguage();
window.steunHarness = {
  ready: true,
  runVectors,
  handshakeCase,
  openRecords,
  sealRecords,
  keyDownAction,
  newHandshake,
  connectRelay,
  relaySend,
  relayControl,
  relayStop: (reason: string) => state.relay?.stop(reason),
  relayState: () => state.relay?.connectionState() ?? null,
  relayStatistics: () => state.relay?.statistics() ?? null,
  log: () => state.log,
  mountViewer,
  unmountViewer,
  pixel,
};
