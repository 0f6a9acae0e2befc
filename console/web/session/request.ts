// Asking the server for a session: make the keys, send session/request, keep the private halves in this tab.
//
// The private keys never leave the page; a reload loses them, and with them the session (by design: there is
// nothing a stored secret could resume that a new request cannot).

import { ConsoleHandshake, readSignedOffer, type Capability, type SignedOffer } from "./crypto";

export interface SessionCreated {
  session_id: string;
  offer: SignedOffer;
  relay_path: string;
  ticket: string;
}

export interface OpenSession extends SessionCreated {
  deviceId: string;
  deviceLabel: string;
  capabilities: Capability[];
  handshake: ConsoleHandshake;
}

export interface Requester {
  request<T>(type: string, fields: Record<string, unknown>): Promise<T>;
}

const MAX_OPEN = 8;
const open = new Map<string, OpenSession>();

/** Validates the server's answer (the server is trusted for routing, not for content we can check). */
export function readSessionCreated(value: unknown): SessionCreated {
  if (typeof value !== "object" || value === null) throw new Error("malformed session/request result");
  const v = value as Record<string, unknown>;
  const { session_id, relay_path, ticket } = v;
  if (
    typeof session_id !== "string" ||
    !/^[A-Za-z0-9_-]{16,64}$/.test(session_id) ||
    typeof relay_path !== "string" ||
    !/^\/[A-Za-z0-9/_-]{0,127}$/.test(relay_path) ||
    typeof ticket !== "string" ||
    !/^[A-Za-z0-9_-]{32,64}$/.test(ticket)
  ) {
    throw new Error("malformed session/request result");
  }
  return { session_id, relay_path, ticket, offer: readSignedOffer(v["offer"]) };
}

export async function requestSession(
  socket: Requester,
  device: { id: string; label: string },
  capabilities: Capability[],
  reason: string,
): Promise<OpenSession> {
  const handshake = await ConsoleHandshake.generate();
  const result = await socket.request<unknown>("session/request", {
    device_id: device.id,
    capabilities,
    reason,
    ...handshake.requestFields(),
  });
  const created = readSessionCreated(result);
  const session: OpenSession = { ...created, deviceId: device.id, deviceLabel: device.label, capabilities, handshake };
  open.set(created.session_id, session);
  while (open.size > MAX_OPEN) open.delete(open.keys().next().value!);
  return session;
}

/**
 * Ask the server to re-sign this session's offer with more capabilities (``session/extend``). The agent checks
 * the new offer against its pinned org key and asks its user again; the server cannot grant anything.
 */
export async function extendSession(socket: Requester, sessionId: string, capabilities: Capability[]): Promise<SignedOffer> {
  const result = await socket.request<unknown>("session/extend", { session_id: sessionId, capabilities });
  if (typeof result !== "object" || result === null) throw new Error("malformed session/extend result");
  return readSignedOffer((result as Record<string, unknown>)["offer"]);
}

/** The session for the viewer route; taken once (a second viewer for the same keys would reuse nonces). */
export function takeSession(sessionId: string): OpenSession | null {
  const session = open.get(sessionId) ?? null;
  open.delete(sessionId);
  return session;
}

export function sessionHref(sessionId: string): string {
  return `#/sessions/${encodeURIComponent(sessionId)}`;
}
