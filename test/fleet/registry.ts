import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { SYSTEM_ENV } from "./shell.js";

/** On tmpfs, so records vanish on reboot together with the namespaces they describe. */
const REGISTRY_DIR = "/run/provision-fleet";
const SUBNET_FILE_PREFIX = "subnet-";

export interface FleetRecord {
  prefix: string;
  dir: string;
  ownerPid: number;
  /** The owner's process group: a test runner's whole run (e.g. one `npm run test:soak` run) shares one. */
  ownerGroup?: number;
  /** Started by the CLI to outlive it: alive as long as its hosts run, whatever happened to the owner. */
  keepAfterExit: boolean;
}

export function writeFleetRecord(record: FleetRecord): void {
  mkdirSync(REGISTRY_DIR, { recursive: true });
  writeFileSync(recordPath(record.prefix), JSON.stringify(record));
}

export function readFleetRecord(prefix: string): FleetRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(prefix), "utf8")) as FleetRecord;
  } catch {
    return undefined;
  }
}

export function removeFleetRecord(prefix: string): void {
  rmSync(recordPath(prefix), { force: true });
}

export function listRecordedPrefixes(): string[] {
  return registryEntries()
    .filter((name) => name.endsWith(".json"))
    .map((name) => name.slice(0, -".json".length));
}

function recordPath(prefix: string): string {
  return join(REGISTRY_DIR, `${prefix}.json`);
}

function registryEntries(): string[] {
  try {
    return readdirSync(REGISTRY_DIR);
  } catch {
    return [];
  }
}

/**
 * Claims a free /24 in 198.18.0.0/15 (the benchmarking range, never routed).
 * The claim is an exclusively created file, so two runs starting at the same moment cannot pick the same one.
 */
export function reserveSubnet(prefix: string): string {
  const inUse = subnetsWithInterfaceAddresses();
  mkdirSync(REGISTRY_DIR, { recursive: true });
  for (const base of candidateSubnetBases()) {
    if (inUse.has(base) || !tryClaim(join(REGISTRY_DIR, SUBNET_FILE_PREFIX + base), prefix)) continue;
    return `${base}.0/24`;
  }
  throw new Error("no free /24 left in 198.18.0.0/15 for a fleet");
}

export function releaseSubnetsOf(prefix: string): void {
  for (const [file, owner] of subnetClaims()) {
    if (owner === prefix) rmSync(file, { force: true });
  }
}

/** The /24 bases ("198.18.3") this fleet has claimed. */
export function subnetBasesOf(prefix: string): string[] {
  return [...subnetClaims()]
    .filter(([, owner]) => owner === prefix)
    .map(([file]) => file.slice(file.lastIndexOf(SUBNET_FILE_PREFIX) + SUBNET_FILE_PREFIX.length));
}

export function prefixesOwningSubnets(): string[] {
  return [...subnetClaims().values()];
}

function subnetClaims(): Map<string, string> {
  const claims = new Map<string, string>();
  for (const name of registryEntries().filter((entry) => entry.startsWith(SUBNET_FILE_PREFIX))) {
    const file = join(REGISTRY_DIR, name);
    try {
      claims.set(file, readFileSync(file, "utf8").trim());
    } catch {
      // Released concurrently.
    }
  }
  return claims;
}

function tryClaim(file: string, prefix: string): boolean {
  try {
    const fd = openSync(file, "wx");
    writeSync(fd, prefix);
    closeSync(fd);
    return true;
  } catch {
    return false;
  }
}

function* candidateSubnetBases(): Generator<string> {
  for (const second of [18, 19]) {
    for (let third = 0; third <= 255; third++) yield `198.${second}.${third}`;
  }
}

interface InterfaceAddresses {
  addr_info?: { family?: string; local?: string }[];
}

function subnetsWithInterfaceAddresses(): Set<string> {
  const interfaces = JSON.parse(
    execFileSync("ip", ["-j", "addr"], { env: SYSTEM_ENV, encoding: "utf8" }),
  ) as InterfaceAddresses[];
  const bases = new Set<string>();
  for (const info of interfaces.flatMap((entry) => entry.addr_info ?? [])) {
    if (info.family === "inet" && info.local) bases.add(info.local.split(".").slice(0, 3).join("."));
  }
  return bases;
}
