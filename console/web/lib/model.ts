// Devices as the console sees them, read defensively from the server's JSON.
//
// Shapes mirror steun_protocol.console (DeviceSummary, DeviceDetail) and steun_protocol.inventory
// (Inventory, LiveMetrics). The server validates what agents send, but the values are still chosen by
// whoever controls an endpoint: each string is clipped, each list bounded, and anything of the wrong type
// is dropped instead of breaking the page.

const SHORT = 256;
const LONG = 4096;
export const MAX_LIST = 1024;
export const MAX_PACKAGES = 20_000;

type Json = Record<string, unknown>;

function obj(value: unknown): Json | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : null;
}

function str(value: unknown, max = SHORT): string {
  if (typeof value !== "string") return "";
  return value.length > max ? value.slice(0, max) : value;
}

function optStr(value: unknown, max = SHORT): string | null {
  return typeof value === "string" && value !== "" ? str(value, max) : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function list<T>(value: unknown, max: number, read: (item: Json) => T | null): T[] {
  if (!Array.isArray(value)) return [];
  const out: T[] = [];
  for (const item of value.slice(0, max)) {
    const o = obj(item);
    const parsed = o ? read(o) : null;
    if (parsed !== null) out.push(parsed);
  }
  return out;
}

export interface DeviceSummary {
  id: string;
  hostname: string;
  os: string;
  group: string;
  online: boolean;
  last_seen: number | null;
  enrolled_at: number | null;
}

export interface Disk {
  device: string;
  mountpoint: string;
  fstype: string;
  total: number;
  used: number;
  free: number;
}

export interface NetAddress {
  family: string;
  address: string;
  netmask: string | null;
}

export interface NetInterface {
  name: string;
  is_up: boolean;
  speed_mbps: number | null;
  mtu: number | null;
  addresses: NetAddress[];
}

export interface UserSession {
  name: string;
  terminal: string | null;
  host: string | null;
  started: number | null;
}

export interface Package {
  name: string;
  version: string;
}

export interface Inventory {
  hostname: string;
  os_name: string;
  os_version: string;
  os_pretty: string;
  kernel: string;
  architecture: string;
  cpu_model: string;
  cpu_cores: number | null;
  cpu_threads: number | null;
  memory_total: number | null;
  swap_total: number | null;
  boot_time: number | null;
  disks: Disk[];
  interfaces: NetInterface[];
  users: UserSession[];
  manufacturer: string | null;
  model: string | null;
  serial: string | null;
  machine_uuid: string | null;
  package_manager: string | null;
  packages: Package[];
}

export interface LiveMetrics {
  uptime: number | null;
  cpu_percent: number | null;
  memory_percent: number | null;
  memory_used: number | null;
  swap_percent: number | null;
  load_average: number[] | null;
  process_count: number | null;
}

export interface DeviceDetail extends DeviceSummary {
  inventory: Inventory | null;
  inventory_updated_at: number | null;
  metrics: LiveMetrics | null;
}

export function readSummary(value: unknown): DeviceSummary | null {
  const o = obj(value);
  if (!o) return null;
  const id = str(o["id"], 64);
  if (!id) return null;
  return {
    id,
    hostname: str(o["hostname"]),
    os: str(o["os"]),
    group: str(o["group"]),
    online: o["online"] === true,
    last_seen: num(o["last_seen"]),
    enrolled_at: num(o["enrolled_at"]),
  };
}

function readDisk(o: Json): Disk {
  return {
    device: str(o["device"]),
    mountpoint: str(o["mountpoint"], LONG),
    fstype: str(o["fstype"]),
    total: num(o["total"]) ?? 0,
    used: num(o["used"]) ?? 0,
    free: num(o["free"]) ?? 0,
  };
}

function readAddress(o: Json): NetAddress {
  return { family: str(o["family"], 8), address: str(o["address"]), netmask: optStr(o["netmask"]) };
}

function readInterface(o: Json): NetInterface {
  return {
    name: str(o["name"]),
    is_up: o["is_up"] === true,
    speed_mbps: num(o["speed_mbps"]),
    mtu: num(o["mtu"]),
    addresses: list(o["addresses"], 64, readAddress),
  };
}

function readUser(o: Json): UserSession {
  return {
    name: str(o["name"]),
    terminal: optStr(o["terminal"]),
    host: optStr(o["host"]),
    started: num(o["started"]),
  };
}

function readPackage(o: Json): Package {
  return { name: str(o["name"]), version: str(o["version"]) };
}

export function readInventory(value: unknown): Inventory | null {
  const o = obj(value);
  if (!o) return null;
  return {
    hostname: str(o["hostname"]),
    os_name: str(o["os_name"]),
    os_version: str(o["os_version"]),
    os_pretty: str(o["os_pretty"]),
    kernel: str(o["kernel"]),
    architecture: str(o["architecture"]),
    cpu_model: str(o["cpu_model"]),
    cpu_cores: num(o["cpu_cores"]),
    cpu_threads: num(o["cpu_threads"]),
    memory_total: num(o["memory_total"]),
    swap_total: num(o["swap_total"]),
    boot_time: num(o["boot_time"]),
    disks: list(o["disks"], MAX_LIST, readDisk),
    interfaces: list(o["interfaces"], MAX_LIST, readInterface),
    users: list(o["users"], MAX_LIST, readUser),
    manufacturer: optStr(o["manufacturer"]),
    model: optStr(o["model"]),
    serial: optStr(o["serial"]),
    machine_uuid: optStr(o["machine_uuid"]),
    package_manager: optStr(o["package_manager"]),
    packages: list(o["packages"], MAX_PACKAGES, readPackage),
  };
}

export function readMetrics(value: unknown): LiveMetrics | null {
  const o = obj(value);
  if (!o) return null;
  const load = Array.isArray(o["load_average"])
    ? o["load_average"].slice(0, 3).map(num).filter((n): n is number => n !== null)
    : null;
  return {
    uptime: num(o["uptime"]),
    cpu_percent: num(o["cpu_percent"]),
    memory_percent: num(o["memory_percent"]),
    memory_used: num(o["memory_used"]),
    swap_percent: num(o["swap_percent"]),
    load_average: load,
    process_count: num(o["process_count"]),
  };
}

export function readDetail(value: unknown): DeviceDetail | null {
  const summary = readSummary(value);
  const o = obj(value);
  if (!summary || !o) return null;
  return {
    ...summary,
    inventory: readInventory(o["inventory"]),
    inventory_updated_at: num(o["inventory_updated_at"]),
    metrics: readMetrics(o["metrics"]),
  };
}

/** Reads a `{"devices": [...]}` result. */
export function readDeviceList(value: unknown): DeviceSummary[] {
  const devices = obj(value)?.["devices"];
  if (!Array.isArray(devices)) return [];
  const out: DeviceSummary[] = [];
  for (const item of devices) {
    const device = readSummary(item);
    if (device) out.push(device);
  }
  return out;
}

export type DevicesEvent = { kind: "upsert"; device: DeviceSummary } | { kind: "remove"; deviceId: string };

export function readDevicesEvent(value: unknown): DevicesEvent | null {
  const o = obj(value);
  if (!o) return null;
  if (o["kind"] === "upsert") {
    const device = readSummary(o["device"]);
    return device ? { kind: "upsert", device } : null;
  }
  if (o["kind"] === "remove") {
    const deviceId = str(o["device_id"], 64);
    return deviceId ? { kind: "remove", deviceId } : null;
  }
  return null;
}

export function readDeviceEvent(value: unknown): DeviceDetail | null {
  const o = obj(value);
  return o && o["kind"] === "detail" ? readDetail(o["device"]) : null;
}
