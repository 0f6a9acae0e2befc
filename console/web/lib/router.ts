// Hash routing: #/devices, #/devices/<id>, #/account, #/admin.

export type Route =
  | { name: "devices" }
  | { name: "device"; id: string }
  | { name: "account" }
  | { name: "admin" }
  | { name: "not-found" };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/\?.*$/, "");
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0) return { name: "devices" };
  const [first, second, ...rest] = parts;
  if (first === "devices" && second === undefined) return { name: "devices" };
  if (first === "devices" && second !== undefined && rest.length === 0) {
    let id: string;
    try {
      id = decodeURIComponent(second);
    } catch {
      return { name: "not-found" };
    }
    return /^[A-Za-z0-9_-]{1,64}$/.test(id) ? { name: "device", id } : { name: "not-found" };
  }
  if (first === "account" && second === undefined) return { name: "account" };
  if (first === "admin" && second === undefined) return { name: "admin" };
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
