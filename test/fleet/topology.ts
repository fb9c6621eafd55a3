import { join } from "node:path";
import { allOrThrow, runChecked } from "./shell.js";
import { names } from "./teardown.js";

// Which hosts exist, their names and addresses, and the network that joins them.
// Directly reachable hosts sit on a bridge in the root namespace. A segment is a private /24 whose bridge lives
// inside its bastion's network namespace, so only the bastion (e.g. through `ssh -J`) can reach its hosts.

export interface SegmentOptions {
  /** Name of the bastion: a directly reachable host or a host of an earlier segment. */
  via: string;
  hosts: number;
}

export interface HostSpec {
  /** N of the name h<N>: main hosts first, then each segment's hosts in order, so names stay unique across the fleet. */
  index: number;
  name: string;
  address: string;
  netns: string;
  hostDir: string;
  /** 1-based number of the segment the host is hidden in; undefined for directly reachable hosts. */
  segment?: number;
  /** The bastion through which the host is reached. */
  via?: string;
}

export interface SegmentSpec {
  number: number;
  subnet: string;
  via: string;
  bastionNetns: string;
}

export interface Topology {
  subnet: string;
  hosts: HostSpec[];
  segments: SegmentSpec[];
}

export const MAX_HOSTS_PER_NETWORK = 250;
const SEGMENT_BRIDGE_PREFIX = "seg";

/** Throws on a segment list that names an unknown bastion or a bad host count; run before anything is created. */
export function validateSegments(mainHostCount: number, segments: readonly SegmentOptions[]): void {
  const known = new Set(Array.from({ length: mainHostCount }, (_, i) => `h${i + 1}`));
  let nextIndex = mainHostCount + 1;
  segments.forEach((segment, i) => {
    const label = `segment ${i + 1}`;
    if (!known.has(segment.via)) {
      throw new Error(
        `${label}: via '${segment.via}' must name a main host or a host of an earlier segment (have ${[...known].join(", ")})`,
      );
    }
    assertHostCount(segment.hosts, label);
    for (let n = 0; n < segment.hosts; n++) known.add(`h${nextIndex++}`);
  });
}

export function assertHostCount(count: number, label: string): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS_PER_NETWORK) {
    throw new Error(`${label}: hosts must be an integer in 1..${MAX_HOSTS_PER_NETWORK}, got ${count}`);
  }
}

/** `claimSubnet` is called once for the main network, then once per segment. */
export function planTopology(
  prefix: string,
  dir: string,
  mainHostCount: number,
  segmentOptions: readonly SegmentOptions[],
  claimSubnet: () => string,
): Topology {
  const subnet = claimSubnet();
  const hosts = networkHosts(prefix, dir, subnet, 1, mainHostCount);
  const segments: SegmentSpec[] = [];
  for (const [i, options] of segmentOptions.entries()) {
    const bastion = hosts.find((host) => host.name === options.via);
    if (!bastion) throw new Error(`segment ${i + 1}: no host ${options.via}`);
    const segment: SegmentSpec = {
      number: i + 1,
      subnet: claimSubnet(),
      via: bastion.name,
      bastionNetns: bastion.netns,
    };
    segments.push(segment);
    const members = networkHosts(prefix, dir, segment.subnet, hosts.length + 1, options.hosts);
    hosts.push(...members.map((host) => ({ ...host, segment: segment.number, via: bastion.name })));
  }
  return { subnet, hosts, segments };
}

function networkHosts(prefix: string, dir: string, subnet: string, firstIndex: number, count: number): HostSpec[] {
  const base = subnetBase(subnet);
  return Array.from({ length: count }, (_, i) => {
    const index = firstIndex + i;
    // .1 is the gateway: the root namespace's bridge, or the bastion's address on a segment.
    return {
      index,
      name: `h${index}`,
      address: `${base}.${i + 2}`,
      netns: names.netns(prefix, index),
      hostDir: join(dir, `h${index}`),
    };
  });
}

export function subnetBase(subnet: string): string {
  return subnet.split(".").slice(0, 3).join(".");
}

function gatewayOf(subnet: string): string {
  return `${subnetBase(subnet)}.1/24`;
}

export async function createNetwork(prefix: string, topology: Topology): Promise<void> {
  // One `ip` process for the root namespace: a few hundred separate invocations would dominate startup time.
  await runChecked("ip", ["-batch", "-"], { input: lines(rootNamespaceCommands(prefix, topology)) });
  // `ip -batch` cannot switch namespace per line, so each bastion gets its own `ip -n` process.
  await allOrThrow(
    topology.segments.map((segment) =>
      runChecked("ip", ["-n", segment.bastionNetns, "-batch", "-"], {
        input: lines(bastionCommands(segment, topology.hosts)),
      }),
    ),
  );
}

function rootNamespaceCommands(prefix: string, topology: Topology): string[] {
  const bridge = names.bridge(prefix);
  const netnsOf = (name: string) => topology.hosts.find((host) => host.name === name)!.netns;
  return [
    `link add ${bridge} type bridge`,
    `addr add ${gatewayOf(topology.subnet)} dev ${bridge}`,
    `link set ${bridge} up`,
    ...topology.hosts.map((host) => `netns add ${host.netns}`),
    ...topology.hosts.flatMap((host) =>
      host.via === undefined
        ? [
            `link add ${names.veth(prefix, host.index)} type veth peer name eth0 netns ${host.netns}`,
            `link set ${names.veth(prefix, host.index)} master ${bridge} up`,
          ]
        : // Created right inside the bastion, so it never shows up (or lingers) in the root namespace.
          [`link add ${segmentPortName(host)} netns ${netnsOf(host.via)} type veth peer name eth0 netns ${host.netns}`],
    ),
    // Without it, a connection to a hidden address would leave through the default route instead of failing at once.
    ...topology.segments.map((segment) => `route add unreachable ${segment.subnet}`),
  ];
}

function bastionCommands(segment: SegmentSpec, hosts: readonly HostSpec[]): string[] {
  const bridge = `${SEGMENT_BRIDGE_PREFIX}${segment.number}`;
  return [
    `link add ${bridge} type bridge`,
    `addr add ${gatewayOf(segment.subnet)} dev ${bridge}`,
    `link set ${bridge} up`,
    ...hosts
      .filter((host) => host.segment === segment.number)
      .map((host) => `link set ${segmentPortName(host)} master ${bridge} up`),
  ];
}

function segmentPortName(host: HostSpec): string {
  return `v${host.index}`;
}

function lines(commands: string[]): string {
  return commands.join("\n") + "\n";
}
