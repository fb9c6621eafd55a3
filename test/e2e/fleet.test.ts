import { existsSync, readFileSync } from "node:fs";
import { processesMentioning } from "./helpers.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { checkFleetPrerequisites, startFleet, type Fleet, type FleetHost } from "../fleet/fleet.js";
import { isProcessRunning, runCommand, type CommandResult } from "../fleet/shell.js";

const SUITE_TIMEOUT_MS = 60_000;
const SSH_TIMEOUT_MS = 20_000;
const PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";
const DRIFTED_PORT_RANGE = "21000 41000";
const MARKER_FILE = `/etc/provision-fleet-marker-${process.pid}`;

let fleet: Fleet;

function hostNamed(name: string): FleetHost {
  const host = fleet.hosts.find((candidate) => candidate.name === name);
  if (!host) throw new Error(`fleet has no host ${name}`);
  return host;
}

function ssh(user: string, host: FleetHost, command: string, input = ""): Promise<CommandResult> {
  const options = [
    "-F",
    "/dev/null",
    "-o",
    `UserKnownHostsFile=${fleet.knownHostsFile}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-i",
    fleet.clientKeyFile,
  ];
  return runCommand("ssh", [...options, `${user}@${host.address}`, command], { input, timeoutMs: SSH_TIMEOUT_MS });
}

function normalizedPortRange(text: string): string {
  return text.trim().split(/\s+/).join(" ");
}

describe("local fleet of real SSH hosts", { timeout: SUITE_TIMEOUT_MS }, () => {
  const machinePortRange = normalizedPortRange(readFileSync(PORT_RANGE_FILE, "utf8"));

  beforeAll(async () => {
    const problems = checkFleetPrerequisites();
    if (problems.length > 0) throw new Error(`fleet prerequisites missing:\n- ${problems.join("\n- ")}`);
    fleet = await startFleet({ hosts: 3 });
  }, SUITE_TIMEOUT_MS);

  afterAll(async () => {
    await fleet?.stop();
  }, SUITE_TIMEOUT_MS);

  it("describes every host in the inventory and known_hosts", () => {
    const inventory = parse(readFileSync(fleet.inventoryFile, "utf8"));
    expect(inventory.all.vars).toEqual({ ansible_user: "root", ansible_ssh_private_key_file: fleet.clientKeyFile });
    const expectedHosts = Object.fromEntries(fleet.hosts.map((host) => [host.name, { ansible_host: host.address }]));
    expect(inventory.all.children.fleet.hosts).toEqual(expectedHosts);
    const knownHosts = readFileSync(fleet.knownHostsFile, "utf8").trim().split("\n");
    expect(knownHosts.map((line) => line.split(" ")[0])).toEqual(fleet.hosts.map((host) => host.address));
    expect(fleet.subnet).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
  });

  it("lets root log into every host, which reports its own hostname", async () => {
    for (const host of fleet.hosts) {
      const result = await ssh("root", host, "hostname; cat /etc/hostname");
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: `${host.name}\n${host.name}\n` });
    }
  });

  it("keeps a sysctl changed on one host private to that host", async () => {
    const drift = await fleet.exec("h1", `sysctl -q -w net.ipv4.ip_local_port_range="${DRIFTED_PORT_RANGE}"`);
    expect(drift, drift.stderr).toMatchObject({ code: 0 });

    const [onDrifted, onOther] = await Promise.all([
      ssh("root", hostNamed("h1"), `cat ${PORT_RANGE_FILE}`),
      ssh("root", hostNamed("h2"), `cat ${PORT_RANGE_FILE}`),
    ]);
    expect(normalizedPortRange(onDrifted.stdout)).toBe(DRIFTED_PORT_RANGE);
    expect(normalizedPortRange(onOther.stdout)).not.toBe(DRIFTED_PORT_RANGE);
    expect(normalizedPortRange(readFileSync(PORT_RANGE_FILE, "utf8"))).toBe(machinePortRange);
  });

  it("gives deploy password-less sudo without warnings", async () => {
    const result = await ssh("deploy", hostNamed("h2"), "sudo -n true");
    expect(result).toMatchObject({ code: 0, stderr: "" });
  });

  it("makes deployw sudo ask for the fleet sudo password", async () => {
    const host = hostNamed("h3");
    const withoutPassword = await ssh("deployw", host, "sudo -n true");
    expect(withoutPassword.code).not.toBe(0);
    expect(withoutPassword.stderr).toContain("password is required");

    const withPassword = await ssh("deployw", host, "sudo -S -p '' id -u", `${fleet.sudoPassword}\n`);
    expect(withPassword, withPassword.stderr).toMatchObject({ code: 0, stdout: "0\n" });
  });

  it("keeps /etc changes private to the host", async () => {
    const write = await fleet.exec("h1", `echo drift > ${MARKER_FILE}`);
    expect(write, write.stderr).toMatchObject({ code: 0 });

    const seenOnHost = await ssh("root", hostNamed("h1"), `cat ${MARKER_FILE}`);
    expect(seenOnHost.stdout).toBe("drift\n");
    expect((await fleet.exec("h2", `test -e ${MARKER_FILE}`)).code).toBe(1);
    expect(existsSync(MARKER_FILE)).toBe(false);
  });

  it("reports a failing command through its exit code instead of throwing", async () => {
    const result = await fleet.exec("h2", "echo out; echo err >&2; exit 7");
    expect(result).toEqual({ stdout: "out\n", stderr: "err\n", code: 7 });
  });

  it("removes every trace of the fleet on stop", async () => {
    const { prefix, dir, hosts } = fleet;
    // What a fault test killed before its cleanup leaves in the root namespace: a route into the fleet.
    const blackhole = new RegExp(`^blackhole ${hosts[0]!.address.replace(/\./g, "\\.")}\\s*$`, "m");
    const blackholes = async () => (await runCommand("ip", ["route", "show", "type", "blackhole"])).stdout;
    expect((await runCommand("ip", ["route", "add", "blackhole", `${hosts[0]!.address}/32`])).code).toBe(0);
    expect(await blackholes()).toMatch(blackhole);
    await fleet.stop();
    await fleet.stop();

    expect(await blackholes()).not.toMatch(blackhole);
    const netns = await runCommand("ip", ["netns", "list"]);
    expect(netns.stdout).not.toContain(prefix);
    const links = await runCommand("ip", ["-o", "link"]);
    expect(links.stdout).not.toContain(prefix);
    expect(existsSync(dir)).toBe(false);
    expect(hosts.filter((host) => isProcessRunning(host.sshdPid))).toEqual([]);
    expect(processesMentioning(prefix)).toEqual([]);
  });
});
