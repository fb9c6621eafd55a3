import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { startFleet, type Fleet, type FleetHost, type HostCertificateSpec } from "../fleet/fleet.js";
import { readFleetRecord, subnetBasesOf } from "../fleet/registry.js";
import { isProcessRunning, runCommand, type CommandResult } from "../fleet/shell.js";
import {
  fleetInterfaceNames,
  fleetNetnsNames,
  mountPointsUnder,
  netInodeOfProcess,
  pidsInNetInodes,
} from "../fleet/teardown.js";

const SUITE_TIMEOUT_MS = 90_000;
const SSH_TIMEOUT_MS = 20_000;
const UNREACHABLE_WITHIN_MS = 500;

// h1, h2 reachable; segment 1 (h3, h4) behind h1; segment 2 (h5) behind h3.
const SEGMENTS = [
  { via: "h1", hosts: 2 },
  { via: "h3", hosts: 1 },
];
const HOST_CERTIFICATES: Record<string, HostCertificateSpec | null> = {
  h1: {},
  h2: { signedBy: "foreign" },
  h3: { validity: "20200101:20200102" },
  h4: { principals: ["elsewhere.example"] },
  h5: null,
};

let fleet: Fleet;
let configCount = 0;

function host(name: string): FleetHost {
  const found = fleet.hosts.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`fleet has no host ${name}`);
  return found;
}

interface ClientSetup {
  identityFile: string;
  /** For every host but `strictHost`. */
  knownHostsFile: string;
  /** The one host checked against its own known_hosts file (jump hosts keep the plain one). */
  strictHost?: { address: string; knownHostsFile: string };
}

/** Jump hosts get `-F` but never `-o`/`-i` from the command line, so everything goes into a config file. */
function writeClientConfig(setup: ClientSetup): string {
  const dir = join(fleet.dir, "test-client");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `ssh_config_${++configCount}`);
  const strict = setup.strictHost
    ? [`Host ${setup.strictHost.address}`, `  UserKnownHostsFile ${setup.strictHost.knownHostsFile}`]
    : [];
  const common = [
    "Host *",
    `  UserKnownHostsFile ${setup.knownHostsFile}`,
    `  IdentityFile ${setup.identityFile}`,
    "  IdentitiesOnly yes",
  ];
  const strictness = ["  StrictHostKeyChecking yes", "  BatchMode yes", "  ConnectTimeout 10"];
  writeFileSync(file, [...strict, ...common, ...strictness, ""].join("\n"));
  return file;
}

function plainSetup(): ClientSetup {
  return { identityFile: fleet.clientKeyFile, knownHostsFile: fleet.knownHostsFile };
}

function certificateOnlyFor(target: FleetHost): ClientSetup {
  return { ...plainSetup(), strictHost: { address: target.address, knownHostsFile: fleet.certKnownHostsFile! } };
}

function sshThroughChain(
  setup: ClientSetup,
  target: FleetHost,
  command: string,
  { user = "root", verbose = false } = {},
): Promise<CommandResult> {
  const jumps = fleet.jumpHostsOf(target.name).map((bastion) => `root@${bastion.address}`);
  const args = [
    "-F",
    writeClientConfig(setup),
    ...(verbose ? ["-v"] : []),
    ...(jumps.length > 0 ? ["-J", jumps.join(",")] : []),
  ];
  return runCommand("ssh", [...args, `${user}@${target.address}`, command], { timeoutMs: SSH_TIMEOUT_MS });
}

/** The error code of a TCP connect from the controller, or 'connected' / 'timeout'. */
function connectOutcome(address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: 22 });
    const finish = (outcome: string) => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => finish("timeout"));
    socket.once("connect", () => finish("connected"));
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}

describe(
  "fleet topology: hidden segments behind bastions, host and user certificates",
  { timeout: SUITE_TIMEOUT_MS },
  () => {
    beforeAll(async () => {
      fleet = await startFleet({
        hosts: 2,
        segments: SEGMENTS,
        hostCertificates: ({ name }) => HOST_CERTIFICATES[name] ?? null,
        userCertificates: true,
      });
    }, SUITE_TIMEOUT_MS);

    afterAll(async () => {
      await fleet?.stop();
    }, SUITE_TIMEOUT_MS);

    it("numbers hidden hosts after the reachable ones and knows their bastions", () => {
      expect(fleet.hosts.map(({ name, segment, via }) => ({ name, segment, via }))).toEqual([
        { name: "h1", segment: undefined, via: undefined },
        { name: "h2", segment: undefined, via: undefined },
        { name: "h3", segment: 1, via: "h1" },
        { name: "h4", segment: 1, via: "h1" },
        { name: "h5", segment: 2, via: "h3" },
      ]);
      expect(fleet.hostsBehind(1).map((h) => h.name)).toEqual(["h3", "h4"]);
      expect(fleet.hostsBehind(2).map((h) => h.name)).toEqual(["h5"]);
      expect(fleet.jumpHostsOf("h5").map((h) => h.name)).toEqual(["h1", "h3"]);
      expect(fleet.jumpHostsOf("h2")).toEqual([]);
      const subnets = [fleet.subnet, ...fleet.segments.map((segment) => segment.subnet)];
      expect(new Set(subnets).size).toBe(3);
      for (const segment of fleet.segments) {
        const base = segment.subnet.replace(/\.0\/24$/, ".");
        expect(fleet.hostsBehind(segment.number).every((h) => h.address.startsWith(base))).toBe(true);
      }
    });

    it("lists only reachable hosts in the inventory, and every host in known_hosts", () => {
      const inventory = parse(readFileSync(fleet.inventoryFile, "utf8"));
      expect(Object.keys(inventory.all.children.fleet.hosts)).toEqual(["h1", "h2"]);
      const knownAddresses = readFileSync(fleet.knownHostsFile, "utf8")
        .trim()
        .split("\n")
        .map((line) => line.split(" ")[0]);
      expect(knownAddresses).toEqual(fleet.hosts.map((h) => h.address));
    });

    it("answers from each hidden host through its chain of bastions (ssh -J)", async () => {
      for (const target of [host("h3"), host("h4"), host("h5")]) {
        const result = await sshThroughChain(plainSetup(), target, "hostname");
        expect(result, result.stderr).toMatchObject({ code: 0, stdout: `${target.name}\n` });
      }
    });

    it("reaches a hidden host with the fleet's own ssh_config alone", async () => {
      const result = await runCommand("ssh", ["-F", fleet.sshConfigFile, host("h5").address, "hostname"], {
        timeoutMs: SSH_TIMEOUT_MS,
      });
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: "h5\n" });
    });

    it("fails a direct connection from the controller to a hidden address at once (EHOSTUNREACH)", async () => {
      for (const target of [host("h3"), host("h5")]) {
        const started = Date.now();
        expect(await connectOutcome(target.address, 5_000)).toBe("EHOSTUNREACH");
        expect(Date.now() - started).toBeLessThan(UNREACHABLE_WITHIN_MS);
      }
    });

    it("runs exec inside hidden hosts", async () => {
      const result = await fleet.exec("h5", "hostname; ip -4 -o addr show dev eth0");
      expect(result, result.stderr).toMatchObject({ code: 0 });
      expect(result.stdout).toMatch(new RegExp(`^h5\\n.*inet ${host("h5").address.replace(/\./g, "\\.")}/24`));
    });

    it("leaves TCP forwarding on in the bastions (sshd -T)", async () => {
      for (const bastion of ["h1", "h3"]) {
        const result = await fleet.exec(bastion, 'sshd -T | grep -i "^allowtcpforwarding "');
        expect(result, result.stderr).toMatchObject({ code: 0, stdout: "allowtcpforwarding yes\n" });
      }
    });

    it("accepts a fleet-CA host certificate with only the @cert-authority line", async () => {
      expect(readFileSync(fleet.certKnownHostsFile!, "utf8")).toMatch(
        /^@cert-authority 198\.1[89]\.\d+\.\*,\S+,\S+ ssh-ed25519 \S+\n$/,
      );
      const result = await sshThroughChain(certificateOnlyFor(host("h1")), host("h1"), "hostname", { verbose: true });
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: "h1\n" });
      expect(result.stderr).toContain("Server host certificate: ssh-ed25519-cert-v01@openssh.com");
    });

    it("refuses foreign-CA, expired, wrong-principal and unsigned hosts with only the @cert-authority line", async () => {
      const refusals: Record<string, string> = {
        h2: "Host key verification failed",
        h3: "Certificate invalid: expired",
        h4: "Certificate invalid: name is not a listed principal",
        h5: "Host key verification failed",
      };
      for (const [name, message] of Object.entries(refusals)) {
        const result = await sshThroughChain(certificateOnlyFor(host(name)), host(name), "hostname");
        expect(result.code, `${name}: ${result.stderr}`).toBe(255);
        expect(result.stderr, name).toContain(message);
      }
    });

    it("logs in with only the user certificate, also through bastions, and not with its key alone", async () => {
      const withCertificate: ClientSetup = { ...plainSetup(), identityFile: fleet.userCertKeyFile! };
      expect(existsSync(`${fleet.userCertKeyFile}-cert.pub`)).toBe(true);
      for (const [user, target] of [
        ["root", "h1"],
        ["deploy", "h2"],
        ["root", "h5"],
      ] as const) {
        const result = await sshThroughChain(withCertificate, host(target), "id -un", { user });
        expect(result, `${user}@${target}: ${result.stderr}`).toMatchObject({ code: 0, stdout: `${user}\n` });
      }

      const keyWithoutCertificate = join(fleet.dir, "test-client", "user_key_alone");
      copyFileSync(fleet.userCertKeyFile!, keyWithoutCertificate);
      const refused = await sshThroughChain(
        { ...plainSetup(), identityFile: keyWithoutCertificate },
        host("h1"),
        "true",
      );
      expect(refused.code).toBe(255);
      expect(refused.stderr).toContain("Permission denied (publickey)");
    });

    it("removes every netns, interface, route, mount, process and claim on stop", async () => {
      const { prefix, dir, hosts } = fleet;
      const subnetBases = subnetBasesOf(prefix);
      expect(subnetBases).toHaveLength(3);
      const netInodes = hosts
        .map((h) => netInodeOfProcess(h.sshdPid))
        .filter((inode): inode is number => inode !== undefined);
      expect(netInodes).toHaveLength(hosts.length);
      expect(await fleetRoutesMentioning(subnetBases)).not.toEqual([]);

      await fleet.stop();

      expect(fleetNetnsNames(prefix)).toEqual([]);
      expect(fleetInterfaceNames(prefix)).toEqual([]);
      expect(await fleetRoutesMentioning(subnetBases)).toEqual([]);
      expect(mountPointsUnder(dir)).toEqual([]);
      expect(existsSync(dir)).toBe(false);
      expect(pidsInNetInodes(netInodes)).toEqual([]);
      expect(hosts.filter((h) => isProcessRunning(h.sshdPid))).toEqual([]);
      expect(subnetBasesOf(prefix)).toEqual([]);
      expect(readFleetRecord(prefix)).toBeUndefined();
    });
  },
);

async function fleetRoutesMentioning(subnetBases: string[]): Promise<string[]> {
  const routes = await runCommand("ip", ["-4", "route", "show", "table", "all"], { timeoutMs: 5_000 });
  return routes.stdout.split("\n").filter((line) => subnetBases.some((base) => line.includes(`${base}.`)));
}
