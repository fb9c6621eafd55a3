#!/usr/bin/env node
// Keeps a local fleet of real systemd hosts running for the demo and manual testing.
//   node dist/test/fleet/systemd/cli.js up --hosts N [--suite bookworm|trixie] [--json]
// Stopping goes through the plain fleet's CLI (node dist/test/fleet/cli.js down PREFIX): one teardown stops both kinds.
import { parseArgs } from "node:util";
import { DEBIAN_SUITES, type DebianSuite } from "./rootfs.js";
import { startSystemdFleet, type SystemdFleet } from "./systemdFleet.js";

const USAGE = `usage:
  cli.js up --hosts N [--suite ${DEBIAN_SUITES.join("|")}] [--json]
                          boot N systemd hosts and leave them running (the first run builds the rootfs, ~1 min);
                          stop them with: node dist/test/fleet/cli.js down PREFIX`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "up") return up(rest);
  console.error(USAGE);
  return 2;
}

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      hosts: { type: "string" },
      suite: { type: "string", default: "bookworm" },
      json: { type: "boolean", default: false },
    },
  });
  const hostCount = Number(values.hosts);
  const suite = values.suite as DebianSuite;
  if (!values.hosts || !Number.isInteger(hostCount) || !DEBIAN_SUITES.includes(suite)) {
    console.error(USAGE);
    return 2;
  }
  const fleet = await startSystemdFleet({ hosts: hostCount, suite, keepAfterExit: true });
  console.log(values.json ? JSON.stringify(describeFleet(fleet), null, 2) : humanSummary(fleet));
  return 0;
}

function describeFleet(fleet: SystemdFleet) {
  return {
    prefix: fleet.prefix,
    suite: fleet.suite,
    dir: fleet.dir,
    subnet: fleet.subnet,
    rootfs: fleet.rootfs.dir,
    files: {
      clientKey: fleet.clientKeyFile,
      knownHosts: fleet.knownHostsFile,
      inventory: fleet.inventoryFile,
      sshConfig: fleet.sshConfigFile,
    },
    hosts: fleet.hosts,
  };
}

function humanSummary(fleet: SystemdFleet): string {
  const first = fleet.hosts[0];
  return [
    `systemd fleet ${fleet.prefix}: ${fleet.hosts.length} Debian ${fleet.suite} hosts on ${fleet.subnet} (${fleet.dir})`,
    ...fleet.hosts.map(
      (host) =>
        `  ${host.name}\t${host.address}\tmachine ${host.machine}\t${host.lastBoot.state}` +
        (host.lastBoot.failedUnits.length > 0 ? ` (failed: ${host.lastBoot.failedUnits.join(", ")})` : ""),
    ),
    `inventory:   ${fleet.inventoryFile}`,
    `client key:  ${fleet.clientKeyFile} (root, and deploy with passwordless sudo)`,
    `known hosts: ${fleet.knownHostsFile}`,
    `ssh config:  ${fleet.sshConfigFile}`,
    first ? `try:  ssh -F ${fleet.sshConfigFile} ${first.address} systemctl is-system-running` : "",
    `stop: node dist/test/fleet/cli.js down ${fleet.prefix}`,
  ].join("\n");
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
