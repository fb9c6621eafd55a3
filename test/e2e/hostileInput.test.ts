import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, tempDir, writeFile } from "./helpers.js";

const ALL_ROLES = [
  "fd-limits",
  "ephemeral-ports",
  "tw-reuse",
  "syn-backlog",
  "keepalive",
  "conntrack",
  "secondary-source-ips",
];

/** A hostile value, where a user would write it, and where its error must point. */
interface Hostile {
  yaml: string;
  keyPath: string;
  /** The text the error's column points at (the value's or key's first character). */
  token: string;
}

/** h1's vars: one hostile value per role param that takes a string (and a few that must not), and the login user. */
const HOST_VARS: Array<string | Hostile> = [
  {
    yaml: `      ansible_user: "root -oProxyCommand=touch /tmp/pwned-user"`,
    keyPath: "all.hosts.h1.ansible_user",
    token: `"root`,
  },
  "      fd_limits:",
  {
    yaml: `        users: ["root; touch /tmp/pwned-users"]`,
    keyPath: "all.hosts.h1.fd_limits.users[0]",
    token: `"root;`,
  },
  {
    yaml: `        services: ["$(touch /tmp/pwned-services)"]`,
    keyPath: "all.hosts.h1.fd_limits.services[0]",
    token: `"$(`,
  },
  "      secondary_source_ips:",
  {
    yaml: `        interface: "eth0\\ntouch /tmp/pwned-interface"`,
    keyPath: "all.hosts.h1.secondary_source_ips.interface",
    token: `"eth0`,
  },
  {
    yaml: `        addresses: ["198.18.5.10/24; touch /tmp/pwned-addresses"]`,
    keyPath: "all.hosts.h1.secondary_source_ips.addresses[0]",
    token: `"198`,
  },
  {
    yaml: `        stack: "\`touch /tmp/pwned-stack\`"`,
    keyPath: "all.hosts.h1.secondary_source_ips.stack",
    token: `"\``,
  },
  "      ephemeral_ports:",
  {
    yaml: `        reserved_ports: ["../../etc/passwd"]`,
    keyPath: "all.hosts.h1.ephemeral_ports.reserved_ports[0]",
    token: `"../`,
  },
  "      tw_reuse:",
  { yaml: `        "x; rm -rf /": 1`, keyPath: `all.hosts.h1.tw_reuse.${JSON.stringify("x; rm -rf /")}`, token: `"x;` },
  "      keepalive:",
  {
    yaml: `        tcp_keepalive_time: "600; touch /tmp/pwned-keepalive"`,
    keyPath: "all.hosts.h1.keepalive.tcp_keepalive_time",
    token: `"600`,
  },
  "      syn_backlog:",
  { yaml: `        somaxconn: "$(touch /tmp/pwned-syn)"`, keyPath: "all.hosts.h1.syn_backlog.somaxconn", token: `"$(` },
  "      conntrack:",
  {
    yaml: `        nf_conntrack_max: "1048576 && touch /tmp/pwned-conntrack"`,
    keyPath: "all.hosts.h1.conntrack.nf_conntrack_max",
    token: `"1048576`,
  },
];
const HOSTILE = HOST_VARS.filter((l): l is Hostile => typeof l !== "string");

/**
 * An inventory full of hostile values: `plan` lists every one as file:line:col key.path and exits
 * 1 without opening a single connection, which the host kernel's count of accepted TCP
 * connections proves.
 */
describe("hostile input never reaches a host", () => {
  let fleet: Fleet;
  let dir: string;
  let sshdLog: string;
  let playbook: string;
  const header = () => [
    "all:",
    "  vars:",
    `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
    "  hosts:",
    "    h1:",
    `      ansible_host: ${fleet.hosts[0]!.address}`,
  ];
  /** Tcp PassiveOpens of h1's network namespace: connections its listeners have accepted. */
  const passiveOpens = async () => {
    const snmp = (await fleet.exec("h1", "cat /proc/net/snmp")).stdout.split("\n").filter((l) => l.startsWith("Tcp:"));
    const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
    const value = Number(values?.[names?.indexOf("PassiveOpens") ?? -1]);
    expect(Number.isInteger(value), snmp.join("\n")).toBe(true);
    return value;
  };
  const pwnedOnHost = async () => (await fleet.exec("h1", "ls /tmp | grep pwned || true")).stdout.trim();
  const pwnedHere = () =>
    ["user", "users", "services", "interface", "addresses", "stack", "keepalive", "syn", "conntrack"].filter((s) =>
      existsSync(`/tmp/pwned-${s}`),
    );

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 1 });
    dir = tempDir("hostile");
    sshdLog = join(fleet.dir, "h1", "sshd.log");
    playbook = writeFile(dir, "all-roles.yaml", `- hosts: all\n  roles: [${ALL_ROLES.join(", ")}]\n`);
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan exits 1 listing every hostile value at file:line:col key.path, and sends nothing", async () => {
    const lines = [...header(), ...HOST_VARS.map((l) => (typeof l === "string" ? l : l.yaml)), ""];
    const inventory = writeFile(dir, "hostile.yaml", lines.join("\n"));
    const opensBefore = await passiveOpens();

    const r = await provision(["plan", inventory, "--playbook", playbook, "--known-hosts", fleet.knownHostsFile]);

    expect(r.code, r.stdout + r.stderr).toBe(1);
    for (const h of HOSTILE) {
      const index = lines.indexOf(h.yaml);
      const where = `${inventory}:${index + 1}:${h.yaml.indexOf(h.token) + 1} ${h.keyPath}: `;
      expect(
        r.stderr.split("\n").some((l) => l.startsWith(where)),
        `missing ${where}\n${r.stderr}`,
      ).toBe(true);
    }
    expect(r.stderr.trim().split("\n").at(-1)).toBe(
      `${HOSTILE.length} errors in the configuration; nothing was sent to any host.`,
    );
    expect(r.stdout).toBe("");

    // The host's kernel counts every TCP connection accepted in its namespace as it happens: no
    // waiting for a log line that might come late.
    expect(await passiveOpens()).toBe(opensBefore);
    expect(await pwnedOnHost()).toBe("");
    expect(pwnedHere()).toEqual([]);
  });

  it("the same inventory without the hostile values does connect (so the unchanged count above means something)", async () => {
    const inventory = writeFile(dir, "clean.yaml", [...header(), ""].join("\n"));
    const twReuse = writeFile(dir, "tw-reuse.yaml", "- hosts: all\n  roles: [tw-reuse]\n");
    const opensBefore = await passiveOpens();
    const logBefore = readFileSync(sshdLog, "utf8");

    const r = await provision(["plan", inventory, "--playbook", twReuse, "--known-hosts", fleet.knownHostsFile]);

    expect([0, 2], r.stdout + r.stderr).toContain(r.code);
    expect(await passiveOpens()).toBeGreaterThan(opensBefore);
    // The login itself, from sshd's side: its log line may land after the CLI exits, so wait (bounded) for it.
    const deadline = Date.now() + 5000;
    while (
      !readFileSync(sshdLog, "utf8").slice(logBefore.length).includes("Accepted publickey") &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(readFileSync(sshdLog, "utf8").slice(logBefore.length)).toContain("Accepted publickey for root");
  });
});
