// The console websocket (/api/ws): requests with replies, subscriptions that survive reconnects, backoff.
//
// Envelopes follow the contract: requests are {"id", "type", ...}; replies are "result" / "error" / "event"
// carrying the request's id. A subscription is re-sent after every reconnect and its owner gets the fresh
// snapshot through onResult, so views never have to know the connection dropped.

export type ConnectionState = "connecting" | "open" | "reconnecting" | "stopped";

export class WsError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message || code);
    this.name = "WsError";
    this.code = code;
  }
}

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: WsError) => void;
  timer: number;
}

export interface SubscriptionSpec {
  type: string;
  fields?: Record<string, unknown>;
  onResult: (result: unknown) => void;
  onEvent: (event: unknown) => void;
  onError?: (error: WsError) => void;
}

export interface Subscription {
  close(): void;
}

interface ActiveSubscription {
  spec: SubscriptionSpec;
  requestId: number | null;
  closed: boolean;
}

const REQUEST_TIMEOUT_MS = 20_000;
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// The server caps text messages at 4 MiB (steun_protocol.limits.MAX_TEXT_MESSAGE); anything larger is dropped.
const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;

export class ConsoleSocket {
  private socket: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subscriptions = new Set<ActiveSubscription>();
  private readonly byRequestId = new Map<number, ActiveSubscription>();
  private readonly stateListeners = new Set<(state: ConnectionState, retryAt: number | null) => void>();
  private state: ConnectionState = "stopped";
  private attempt = 0;
  private retryTimer: number | null = null;
  private retryAt: number | null = null;
  private everOpened = false;

  /**
   * @param url the websocket URL (defaults to /api/ws on this origin)
   * @param onRejected called when connecting keeps failing before the socket ever opens, so the app can check
   *   whether the session is still valid (a browser does not show the upgrade's 401 to scripts)
   */
  constructor(
    private readonly url: string = defaultUrl(),
    private readonly onRejected: () => void = () => {},
  ) {
    window.addEventListener("online", this.onNetworkBack);
    document.addEventListener("visibilitychange", this.onNetworkBack);
  }

  // The network came back or the tab became visible again: do not wait out the backoff.
  private readonly onNetworkBack = (): void => {
    if (document.visibilityState === "visible") this.retryNow();
  };

  connectionState(): ConnectionState {
    return this.state;
  }

  onStateChange(listener: (state: ConnectionState, retryAt: number | null) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state, this.retryAt);
    return () => this.stateListeners.delete(listener);
  }

  start(): void {
    if (this.state !== "stopped") return;
    this.attempt = 0;
    this.open();
  }

  /** Closes the connection for good (sign-out). Subscriptions are dropped. */
  stop(): void {
    window.removeEventListener("online", this.onNetworkBack);
    document.removeEventListener("visibilitychange", this.onNetworkBack);
    this.setState("stopped", null);
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.subscriptions.clear();
    this.byRequestId.clear();
    this.failPending("stopped", "connection closed");
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "sign-out");
  }

  request<T>(type: string, fields: Record<string, unknown> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.socket || this.state !== "open") {
        reject(new WsError("not_connected", "not connected"));
        return;
      }
      const id = this.send(type, fields);
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new WsError("timeout", `${type} timed out`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve: (value) => resolve(value as T), reject, timer });
    });
  }

  subscribe(spec: SubscriptionSpec): Subscription {
    const active: ActiveSubscription = { spec, requestId: null, closed: false };
    this.subscriptions.add(active);
    if (this.state === "open") this.sendSubscription(active);
    return {
      close: () => {
        if (active.closed) return;
        active.closed = true;
        this.subscriptions.delete(active);
        const id = active.requestId;
        if (id !== null) {
          this.byRequestId.delete(id);
          if (this.state === "open") {
            this.request("unsubscribe", { subscription: id }).catch(() => {
              // The server drops subscriptions with the connection anyway.
            });
          }
        }
      },
    };
  }

  private send(type: string, fields: Record<string, unknown>): number {
    const id = this.nextId++;
    this.socket?.send(JSON.stringify({ ...fields, id, type }));
    return id;
  }

  private sendSubscription(active: ActiveSubscription): void {
    const id = this.send(active.spec.type, active.spec.fields ?? {});
    active.requestId = id;
    this.byRequestId.set(id, active);
  }

  private open(): void {
    this.setState(this.everOpened || this.attempt > 0 ? "reconnecting" : "connecting", null);
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.everOpened = true;
      this.attempt = 0;
      this.setState("open", null);
      for (const active of this.subscriptions) this.sendSubscription(active);
    });
    socket.addEventListener("message", (event: MessageEvent<unknown>) => {
      if (this.socket !== socket) return;
      if (typeof event.data !== "string" || event.data.length > MAX_MESSAGE_CHARS) return;
      this.dispatch(event.data);
    });
    socket.addEventListener("close", (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.byRequestId.clear();
      for (const active of this.subscriptions) active.requestId = null;
      this.failPending("disconnected", "connection lost");
      if (this.state === "stopped") return;
      // A refused upgrade (401/403) never opens; a server may also close at once with a policy code.
      if (!opened || event.code === 1008 || event.code >= 4000) this.onRejected();
      this.scheduleRetry();
    });
  }

  private retryNow(): void {
    if (this.state !== "reconnecting" || this.retryTimer === null) return;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  private scheduleRetry(): void {
    if (this.state === "stopped") return;
    // Exponential backoff with jitter, so a restarted server is not hit by every console at once.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("reconnecting", this.retryAt);
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  private failPending(code: string, message: string): void {
    for (const pending of this.pending.values()) {
      window.clearTimeout(pending.timer);
      pending.reject(new WsError(code, message));
    }
    this.pending.clear();
  }

  private dispatch(raw: string): void {
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    const { id, type } = message as { id?: unknown; type?: unknown };
    if (typeof id !== "number") return;
    if (type === "event") {
      this.byRequestId.get(id)?.spec.onEvent((message as { event?: unknown }).event);
      return;
    }
    const subscription = this.byRequestId.get(id);
    if (subscription) {
      if (type === "result") {
        subscription.spec.onResult((message as { result?: unknown }).result);
      } else if (type === "error") {
        this.byRequestId.delete(id);
        subscription.requestId = null;
        subscription.spec.onError?.(toError((message as { error?: unknown }).error));
      }
      return;
    }
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    window.clearTimeout(pending.timer);
    if (type === "result") pending.resolve((message as { result?: unknown }).result);
    else pending.reject(toError((message as { error?: unknown }).error));
  }

  private setState(state: ConnectionState, retryAt: number | null): void {
    this.state = state;
    this.retryAt = retryAt;
    for (const listener of this.stateListeners) listener(state, retryAt);
  }
}

function toError(error: unknown): WsError {
  if (error && typeof error === "object") {
    const { code, message } = error as { code?: unknown; message?: unknown };
    return new WsError(typeof code === "string" ? code : "error", typeof message === "string" ? message : "");
  }
  return new WsError("error", "");
}

function defaultUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/ws`;
}
