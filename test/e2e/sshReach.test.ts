import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet, type FleetHost } from "../fleet/fleet.js";
import { provision } from "./helpers.js";

/**
 * Issue 11 end to end: hosts reached the way the user's OpenSSH reaches them — through one or two
 * bastions (ProxyJump from ansible_ssh_common_args or from ssh_config), by an ssh_config alias,
 * through a ProxyCommand — with every hop's host key checked, and one connection per bastion.
 */

const RUN_TIMEOUT_MS = 180_000;

function sshdLog(fleet: Fleet, name: string): string {
  const host = fleet.hosts.find((h) => h.name === name)!;
  return readFileSync(join(dirname(host.etcDir), "sshd.log"), "utf8");
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, "g"))?.length ?? 0;
}

function hostsYaml(hosts: FleetHost[], indent: string): string[] {
  return hosts.flatMap((h) => [`${indent}${h.name}:`, `${indent}  ansible_host: ${h.address}`]);
}

/** An inventory in the fleet's group, so its group_vars (what these namespaces can take) apply. */
function fleetInventory(hostLines: string[]): string {
  return ["all:", "  children:", "    fleet:", "      hosts:", ...hostLines.map((l) => `        ${l}`), ""].join("\n");
}

describe("hosts behind bastions, aliases and ProxyCommand", () => {
  let fleet: Fleet;
  let h1: FleetHost;
  let h3: FleetHost;
  let behindOne: FleetHost[];
  let behindTwo: FleetHost[];
  let sshConfig: string;
  let inventory: string;

  beforeAll(async () => {
    // h1 and h2 are reachable; h3…h22 only through h1; h23 and h24 only through h1 and then h3.
    fleet = await startFleet({
      hosts: 2,
      segments: [
        { via: "h1", hosts: 20 },
        { via: "h3", hosts: 2 },
      ],
    });
    h1 = fleet.hosts.find((h) => h.name === "h1")!;
    h3 = fleet.hosts.find((h) => h.name === "h3")!;
    behindOne = fleet.hostsBehind(1);
    behindTwo = fleet.hostsBehind(2);
    // The user's ssh_config: how to log in everywhere, and the two-hop chain for segment 2.
    sshConfig = join(fleet.dir, "client_ssh_config");
    writeFileSync(
      sshConfig,
      [
        `Host ${behindTwo.map((h) => h.address).join(" ")}`,
        `  ProxyJump root@${h1.address},root@${h3.address}`,
        `Host web-alias`,
        `  HostName ${fleet.hosts.find((h) => h.name === "h2")!.address}`,
        `  User deploy`,
        `  Port 22`,
        `  IdentityFile ${fleet.clientKeyFile}`,
        `Host proxied`,
        `  HostName ${behindOne[1]!.address}`,
        `  ProxyCommand ssh -F ${join(fleet.dir, "client_ssh_config")} -W %h:%p root@${h1.address}`,
        "Host *",
        `  IdentityFile ${fleet.clientKeyFile}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${fleet.knownHostsFile}`,
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "",
      ].join("\n"),
    );
    // In the fleet's directory, so group_vars/fleet.yaml (what these namespaces can take) applies.
    inventory = join(fleet.dir, "hidden.yml");
    writeFileSync(
      inventory,
      [
        "all:",
        "  vars:",
        "    ansible_user: root",
        "  children:",
        "    fleet:",
        "      children:",
        "        behind_one:",
        "          vars:",
        `            ansible_ssh_common_args: -J root@${h1.address}`,
        "          hosts:",
        ...hostsYaml(behindOne, "            "),
        "        behind_two:",
        "          hosts:",
        ...hostsYaml(behindTwo, "            "),
        "",
      ].join("\n"),
    );
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
  });

  it("a hidden host is not reachable without its bastion, and the error says what to set", async () => {
    const direct = join(fleet.dir, "direct.yml");
    writeFileSync(
      direct,
      [
        "all:",
        "  hosts:",
        `    lonely:`,
        `      ansible_host: ${behindOne[0]!.address}`,
        "      ansible_user: root",
        "",
      ].join("\n"),
    );
    const r = await provision(["plan", direct, "--ssh-config", sshConfig]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(
      /no route to 198\.\d+\.\d+\.\d+:22 \(EHOSTUNREACH\); if it is reachable only through a bastion, set ProxyJump/,
    );
  });

  it(
    "plan over 22 hosts behind one and two chained bastions opens one connection to the bastion",
    { timeout: 240_000 },
    async () => {
      const before = count(sshdLog(fleet, "h1"), /Accepted publickey for root/);
      const plan = await provision(["plan", inventory, "--ssh-config", sshConfig, "-v"], { timeoutMs: RUN_TIMEOUT_MS });
      expect(plan.code, plan.stdout + plan.stderr.slice(-3000)).toBe(2);
      expect(plan.stdout).toMatch(/Plan: \d+ changes on 22 hosts, 0 unchanged, 0 failed\./);
      expect(count(sshdLog(fleet, "h1"), /Accepted publickey for root/) - before).toBe(1);
      expect(plan.stderr).toContain(
        `h23: connecting (ssh2 root@${behindTwo[0]!.address}:22 via root@${h1.address}:22 → root@${h3.address}:22)`,
      );
    },
  );

  it(
    "run, verify and plan again through one and two chained bastions (the lockout guard's fresh login goes through them too)",
    { timeout: 240_000 },
    async () => {
      const limit = [...behindOne.slice(0, 3), ...behindTwo].map((h) => h.name).join(",");
      const before = count(sshdLog(fleet, "h1"), /Accepted publickey for root/);
      const run = await provision(["run", inventory, "--ssh-config", sshConfig, "--limit", limit, "--yes"], {
        timeoutMs: RUN_TIMEOUT_MS,
      });
      expect(run.code, run.stdout + run.stderr.slice(-3000)).toBe(0);
      expect(run.stdout).toMatch(/Run: 5 changed, 0 unchanged, 0 failed, 0 unreachable\./);
      expect(count(sshdLog(fleet, "h1"), /Accepted publickey for root/) - before).toBe(1);
      for (const h of [behindOne[0]!, behindTwo[1]!]) {
        expect((await fleet.exec(h.name, "cat /proc/sys/net/ipv4/tcp_tw_reuse")).stdout.trim()).toBe("1");
      }
      const verify = await provision(["verify", inventory, "--ssh-config", sshConfig, "--limit", limit], {
        timeoutMs: RUN_TIMEOUT_MS,
      });
      expect(verify.code, verify.stdout + verify.stderr.slice(-2000)).toBe(0);
      const again = await provision(["plan", inventory, "--ssh-config", sshConfig, "--limit", limit], {
        timeoutMs: RUN_TIMEOUT_MS,
      });
      expect(again.code, again.stdout + again.stderr.slice(-2000)).toBe(0);
    },
  );

  it("a chain written only in ssh_config, one hop per host (the first hop's own ProxyJump is followed)", async () => {
    const inv = join(fleet.dir, "chain.yml");
    writeFileSync(inv, fleetInventory(hostsYaml([behindTwo[0]!], "")));
    const r = await provision(["plan", inv, "--ssh-config", fleet.sshConfigFile, "-v"]);
    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(r.stderr).toContain(`via root@${h1.address}:22 → root@${h3.address}:22`);
  });

  it("a host known only by its ssh_config alias: HostName, User, Port and IdentityFile come from ssh_config", async () => {
    const inv = join(fleet.dir, "alias.yml");
    writeFileSync(inv, fleetInventory(["web-alias:", "  ansible_become: true"]));
    const before = count(sshdLog(fleet, "h2"), /Accepted publickey for deploy/);
    const r = await provision(["plan", inv, "--ssh-config", sshConfig]);
    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(r.stdout).toContain("web-alias");
    expect(count(sshdLog(fleet, "h2"), /Accepted publickey for deploy/) - before).toBe(1);
  });

  it("a ProxyCommand carries the connection", async () => {
    const inv = join(fleet.dir, "proxied.yml");
    writeFileSync(inv, fleetInventory(["proxied:", "  ansible_user: root"]));
    const r = await provision(["plan", inv, "--ssh-config", sshConfig, "-v"]);
    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(r.stderr).toContain("via ProxyCommand");
    // The host saw the connection come from the bastion's side of its segment.
    expect(r.stderr).toContain(`proxied: connected (${behindOne[1]!.address})`);
  });

  it("a bastion whose key is unknown is refused before anything is sent through it, and named", async () => {
    const emptyKnownHosts = join(fleet.dir, "empty_known_hosts");
    writeFileSync(emptyKnownHosts, "");
    const strictConfig = join(fleet.dir, "strict_ssh_config");
    writeFileSync(
      strictConfig,
      readFileSync(sshConfig, "utf8").replace(
        `UserKnownHostsFile ${fleet.knownHostsFile}`,
        `UserKnownHostsFile ${emptyKnownHosts}`,
      ),
    );
    const inv = join(fleet.dir, "one.yml");
    writeFileSync(
      inv,
      ["all:", "  hosts:", ...hostsYaml([behindTwo[0]!], "    "), "  vars:", "    ansible_user: root", ""].join("\n"),
    );
    const r = await provision(["plan", inv, "--ssh-config", strictConfig]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(
      new RegExp(
        `bastion root@${h1.address.replace(/\./g, "\\.")}:22: host key of ${h1.address.replace(/\./g, "\\.")}:22 is unknown`,
      ),
    );
  });

  it("UserKnownHostsFile /dev/null with accept-new keeps nothing: not even in the global file", async () => {
    const globalFile = join(fleet.dir, "global_known_hosts");
    writeFileSync(globalFile, "");
    const config = join(fleet.dir, "devnull_ssh_config");
    writeFileSync(
      config,
      [
        "Host *",
        "  UserKnownHostsFile /dev/null",
        `  GlobalKnownHostsFile ${globalFile}`,
        "  StrictHostKeyChecking accept-new",
        `  IdentityFile ${fleet.clientKeyFile}`,
        "",
      ].join("\n"),
    );
    const inv = join(fleet.dir, "h2.yml");
    writeFileSync(
      inv,
      fleetInventory([
        `h2:`,
        `  ansible_host: ${fleet.hosts.find((h) => h.name === "h2")!.address}`,
        "  ansible_user: root",
      ]),
    );
    const r = await provision(["plan", inv, "--ssh-config", config]);
    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(readFileSync(globalFile, "utf8")).toBe("");
  });

  it("probe runs between two hosts behind the bastion", { timeout: 180_000 }, async () => {
    const probeInventory = join(fleet.dir, "probe.yml");
    writeFileSync(probeInventory, readFileSync(inventory, "utf8"));
    const [client, server] = [behindOne[2]!, behindOne[3]!];
    const r = await provision(
      [
        "probe",
        probeInventory,
        "--ssh-config",
        sshConfig,
        "--client",
        client.name,
        "--server",
        server.name,
        "--duration",
        "1",
        "--max",
        "200",
        "--json",
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { cleanup: { ok: boolean } };
    expect(report.cleanup.ok).toBe(true);
  });
});

describe("host and user certificates", () => {
  let fleet: Fleet;
  let sshConfig: string;

  // h1's certificate is good; h2's is signed by a CA nobody trusts, h3's expired, h4's names
  // another host, h5 has none. Only the CA is in known_hosts.
  beforeAll(async () => {
    fleet = await startFleet({
      hosts: 5,
      userCertificates: true,
      hostCertificates: ({ name }) =>
        ({
          h1: {},
          h2: { signedBy: "foreign" as const },
          h3: { validity: "20200101:20200102" },
          h4: { principals: ["elsewhere.example"] },
        })[name] ?? null,
    });
    sshConfig = join(fleet.dir, "client_ssh_config");
    writeFileSync(
      sshConfig,
      [
        "Host *",
        `  UserKnownHostsFile ${fleet.certKnownHostsFile}`,
        "  GlobalKnownHostsFile /dev/null",
        `  IdentityFile ${fleet.clientKeyFile}`,
        "  IdentitiesOnly yes",
        "",
      ].join("\n"),
    );
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
  });

  const authAttempts = (name: string) =>
    count(sshdLog(fleet, name), /(Accepted|Failed|Postponed) publickey|Accepted certificate/);

  it("a host certificate signed by a trusted CA is accepted; expired, foreign and wrong-principal certificates and a plain key are refused before authenticating, each saying why", async () => {
    const before = Object.fromEntries(["h2", "h3", "h4", "h5"].map((h) => [h, authAttempts(h)]));
    const r = await provision(["plan", fleet.inventoryFile, "--ssh-config", sshConfig], { timeoutMs: RUN_TIMEOUT_MS });
    const out = r.stdout + r.stderr;
    expect(r.code).toBe(1);
    const address = (name: string) => fleet.hosts.find((h) => h.name === name)!.address.replace(/\./g, "\\.");
    expect(out).not.toMatch(/h1[^\n]*refused/);
    expect(out).toMatch(
      new RegExp(
        `host certificate of ${address("h2")}:22 refused before authenticating: certificate "[^"]+" \\(serial \\d+\\) is signed by CA ssh-ed25519 SHA256:\\S+, which no @cert-authority line trusts for ${address("h2")}`,
      ),
    );
    expect(out).toMatch(
      new RegExp(
        `host certificate of ${address("h3")}:22 refused before authenticating: certificate "[^"]+" \\(serial \\d+\\) expired at 2020-01-02`,
      ),
    );
    expect(out).toMatch(
      new RegExp(
        `host certificate of ${address("h4")}:22 refused before authenticating: certificate "[^"]+" \\(serial \\d+\\) is valid for elsewhere\\.example, not for ${address("h4")}`,
      ),
    );
    expect(out).toMatch(
      new RegExp(
        `host key of ${address("h5")}:22 is unknown \\(ssh-ed25519 SHA256:\\S+\\); refused before authenticating`,
      ),
    );
    for (const h of ["h2", "h3", "h4", "h5"]) expect(authAttempts(h), h).toBe(before[h]);
    expect(r.stdout).toMatch(/h1/);
  });

  it("a login with a user certificate only goes through the OpenSSH client; ssh2 alone says why it cannot", async () => {
    const inv = join(fleet.dir, "usercert.yml");
    const h1 = fleet.hosts.find((h) => h.name === "h1")!;
    writeFileSync(
      inv,
      fleetInventory([
        "h1:",
        `  ansible_host: ${h1.address}`,
        "  ansible_user: deploy",
        "  ansible_become: true",
        `  ansible_ssh_private_key_file: ${fleet.userCertKeyFile}`,
      ]),
    );
    const r = await provision(["plan", inv, "--ssh-config", sshConfig, "-v"], { timeoutMs: RUN_TIMEOUT_MS });
    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(r.stderr).toContain("h1: connecting (openssh deploy@");
    expect(sshdLog(fleet, "h1")).toMatch(/Accepted certificate ID "[^"]+" \(serial \d+\) signed by ED25519 CA/);

    const forced = await provision(["plan", inv, "--ssh-config", sshConfig, "--ssh-client", "ssh2"], {
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(forced.code).toBe(1);
    expect(forced.stdout + forced.stderr).toMatch(
      /needs the OpenSSH client \(.*certificate.*\), but --ssh-client ssh2 was given/,
    );
  });
});
