#!/usr/bin/env node
// Keeps a local fleet of real SSH hosts running for the demo and manual testing.
//   node dist/test/fleet/cli.js up --hosts N [--json] [--dir DIR]
//   node dist/test/fleet/cli.js down PREFIX
//   node dist/test/fleet/cli.js cleanup
import { parseArgs } from 'node:util';
import { cleanupStaleFleets, fleetExists, startFleet, stopFleetByPrefix, type Fleet } from './fleet.js';

const USAGE = `usage:
  cli.js up --hosts N [--json] [--dir DIR]   start N hosts and leave them running
  cli.js down PREFIX                        stop the fleet with that prefix
  cli.js cleanup                            remove fleets whose creator is gone`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
      return up(rest);
    case 'down':
      return down(rest);
    case 'cleanup':
      return cleanup();
    default:
      console.error(USAGE);
      return 2;
  }
}

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { hosts: { type: 'string' }, json: { type: 'boolean', default: false }, dir: { type: 'string' } },
  });
  const hostCount = Number(values.hosts);
  if (!values.hosts || !Number.isInteger(hostCount)) {
    console.error(USAGE);
    return 2;
  }
  const fleet = await startFleet({ hosts: hostCount, dir: values.dir, keepAfterExit: true });
  console.log(values.json ? JSON.stringify(describeFleet(fleet), null, 2) : humanSummary(fleet));
  return 0;
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
    console.error(`fleet ${prefix} not fully removed: ${leftovers.join(', ')}`);
    return 1;
  }
  console.log(`stopped fleet ${prefix}`);
  return 0;
}

async function cleanup(): Promise<number> {
  const removed = await cleanupStaleFleets();
  console.log(removed.length > 0 ? `removed stale fleets: ${removed.join(' ')}` : 'no stale fleets');
  return 0;
}

function describeFleet(fleet: Fleet) {
  return {
    prefix: fleet.prefix,
    dir: fleet.dir,
    subnet: fleet.subnet,
    files: { clientKey: fleet.clientKeyFile, knownHosts: fleet.knownHostsFile, inventory: fleet.inventoryFile },
    sudoPassword: fleet.sudoPassword,
    hosts: fleet.hosts,
  };
}

function humanSummary(fleet: Fleet): string {
  const first = fleet.hosts[0];
  return [
    `fleet ${fleet.prefix}: ${fleet.hosts.length} hosts on ${fleet.subnet} (${fleet.dir})`,
    ...fleet.hosts.map((host) => `  ${host.name}\t${host.address}`),
    `inventory:   ${fleet.inventoryFile}`,
    `client key:  ${fleet.clientKeyFile}`,
    `known hosts: ${fleet.knownHostsFile}`,
    `deployw sudo password: ${fleet.sudoPassword}`,
    first ? `try:  ssh -i ${fleet.clientKeyFile} -o UserKnownHostsFile=${fleet.knownHostsFile} root@${first.address} hostname` : '',
    `stop: node dist/test/fleet/cli.js down ${fleet.prefix}`,
  ].join('\n');
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
