#!/usr/bin/env node
// Keeps a local fleet of real SSH hosts running for the demo and manual testing.
//   node dist/test/fleet/cli.js up --hosts N [--segment VIA:COUNT]... [--json] [--dir DIR]
//   node dist/test/fleet/cli.js down PREFIX
//   node dist/test/fleet/cli.js cleanup
import { parseArgs } from "node:util";
import {
  cleanupStaleFleets,
  fleetExists,
  startFleet,
  stopFleetByPrefix,
  type Fleet,
  type FleetHost,
  type SegmentOptions,
} from "./fleet.js";

const USAGE = `usage:
  cli.js up --hosts N [--segment VIA:COUNT]... [--json] [--dir DIR]
                                            start N hosts and leave them running; each --segment hides
                                            COUNT more hosts behind host VIA (e.g. h1:2, then h3:1)
  cli.js down PREFIX                        stop the fleet with that prefix
  cli.js cleanup                            remove fleets whose creator is gone`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return up(rest);
    case "down":
      return down(rest);
    case "cleanup":
      return cleanup();
    default:
      console.error(USAGE);
      return 2;
  }
}

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      hosts: { type: "string" },
      segment: { type: "string", multiple: true, default: [] },
      json: { type: "boolean", default: false },
      dir: { type: "string" },
    },
  });
  const hostCount = Number(values.hosts);
  const segments = values.segment.map(parseSegment);
  if (!values.hosts || !Number.isInteger(hostCount) || segments.includes(undefined)) {
    console.error(USAGE);
    return 2;
  }
  const fleet = await startFleet({
    hosts: hostCount,
    segments: segments as SegmentOptions[],
    dir: values.dir,
    keepAfterExit: true,
  });
  console.log(values.json ? JSON.stringify(describeFleet(fleet), null, 2) : humanSummary(fleet));
  return 0;
}

function parseSegment(text: string): SegmentOptions | undefined {
  const match = /^(h\d+):(\d+)$/.exec(text);
  return match ? { via: match[1]!, hosts: Number(match[2]) } : undefined;
}

function down(args: string[]): number {
  const [prefix] = args;
  if (!prefix) {
    console.error(USAGE);
    return 2;
  }
  if (!fleetExists(prefix)) {
    console.error(`no fleet with prefix ${prefix}`);
    return 1;
  }
  const leftovers = stopFleetByPrefix(prefix);
  if (leftovers.length > 0) {
    console.error(`fleet ${prefix} not fully removed: ${leftovers.join(", ")}`);
    return 1;
  }
  console.log(`stopped fleet ${prefix}`);
  return 0;
}

async function cleanup(): Promise<number> {
  const removed = await cleanupStaleFleets();
  console.log(removed.length > 0 ? `removed stale fleets: ${removed.join(" ")}` : "no stale fleets");
  return 0;
}

function describeFleet(fleet: Fleet) {
  return {
    prefix: fleet.prefix,
    dir: fleet.dir,
    subnet: fleet.subnet,
    segments: fleet.segments,
    files: {
      clientKey: fleet.clientKeyFile,
      knownHosts: fleet.knownHostsFile,
      inventory: fleet.inventoryFile,
      sshConfig: fleet.sshConfigFile,
    },
    sudoPassword: fleet.sudoPassword,
    hosts: fleet.hosts,
  };
}

function humanSummary(fleet: Fleet): string {
  const last = fleet.hosts.at(-1);
  return [
    `fleet ${fleet.prefix}: ${fleet.hosts.length} hosts on ${fleet.subnet} (${fleet.dir})`,
    ...fleet.hosts.map((host) => `  ${host.name}\t${host.address}${hiddenNote(fleet, host)}`),
    `inventory:   ${fleet.inventoryFile}`,
    `client key:  ${fleet.clientKeyFile}`,
    `known hosts: ${fleet.knownHostsFile}`,
    `ssh config:  ${fleet.sshConfigFile}`,
    `deployw sudo password: ${fleet.sudoPassword}`,
    last ? `try:  ssh -F ${fleet.sshConfigFile} ${last.address} hostname` : "",
    `stop: node dist/test/fleet/cli.js down ${fleet.prefix}`,
  ].join("\n");
}

function hiddenNote(fleet: Fleet, host: FleetHost): string {
  if (host.via === undefined) return "";
  return `\tsegment ${host.segment}, hidden behind ${fleet
    .jumpHostsOf(host.name)
    .map((bastion) => bastion.name)
    .join(" → ")}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
