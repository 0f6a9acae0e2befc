// The REST client: same-origin JSON requests with the session cookie and the double-submit CSRF token.

export const CSRF_COOKIE = "steun_csrf";
const REQUEST_TIMEOUT_MS = 20_000;

/** An error answered by the server (`{"error": {"code", "message"}}`) or met on the way to it. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export type Role = "admin" | "specialist" | "technician";

export interface User {
  id: number;
  username: string;
  display_name: string;
  role: Role;
  totp_enabled: boolean;
  disabled?: boolean;
}

type UnauthorizedHandler = () => void;
let unauthorizedHandler: UnauthorizedHandler | null = null;

/** Called when a request that needs a session gets 401: the session ended (expired, signed out elsewhere). */
export function onUnauthorized(handler: UnauthorizedHandler): void {
  unauthorizedHandler = handler;
}

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

function retryAfterOf(response: Response, error: Record<string, unknown> | null): number | null {
  const fromBody = error?.["retry_after"];
  if (typeof fromBody === "number" && Number.isFinite(fromBody)) return Math.max(0, fromBody);
  const header = response.headers.get("Retry-After");
  if (header !== null && /^\d+$/.test(header.trim())) return Number(header.trim());
  return null;
}

async function parseError(response: Response): Promise<ApiError> {
  let error: Record<string, unknown> | null = null;
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object" && "error" in body) {
      const inner = (body as { error: unknown }).error;
      if (inner && typeof inner === "object") error = inner as Record<string, unknown>;
    }
  } catch {
    // Not JSON (a proxy's error page): the status alone tells what happened.
  }
  const code = typeof error?.["code"] === "string" ? error["code"] : `http_${response.status}`;
  const message = typeof error?.["message"] === "string" ? error["message"] : response.statusText;
  return new ApiError(response.status, code, message, retryAfterOf(response, error));
}

interface RequestOptions {
  /** A 401 is an expected answer (login, /auth/me): do not report the session as ended. */
  expectUnauthorized?: boolean;
}

async function request<T>(method: string, path: string, body: unknown, options: RequestOptions): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    let token = readCookie(CSRF_COOKIE);
    if (token === null) {
      // The server sets the CSRF cookie on GET /api/auth/me, signed in or not.
      await fetchMe();
      token = readCookie(CSRF_COOKIE);
    }
    if (token !== null) headers["X-CSRF-Token"] = token;
  }
  const init: RequestInit = {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    const timedOut = err instanceof DOMException && err.name === "TimeoutError";
    throw new ApiError(0, timedOut ? "timeout" : "network", String(err));
  }
  if (!response.ok) {
    const error = await parseError(response);
    if (response.status === 401 && !options.expectUnauthorized) unauthorizedHandler?.();
    throw error;
  }
  if (response.status === 204) return {} as T;
  try {
    return (await response.json()) as T;
  } catch {
    throw new ApiError(response.status, "malformed", "the server answered with something that is not JSON");
  }
}

export function get<T>(path: string, options: RequestOptions = {}): Promise<T> {
  return request<T>("GET", path, undefined, options);
}

export function post<T>(path: string, body: unknown = {}, options: RequestOptions = {}): Promise<T> {
  return request<T>("POST", path, body, options);
}

export function patch<T>(path: string, body: unknown, options: RequestOptions = {}): Promise<T> {
  return request<T>("PATCH", path, body, options);
}

/** The signed-in user, or null when signed out. Also makes the server set the CSRF cookie. */
export async function fetchMe(): Promise<User | null> {
  try {
    const body = await get<{ user: User }>("/api/auth/me", { expectUnauthorized: true });
    return body.user;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export interface LoginRequest {
  username: string;
  password: string;
  totp_code?: string;
  recovery_code?: string;
}

export async function login(credentials: LoginRequest): Promise<User> {
  const body = await post<{ user: User }>("/api/auth/login", credentials, { expectUnauthorized: true });
  return body.user;
}

export async function logout(): Promise<void> {
  await post("/api/auth/logout", {}, { expectUnauthorized: true });
}
