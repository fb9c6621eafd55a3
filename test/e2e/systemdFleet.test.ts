import { existsSync, readdirSync, readFileSync } from "node:fs";
import { processesMentioning } from "./helpers.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { readFleetRecord, subnetBasesOf } from "../fleet/registry.js";
import { runCommand, type CommandResult } from "../fleet/shell.js";
import { systemdFleetPrefixesOnMachine } from "../fleet/systemd/containers.js";
import { checkSystemdFleetPrerequisites } from "../fleet/systemd/prerequisites.js";
import { startSystemdFleet, type SystemdFleet, type SystemdFleetHost } from "../fleet/systemd/systemdFleet.js";
import { mountPointsUnder } from "../fleet/teardown.js";
import { subnetBase } from "../fleet/topology.js";

/** A cold machine first builds the cached rootfs with debootstrap (about a minute); a warm one boots in seconds. */
const STARTUP_TIMEOUT_MS = 10 * 60_000;
const TEST_TIMEOUT_MS = 60_000;
const SSH_TIMEOUT_MS = 20_000;
const PROOF_SYSCTL_FILE = "/etc/sysctl.d/90-provision-fleet-proof.conf";

let fleet: SystemdFleet;

function host(name: string): SystemdFleetHost {
  const found = fleet.hosts.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`fleet has no host ${name}`);
  return found;
}

function ssh(user: string, target: SystemdFleetHost, command: string): Promise<CommandResult> {
  const options = [
    ["-F", "/dev/null"],
    ["-o", `UserKnownHostsFile=${fleet.knownHostsFile}`],
    ["-o", "StrictHostKeyChecking=yes"],
    ["-o", "BatchMode=yes"],
    ["-o", "IdentitiesOnly=yes"],
    ["-o", "ConnectTimeout=10"],
    ["-o", "LogLevel=ERROR"],
    ["-i", fleet.clientKeyFile],
  ].flat();
  return runCommand("ssh", [...options, `${user}@${target.address}`, command], { timeoutMs: SSH_TIMEOUT_MS });
}

async function sshOk(user: string, target: SystemdFleetHost, command: string): Promise<string> {
  const result = await ssh(user, target, command);
  expect(result, `ssh ${user}@${target.name} ${command}`).toMatchObject({ code: 0 });
  return result.stdout.trim();
}

async function execOk(name: string, script: string): Promise<string> {
  const result = await fleet.exec(name, script);
  expect(result, `exec on ${name}: ${script}`).toMatchObject({ code: 0 });
  return result.stdout.trim();
}

/** In clock ticks since this machine booted: a container's reboot starts a new PID 1, with a later start time. */
function pid1StartTime(name: string): Promise<string> {
  return execOk(name, "cut -d' ' -f22 /proc/1/stat");
}

describe("local fleet of systemd hosts booted by systemd-nspawn", { timeout: TEST_TIMEOUT_MS }, () => {
  beforeAll(async () => {
    const problems = checkSystemdFleetPrerequisites();
    if (problems.length > 0) throw new Error(`systemd fleet prerequisites missing:\n- ${problems.join("\n- ")}`);
    fleet = await startSystemdFleet({ hosts: 2 });
  }, STARTUP_TIMEOUT_MS);

  afterAll(async () => {
    await fleet?.stop();
  }, TEST_TIMEOUT_MS);

  it("describes every host in the inventory and known_hosts, each with host keys of its own", () => {
    expect(fleet.subnet).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
    const inventory = parse(readFileSync(fleet.inventoryFile, "utf8"));
    expect(inventory.all.vars).toEqual({ ansible_user: "root", ansible_ssh_private_key_file: fleet.clientKeyFile });
    const expectedHosts = Object.fromEntries(fleet.hosts.map((h) => [h.name, { ansible_host: h.address }]));
    expect(inventory.all.children.fleet.hosts).toEqual(expectedHosts);

    const knownHosts = readFileSync(fleet.knownHostsFile, "utf8").trim().split("\n");
    const keysOf = (address: string) => knownHosts.filter((line) => line.startsWith(`${address} `));
    for (const { address } of fleet.hosts) {
      expect(
        keysOf(address)
          .map((line) => line.split(" ")[1])
          .sort(),
      ).toEqual(["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]);
    }
    const allKeys = knownHosts.map((line) => line.split(" ")[2]);
    expect(new Set(allKeys).size).toBe(allKeys.length);
  });

  it("boots systemd as PID 1 and lets root and deploy (passwordless sudo) in over SSH with strict host keys", async () => {
    for (const target of fleet.hosts) {
      expect(target.lastBoot).toMatchObject({ host: target.name, state: "running", failedUnits: [] });
      const [pid1, state, hostname] = (
        await sshOk("root", target, "ps -p 1 -o comm=; systemctl is-system-running; hostname")
      ).split("\n");
      expect({ pid1, state, hostname }).toEqual({ pid1: "systemd", state: "running", hostname: target.name });
      // A real PAM session: logind registered the login.
      expect(await sshOk("deploy", target, "sudo -n id -u; loginctl show-session $XDG_SESSION_ID -p Remote")).toBe(
        "0\nRemote=yes",
      );
    }
  });

  it("forgets runtime changes on reboot and applies persisted ones, as a real machine does", async () => {
    const [h1, h2] = [host("h1"), host("h2")];
    const extraAddress = `${subnetBase(fleet.subnet)}.200`;
    const defaultKeepalive = await execOk("h2", "sysctl -n net.ipv4.tcp_keepalive_time");
    const [h1Before, h2Before] = [await pid1StartTime("h1"), await pid1StartTime("h2")];
    await execOk(
      "h1",
      [
        `ip addr add ${extraAddress}/32 dev host0`,
        "sysctl -q -w net.ipv4.tcp_keepalive_time=1234",
        `echo 'net.ipv4.tcp_fin_timeout = 17' > ${PROOF_SYSCTL_FILE}`,
        "touch /tmp/provision-fleet-proof",
      ].join(" && "),
    );
    expect(await execOk("h1", "ip -4 -o addr show dev host0")).toContain(`${extraAddress}/32`);
    expect(await execOk("h1", "sysctl -n net.ipv4.tcp_keepalive_time")).toBe("1234");

    const [report] = await fleet.reboot("h1");
    expect(report).toMatchObject({ host: "h1", state: "running", failedUnits: [] });
    expect(h1.lastBoot).toBe(report);

    // Through SSH: the host came back with the same host keys and its networkd-configured address.
    const after = await sshOk(
      "root",
      h1,
      "ip -4 -o addr show dev host0; sysctl -n net.ipv4.tcp_keepalive_time net.ipv4.tcp_fin_timeout; ls /tmp",
    );
    expect(after).toContain(`${h1.address}/24`);
    expect(after).not.toContain(extraAddress);
    expect(after).toContain(`\n${defaultKeepalive}\n17`);
    expect(after).not.toContain("provision-fleet-proof");
    expect(Number(await pid1StartTime("h1"))).toBeGreaterThan(Number(h1Before));
    expect(await pid1StartTime("h2")).toBe(h2Before);
    expect(await sshOk("root", h2, "sysctl -n net.ipv4.tcp_fin_timeout")).not.toBe("17");
  });

  it("leaves no process, mount, interface, cgroup, claim or directory behind once stopped", async () => {
    const { prefix, dir, bridge } = fleet;
    const bridgePorts = fleet.hosts.map((h) => `vb-${h.machine}`);
    expect(processesMentioning(`--machine=${prefix}`).length).toBe(fleet.hosts.length);

    await fleet.stop();

    expect(processesMentioning(`--machine=${prefix}`)).toEqual([]);
    expect(mountPointsUnder(dir)).toEqual([]);
    const interfaces = readdirSync("/sys/class/net");
    expect(interfaces.filter((name) => name === bridge || bridgePorts.includes(name))).toEqual([]);
    expect(systemdFleetPrefixesOnMachine()).not.toContain(prefix);
    expect(readFleetRecord(prefix)).toBeUndefined();
    expect(subnetBasesOf(prefix)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    await fleet.stop();
  });
});
