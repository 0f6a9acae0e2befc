// Hash routing: #/devices, #/devices/<id>, #/support, #/sessions/<id>, #/account, #/admin.

export type Route =
  | { name: "devices" }
  | { name: "device"; id: string }
  | { name: "support" }
  | { name: "session"; id: string }
  | { name: "account" }
  | { name: "admin" }
  | { name: "fleet-diagnostics" }
  | { name: "diagnostics-policy" }
  | { name: "not-found" };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/\?.*$/, "");
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0) return { name: "devices" };
  const [first, second, ...rest] = parts;
  if (first === "devices" && second === undefined) return { name: "devices" };
  if ((first === "devices" || first === "sessions") && second !== undefined && rest.length === 0) {
    let id: string;
    try {
      id = decodeURIComponent(second);
    } catch {
      return { name: "not-found" };
    }
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return { name: "not-found" };
    return first === "devices" ? { name: "device", id } : { name: "session", id };
  }
  if (first === "support" && second === undefined) return { name: "support" };
  if (first === "account" && second === undefined) return { name: "account" };
  if (first === "admin" && second === undefined) return { name: "admin" };
  if (first === "fleet" && second === "diagnostics" && rest.length === 0) return { name: "fleet-diagnostics" };
  if (first === "admin" && second === "diagnostics" && rest.length === 0) return { name: "diagnostics-policy" };
  return { name: "not-found" };
}

export function currentRoute(): Route {
  return parseRoute(location.hash);
}

export function onRouteChange(listener: (route: Route) => void): () => void {
  const handler = (): void => listener(currentRoute());
  window.addEventListener("hashchange", handler);
  return () => window.removeEventListener("hashchange", handler);
}

export function navigate(hash: string): void {
  if (location.hash === hash) return;
  location.hash = hash;
}
