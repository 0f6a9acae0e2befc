// Test-only: WebCrypto keys from the fixed seeds of tests/vectors/session-v1.json. The console itself only
// ever generates its keys (ConsoleHandshake.generate); nothing outside web/harness/ imports this module.

import { concat, own, type Bytes } from "../session/bytes";
import type { KeyPairWithRaw } from "../session/crypto";

// PKCS#8 wrappers of a raw 32-byte private key (RFC 8410): the only private format WebCrypto imports.
const ED25519_PKCS8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const X25519_PKCS8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

function fromBase64url(text: string): Bytes {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return own(Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0)));
}

async function importSeed(prefix: Uint8Array, seed: Uint8Array, algorithm: "Ed25519" | "X25519"): Promise<KeyPairWithRaw> {
  const usages: KeyUsage[] = algorithm === "Ed25519" ? ["sign"] : ["deriveKey", "deriveBits"];
  // Extractable only to read the public half (JWK "x"); WebCrypto cannot derive it from a private import otherwise.
  const privateKey = await crypto.subtle.importKey("pkcs8", concat(prefix, seed), { name: algorithm }, true, usages);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  if (!jwk.x) throw new Error("no public key in the JWK");
  return { privateKey, publicRaw: fromBase64url(jwk.x) };
}

export function ed25519FromSeed(seed: Uint8Array): Promise<KeyPairWithRaw> {
  return importSeed(ED25519_PKCS8, seed, "Ed25519");
}

export function x25519FromSeed(seed: Uint8Array): Promise<KeyPairWithRaw> {
  return importSeed(X25519_PKCS8, seed, "X25519");
}
