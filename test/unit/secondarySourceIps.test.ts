import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import secondarySourceIps, { ownedAddresses, type SecondarySourceIpsParams } from "../../roles/secondary-source-ips.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import { ipAddressesProbe, liveAddresses, networkOf, parseCidr, type Cidr } from "../../src/facts/ipAddresses.js";
import { networkStackProbe } from "../../src/facts/networkStack.js";
import type { Probe } from "../../src/facts/probe.js";
import { planHost, type HostPlan, type PlannedChange } from "../../src/plan.js";
import { probeResult, type Facts } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { hostWith, paramsOf } from "./_roles.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "secondary-source-ips");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8").replace(/\n$/, "");

const SSH = "198.18.1.2";
const RANGE = "net.ipv4.ip_local_port_range";
const NETWORKD_DROPIN = "/etc/systemd/network/10-eth0.network.d/60-provision-secondary-ips.conf";
const IFUPDOWN_HOOK = "/etc/network/if-up.d/60-provision-secondary-ips";
const LEGACY_STANZA = "/etc/network/interfaces.d/60-provision-secondary-ips";
const STATE = "/etc/provision/secondary-source-ips.state";
const ETH0_NETWORK = "[Match]\nName=eth0\n\n[Network]\nAddress=198.18.1.2/24\n";
const DEBIAN_INTERFACES =
  "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet static\n  address 198.18.1.2/24\n";

/** One network-stack probe record, as the probe prints it. */
function line(kind: string, path: string, content: string | null): string {
  return `${kind} ${Buffer.from(path).toString("base64")} ${content === null ? "-" : Buffer.from(content).toString("base64")}`;
}

/**
 * What the ip-addresses probe prints for lo and the given interfaces: `ip -j addr show`, where the
 * kernel marks every later IPv4 address of a subnet `secondary`, then the promote_secondaries lines
 * (null: none, as an older probe printed). An entry may carry flags: "2001:db8::5/64 dadfailed".
 */
function probeOutput(ifaces: Record<string, string[]>, promote: Record<string, string> | null = {}): string {
  const all: Record<string, string[]> = { lo: ["127.0.0.1/8", "::1/128"], ...ifaces };
  const link = (ifname: string, entries: string[]) => {
    const seen: Cidr[] = [];
    const addr_info = entries.map((entry) => {
      const [text, ...flags] = entry.split(" ");
      const c = parseCidr(text!) as Cidr;
      const secondary =
        c.family === 4 && seen.some((p) => p.family === 4 && p.prefix === c.prefix && networkOf(p) === networkOf(c));
      seen.push(c);
      return {
        family: c.family === 4 ? "inet" : "inet6",
        local: c.address,
        prefixlen: c.prefix,
        ...(secondary ? { secondary: true } : {}),
        ...Object.fromEntries(flags.map((f) => [f, true])),
      };
    });
    return { ifname, addr_info };
  };
  const json = JSON.stringify(Object.entries(all).map(([n, a]) => link(n, a)));
  if (promote === null) return json;
  const values: Record<string, string> = {
    all: "0",
    default: "0",
    ...Object.fromEntries(Object.keys(all).map((n) => [n, "0"])),
    ...promote,
  };
  return `${json}\n\n# promote_secondaries\n${Object.entries(values)
    .map(([n, v]) => `${n} ${v}`)
    .join("\n")}\n`;
}

interface HostShape {
  eth0?: string[];
  more?: Record<string, string[]>;
  stack?: string[];
  range?: string | null;
  promote?: Record<string, string> | null;
}

function hostFacts(shape: HostShape): Facts {
  const ip = probeOutput(
    { eth0: shape.eth0 ?? [`${SSH}/24`, "fe80::dca4:b9ff:fe07:55ef/64"], ...shape.more },
    shape.promote === undefined ? {} : shape.promote,
  );
  return {
    sysctl: { [RANGE]: shape.range === undefined ? "32768\t60999" : shape.range },
    files: {},
    listeningPorts: null,
    probes: {
      "ip-addresses": { ok: true, value: ipAddressesProbe.parse(ip, undefined) },
      "network-stack": { ok: true, value: networkStackProbe.parse((shape.stack ?? []).join("\n"), undefined) },
    },
  };
}

const networkdHost = (extra: string[] = [], eth0?: string[], promote?: Record<string, string> | null) =>
  hostFacts({
    eth0,
    promote,
    stack: [line("networkd", "/etc/systemd/network/10-eth0.network", ETH0_NETWORK), ...extra],
  });
const ifupdownHost = (extra: string[] = [], eth0?: string[], promote?: Record<string, string> | null) =>
  hostFacts({ eth0, promote, stack: [line("ifupdown-main", "/etc/network/interfaces", DEBIAN_INTERFACES), ...extra] });
const stateLine = (entries: string[]) => line("managed", STATE, `# managed\n${entries.map((e) => `${e}\n`).join("")}`);

function plan(
  over: Record<string, unknown>,
  f: Facts,
  opts: { purpose?: "plan" | "verify"; ssh?: string } = {},
): HostPlan {
  return planHost(hostWith("web01", [[secondarySourceIps, over]]), f, opts.purpose ?? "plan", opts.ssh ?? SSH);
}

/** Why the role refuses to plan, one reason a line; it then plans nothing. */
function refusals(
  over: Record<string, unknown>,
  f: Facts,
  opts: { purpose?: "plan" | "verify"; ssh?: string } = {},
): string {
  const p = plan(over, f, opts);
  expect(p.refusals.every((r) => r.role === "secondary-source-ips")).toBe(true);
  expect(p.changes).toEqual([]);
  return p.refusals.map((r) => r.text).join("\n");
}

/** A probe's typed answer in these facts (an object of the facts: changing it changes them). */
function answer<T>(f: Facts, probe: Probe<T>): T {
  const r = probeResult(f, probe);
  if (!r?.ok) throw new Error(`probe ${probe.name} failed`);
  return r.value;
}

/** The file change of the network configuration (or of `path`). */
function fileChange(p: HostPlan, path?: string): Extract<PlannedChange, { kind: "file" }> {
  const c = p.changes.find((x) => x.kind === "file" && (path === undefined ? x.path !== STATE : x.path === path));
  if (!c || c.kind !== "file") throw new Error(`no file change${path ? ` for ${path}` : ""}`);
  return c;
}

const commands = (p: HostPlan) =>
  p.changes.filter((c) => c.kind === "command").map((c) => (c.kind === "command" ? c.argv.join(" ") : ""));
const failedLabels = (p: HostPlan, f: Facts) =>
  evaluateChecks(p.checks, f)
    .filter((r) => !r.ok)
    .map((r) => (r.check.kind === "probe" ? r.check.label : r.check.kind));

/**
 * What the host looks like after `run`: files written and removed, addresses added and deleted as
 * the kernel does it (deleting a primary takes its subnet's secondaries along unless
 * promote_secondaries is on; deleting an absent address or adding a present one fails like `ip`).
 */
function factsAfter(p: HostPlan, before: Facts): Facts {
  const after = structuredClone(before);
  const ip = answer(after, ipAddressesProbe);
  const net = answer(after, networkStackProbe);
  const model = new Map(
    [...liveAddresses(ip)].map(([n, addrs]) => [
      n,
      addrs.map((a) =>
        [a.text, ...(a.dadfailed ? ["dadfailed"] : []), ...(a.tentative ? ["tentative"] : [])].join(" "),
      ),
    ]),
  );
  const promoteKnown = ip.names.some((n) => ip.interfaces[n]!.promoteSecondaries !== null);
  const promote = Object.fromEntries(
    [...model.keys()].map((n) => [n, ip.interfaces[n]!.promoteSecondaries ? "1" : "0"]),
  );
  for (const c of p.changes) {
    if (c.kind === "file") {
      net.managed.paths = [...new Set([...net.managed.paths, c.path])];
      net.managed.files[c.path] = {
        content: c.after,
        sha256: createHash("sha256").update(c.after).digest("hex"),
        mode: c.mode.replace(/^0/, ""),
      };
      after.files[c.path] = c.after;
    } else if (c.kind === "command" && c.argv[0] === "rm") {
      net.managed.paths = net.managed.paths.filter((x) => x !== c.argv[3]);
      delete net.managed.files[c.argv[3]!];
      after.files[c.argv[3]!] = null;
    } else if (c.kind === "command" && c.argv[0] === "chmod") {
      net.managed.files[c.argv[3]!]!.mode = c.argv[1]!.replace(/^0/, "");
    } else if (c.kind === "command" && c.argv[0] === "ip") {
      const [, , verb, text, , dev] = c.argv as [string, string, string, string, string, string];
      const list = model.get(dev) ?? [];
      const at = list.findIndex((e) => e.split(" ")[0] === text);
      if (verb === "add") {
        if (at !== -1) throw new Error(`ip addr add ${text} dev ${dev}: RTNETLINK answers: File exists`);
        model.set(dev, [...list, text]);
        continue;
      }
      if (at === -1) throw new Error(`ip addr del ${text} dev ${dev}: Cannot assign requested address`);
      const c4 = parseCidr(text) as Cidr;
      const subnet = (e: string) => {
        const x = parseCidr(e.split(" ")[0]!) as Cidr;
        return x.family === 4 && c4.family === 4 && x.prefix === c4.prefix && networkOf(x) === networkOf(c4);
      };
      const primary = list.findIndex(subnet) === at;
      const cascade = primary && promote[dev] !== "1";
      model.set(
        dev,
        list.filter((e, i) => i !== at && !(cascade && subnet(e))),
      );
    }
  }
  after.probes!["ip-addresses"] = {
    ok: true,
    value: ipAddressesProbe.parse(
      probeOutput(Object.fromEntries([...model].filter(([n]) => n !== "lo")), promoteKnown ? promote : null),
      undefined,
    ),
  };
  return after;
}

/** Runs a rendered ifupdown hook as run-parts would, with a fake `ip` that logs its arguments. */
function runHook(content: string, env: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), "ssi-hook-"));
  try {
    const log = join(dir, "log");
    writeFileSync(join(dir, "hook"), content);
    writeFileSync(join(dir, "ip"), '#!/bin/sh\necho "$*" >> "$IP_LOG"\n', { mode: 0o755 });
    execFileSync("sh", [join(dir, "hook")], { env: { PATH: `${dir}:/usr/bin:/bin`, IP_LOG: log, ...env } });
    return existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("secondary-source-ips on a systemd-networkd host", () => {
  const p = plan({ addresses: ["198.18.1.200/24", "198.18.1.201/24"] }, networkdHost());

  it("records the addresses, writes a drop-in for the .network file that matches, then adds each address live", () => {
    expect(
      p.changes.map((c) =>
        c.kind === "file" ? `file ${c.path} ${c.description}` : c.kind === "command" ? c.argv.join(" ") : c.kind,
      ),
    ).toEqual([
      `file ${STATE} create ${STATE}`,
      `file ${NETWORKD_DROPIN} create ${NETWORKD_DROPIN}`,
      "ip addr add 198.18.1.200/24 dev eth0",
      "ip addr add 198.18.1.201/24 dev eth0",
    ]);
    expect(fileChange(p)).toMatchObject({
      before: null,
      mode: "0644",
      owner: "root",
      group: "root",
      beforeSha256: "absent",
    });
    expect(p.changes.every((c) => c.role === "secondary-source-ips")).toBe(true);
  });

  it("renders one [Address] section per address, each value after a comment", () => {
    const content = fileChange(p).after;
    expect(content).toContain("sets promote_secondaries=1 on\n# the links it manages");
    expect(content.split("\n")[0]).toMatch(/^# Managed by provision, role secondary-source-ips\. Do not edit/);
    expect(content).toContain("a systemd-networkd drop-in for /etc/systemd/network/10-eth0.network");
    expect(content).toContain("#   ip addr del 198.18.1.200/24 dev eth0");
    expect(content.match(/^\[Address\]$/gm)).toHaveLength(2);
    expect(content.match(/^Address=.*$/gm)).toEqual(["Address=198.18.1.200/24", "Address=198.18.1.201/24"]);
    expect(valueLinesWithoutComment(content, /^[A-Za-z]+=/)).toEqual([]);
    expect(content.replace(/\n# /g, " ")).toContain("IP_BIND_ADDRESS_NO_PORT");
    expect(content.endsWith("\n")).toBe(true);
    for (const l of content.split("\n")) expect(l.length).toBeLessThanOrEqual(110);
  });

  it("checks the files, each address and, through a fresh login, the SSH address", () => {
    const sha = (path: string) => createHash("sha256").update(fileChange(p, path).after).digest("hex");
    expect(
      p.checks.map((c) =>
        c.kind === "probe" ? [c.probe, c.field, c.compare, c.expected, c.freshLogin ?? false] : c.kind,
      ),
    ).toEqual([
      ["network-stack", ["managed", "files", STATE, "sha256"], "equal", sha(STATE), false],
      ["network-stack", ["managed", "files", NETWORKD_DROPIN, "sha256"], "equal", sha(NETWORKD_DROPIN), false],
      ["ip-addresses", ["interfaces", "eth0", "usable"], "includes", "198.18.1.200/24", false],
      ["ip-addresses", ["interfaces", "eth0", "usable"], "includes", "198.18.1.201/24", false],
      ["ip-addresses", ["locals"], "includes", SSH, true],
    ]);
  });

  it("notes the outbound capacity per destination and where the addresses persist", () => {
    expect(p.notes.map((n) => n.text)).toEqual([
      `outbound capacity per destination ip:port over IPv4 from eth0: 3 source IPs × 28,232 ports = 84,696 connections (${RANGE} 32768 60999; only for applications that bind() to the extra IPs)`,
      "persisted for systemd-networkd: a drop-in for /etc/systemd/network/10-eth0.network, read at networkd's next reload (`networkctl reload`) or boot; the addresses are added live now",
      "systemd-networkd is not installed here: nothing reads the drop-in until it is",
    ]);
  });

  it("counts with the widened port range: 3 × 64,512 = 193,536", () => {
    const wide = plan(
      { addresses: ["198.18.1.200/24", "198.18.1.201/24"] },
      hostFacts({
        range: "1024\t65535",
        stack: [line("networkd", "/etc/systemd/network/10-eth0.network", ETH0_NETWORK)],
      }),
    );
    expect(wide.notes[0]!.text).toContain("3 source IPs × 64,512 ports = 193,536 connections");
  });

  it("uses the first matching .network file by name, across directories", () => {
    const f = hostFacts({
      stack: [
        line("networkd", "/etc/systemd/network/50-wired.network", "[Match]\nName=e*\n"),
        line("networkd", "/run/systemd/network/20-eth0.network", ETH0_NETWORK),
        line("networkd", "/etc/systemd/network/05-other.network", "[Match]\nName=eth1\n"),
        line("networkd", "/usr/lib/systemd/network/80-wifi-adhoc.network", "[Match]\nType=wlan\n"),
      ],
    });
    expect(fileChange(plan({ addresses: ["198.18.1.200/24"] }, f)).path).toBe(
      "/etc/systemd/network/20-eth0.network.d/60-provision-secondary-ips.conf",
    );
  });

  it("adds IPv6 addresses deprecated, live and in the file", () => {
    const v6 = plan(
      { addresses: ["2001:db8:5::10/64"] },
      networkdHost([], [`${SSH}/24`, "2001:db8:5::1/64", "fe80::1/64"]),
    );
    expect(commands(v6)).toEqual(["ip addr add 2001:db8:5::10/64 dev eth0 preferred_lft 0"]);
    const content = fileChange(v6).after;
    expect(content).toMatch(/\nAddress=2001:db8:5::10\/64\n# Deprecated at once[^\n]*\nPreferredLifetime=0\n/);
    expect(valueLinesWithoutComment(content, /^[A-Za-z]+=/)).toEqual([]);
    // link-local addresses are no source towards other networks
    expect(v6.notes[0]!.text).toContain("over IPv6 from eth0: 2 source IPs × 28,232 ports = 56,464 connections");
  });

  it("normalises addresses before comparing with the host's", () => {
    const p2 = plan({ addresses: ["2001:DB8:5:0:0:0:0:10/64"] }, networkdHost([], [`${SSH}/24`, "2001:db8:5::10/64"]));
    expect(commands(p2)).toEqual([]);
    expect(fileChange(p2).after).toContain("Address=2001:db8:5::10/64");
  });
});

describe("secondary-source-ips on an ifupdown host", () => {
  const p = plan({ addresses: ["198.18.1.200/24", "2001:db8:5::10/64"] }, ifupdownHost());

  it("writes an executable if-up.d hook and adds the addresses live", () => {
    expect(fileChange(p)).toMatchObject({ path: IFUPDOWN_HOOK, mode: "0755" });
    expect(commands(p)).toEqual([
      "ip addr add 198.18.1.200/24 dev eth0",
      "ip addr add 2001:db8:5::10/64 dev eth0 preferred_lft 0",
    ]);
    expect(p.checks).toContainEqual(
      expect.objectContaining({
        field: ["managed", "files", IFUPDOWN_HOOK, "mode"],
        expected: "755",
        compare: "equal",
      }),
    );
  });

  it("renders a hook that adds each address after the interface's own stanza, each command after a comment", () => {
    const content = fileChange(p).after;
    expect(content.split("\n").slice(0, 2)).toEqual([
      "#!/bin/sh",
      expect.stringMatching(/^# Managed by provision, role secondary-source-ips\./),
    ]);
    expect(content).toContain(
      "Debian sources that directory at the top of\n# /etc/network/interfaces, so such a stanza runs BEFORE eth0's own",
    );
    expect(content.match(/^(if |add ).*$/gm)).toEqual([
      "if has_family inet; then add 198.18.1.200/24 dev eth0; fi",
      "add 2001:db8:5::10/64 dev eth0 preferred_lft 0",
    ]);
    expect(valueLinesWithoutComment(content, /^(\[|if |add|has_family|exit)/)).toEqual([]);
    for (const l of content.split("\n")) expect(l.length).toBeLessThanOrEqual(115);
  });

  it.each<[string, Record<string, string>, string[]]>([
    [
      "after eth0's inet stanza: both (eth0 has no inet6 stanza to wait for)",
      { IFACE: "eth0", MODE: "start", ADDRFAM: "inet" },
      ["addr replace 198.18.1.200/24 dev eth0", "addr replace 2001:db8:5::10/64 dev eth0 preferred_lft 0"],
    ],
    [
      "after an inet6 stanza: not the IPv4 one, which must wait for eth0's own IPv4 address",
      { IFACE: "eth0", MODE: "start", ADDRFAM: "inet6" },
      ["addr replace 2001:db8:5::10/64 dev eth0 preferred_lft 0"],
    ],
    [
      "ifupdown2's list of families",
      { IFACE: "eth0", MODE: "start", ADDRFAM: "inet,inet6" },
      ["addr replace 198.18.1.200/24 dev eth0", "addr replace 2001:db8:5::10/64 dev eth0 preferred_lft 0"],
    ],
    ["another interface", { IFACE: "lo", MODE: "start", ADDRFAM: "inet" }, []],
    ["run-parts' final call", { IFACE: "--all", MODE: "start", ADDRFAM: "meta" }, []],
    ["ifdown", { IFACE: "eth0", MODE: "stop", ADDRFAM: "inet" }, []],
  ])("the hook run by ifupdown %s", (_when, env, expected) => {
    expect(runHook(fileChange(p).after, env)).toEqual(expected);
  });

  it("waits for the inet6 stanza too when eth0 has one", () => {
    const both = hostFacts({
      stack: [
        line(
          "ifupdown-main",
          "/etc/network/interfaces",
          `${DEBIAN_INTERFACES}iface eth0 inet6 static\n  address 2001:db8:5::1/64\n`,
        ),
      ],
    });
    const hook = fileChange(plan({ addresses: ["198.18.1.200/24", "2001:db8:5::10/64"] }, both)).after;
    expect(runHook(hook, { IFACE: "eth0", MODE: "start", ADDRFAM: "inet" })).toEqual([
      "addr replace 198.18.1.200/24 dev eth0",
    ]);
    expect(runHook(hook, { IFACE: "eth0", MODE: "start", ADDRFAM: "inet6" })).toEqual([
      "addr replace 2001:db8:5::10/64 dev eth0 preferred_lft 0",
    ]);
  });

  it("needs no `source interfaces.d` line: run-parts finds the hook", () => {
    const f = hostFacts({
      stack: [line("ifupdown-main", "/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n")],
    });
    expect(fileChange(plan({ addresses: ["198.18.1.200/24"] }, f)).path).toBe(IFUPDOWN_HOOK);
  });

  it("says that nothing reads the file at boot when ifup is missing", () => {
    expect(p.notes.map((n) => n.text)).toContain(
      "ifup is not installed here: nothing reads /etc/network/interfaces at boot, so the addresses won't come back after a reboot until ifupdown is installed",
    );
    const withIfup = plan({ addresses: ["198.18.1.200/24"] }, ifupdownHost([line("flag", "ifup", "yes")]));
    expect(withIfup.notes.map((n) => n.text).join("\n")).not.toContain("ifup is not installed");
  });

  it("reads back what it wrote as the addresses it owns, with their interface", () => {
    const owned = (path: string) =>
      ownedAddresses(path, fileChange(p, path).after, [], new Map()).map((o) => `${o.cidr.text}@${o.iface}`);
    expect(owned(IFUPDOWN_HOOK)).toEqual(["198.18.1.200/24@eth0", "2001:db8:5::10/64@eth0"]);
    expect(owned(STATE)).toEqual(["198.18.1.200/24@eth0", "2001:db8:5::10/64@eth0"]);
  });

  it("replaces the interfaces.d stanza of earlier versions (it ran before eth0's own stanza)", () => {
    const f = ifupdownHost(
      [line("managed", LEGACY_STANZA, "iface eth0 inet manual\n\tup ip addr replace 198.18.1.200/24 dev eth0\n")],
      [`${SSH}/24`, "198.18.1.200/24"],
    );
    const again = plan({ addresses: ["198.18.1.200/24"] }, f);
    expect(commands(again)).toEqual([`rm -f -- ${LEGACY_STANZA}`]);
    expect(fileChange(again).path).toBe(IFUPDOWN_HOOK);
  });

  it("restores the hook's mode when only that changed", () => {
    const applied = factsAfter(p, ifupdownHost());
    answer(applied, networkStackProbe).managed.files[IFUPDOWN_HOOK]!.mode = "644";
    expect(
      failedLabels(
        plan({ addresses: ["198.18.1.200/24", "2001:db8:5::10/64"] }, applied, { purpose: "verify" }),
        applied,
      ),
    ).toEqual([`${IFUPDOWN_HOOK} (mode)`]);
    expect(commands(plan({ addresses: ["198.18.1.200/24", "2001:db8:5::10/64"] }, applied))).toEqual([
      `chmod 0755 -- ${IFUPDOWN_HOOK}`,
    ]);
  });
});

describe("secondary-source-ips idempotence and drift", () => {
  it.each<[string, Record<string, unknown>, Facts, string?]>([
    ["networkd, two IPv4", { addresses: ["198.18.1.200/24", "198.18.1.201/24"] }, networkdHost()],
    ["networkd, IPv4 and IPv6", { addresses: ["198.18.1.200/24", "2001:db8:5::10/64"] }, networkdHost()],
    ["ifupdown", { addresses: ["198.18.1.210/24"] }, ifupdownHost()],
    ["explicit interface", { interface: "eth0", addresses: ["198.18.1.210/32"] }, ifupdownHost()],
    ["live only", { addresses: ["198.18.1.210/24"], persist: false }, hostFacts({})],
    [
      "an address dropped from the list",
      { addresses: ["198.18.1.201/24"] },
      networkdHost(
        [line("managed", NETWORKD_DROPIN, "Address=198.18.1.201/24\nAddress=198.18.1.202/24\n")],
        [`${SSH}/24`, "198.18.1.201/24", "198.18.1.202/24"],
      ),
    ],
    [
      "all addresses dropped",
      { addresses: [] },
      ifupdownHost(
        [line("managed", LEGACY_STANZA, "iface eth0 inet manual\n\tup ip addr replace 198.18.1.201/24 dev eth0\n")],
        [`${SSH}/24`, "198.18.1.201/24"],
      ),
    ],
    [
      "live only, all dropped",
      { addresses: [], persist: false },
      hostFacts({ eth0: [`${SSH}/24`, "198.18.1.210/24"], stack: [stateLine(["198.18.1.210/24 eth0"])] }),
    ],
    [
      "an extra that is its subnet's primary, promote_secondaries on",
      { addresses: [] },
      networkdHost([stateLine(["198.18.1.200/24 eth0"])], ["198.18.1.200/24", `${SSH}/24`], { eth0: "1" }),
    ],
    [
      "two extras of another subnet, primary and secondary, both dropped",
      { addresses: [] },
      networkdHost(
        [stateLine(["198.18.9.10/24 eth0", "198.18.9.11/24 eth0"])],
        [`${SSH}/24`, "198.18.9.10/24", "198.18.9.11/24"],
      ),
    ],
    [
      "moved to another interface",
      { interface: "eth1", addresses: ["198.18.1.210/24"], persist: false },
      hostFacts({
        eth0: [`${SSH}/24`, "198.18.1.210/24"],
        more: { eth1: [] },
        stack: [stateLine(["198.18.1.210/24 eth0"])],
      }),
    ],
    ["captured networkd host (h1)", { addresses: ["198.18.1.201/24", "198.18.1.202/24"] }, captured("h1")],
    ["captured ifupdown host (h2)", { addresses: ["198.18.1.210/24"] }, captured("h2"), "198.18.1.3"],
  ])("%s: a second plan after run has zero changes and verify passes", (_what, over, before, ssh) => {
    const first = plan(over, before, { ssh });
    expect(first.changes.length).toBeGreaterThan(0);
    const after = factsAfter(first, before);
    const second = plan(over, after, { ssh });
    expect(second.changes).toEqual([]);
    expect(evaluateChecks(first.checks, after).filter((r) => !r.ok)).toEqual([]);
    expect(evaluateChecks(plan(over, after, { purpose: "verify", ssh }).checks, after).every((r) => r.ok)).toBe(true);
  });

  it("an address removed by hand is a mismatch, and the next plan only adds it back", () => {
    const over = { addresses: ["198.18.1.200/24", "198.18.1.201/24"] };
    const applied = factsAfter(plan(over, networkdHost()), networkdHost());
    const drifted = factsAfter(
      {
        host: "web01",
        changes: [
          {
            kind: "command",
            argv: ["ip", "addr", "del", "198.18.1.201/24", "dev", "eth0"],
            description: "",
            role: "x",
          },
        ],
        checks: [],
        notes: [],
        refusals: [],
      },
      applied,
    );
    const verify = plan(over, drifted, { purpose: "verify" });
    const failed = evaluateChecks(verify.checks, drifted).filter((r) => !r.ok);
    expect(failed.map((r) => (r.check.kind === "probe" ? r.check.label : ""))).toEqual(["198.18.1.201/24 on eth0"]);
    expect(failed[0]!.check.message).toMatch(/not on eth0: removed by hand/);
    expect(commands(plan(over, drifted))).toEqual(["ip addr add 198.18.1.201/24 dev eth0"]);
  });

  it("a hand-edited drop-in is a mismatch and gets rewritten with the edit as before", () => {
    const over = { addresses: ["198.18.1.200/24"] };
    const first = plan(over, networkdHost());
    const applied = factsAfter(first, networkdHost());
    const dropin = answer(applied, networkStackProbe).managed.files[NETWORKD_DROPIN]!;
    dropin.content += "Address=10.0.0.1/8\n";
    dropin.sha256 = "0".repeat(64);
    expect(
      evaluateChecks(plan(over, applied, { purpose: "verify" }).checks, applied)
        .filter((r) => !r.ok)
        .map((r) => r.check.kind === "probe" && r.check.label),
    ).toEqual([`${NETWORKD_DROPIN} (sha256)`]);
    const repair = plan(over, applied);
    expect(fileChange(repair)).toMatchObject({
      before: `${fileChange(first).after}Address=10.0.0.1/8\n`,
      after: fileChange(first).after,
      beforeSha256: "0".repeat(64),
    });
  });
});

describe("secondary-source-ips: addresses it added earlier", () => {
  it("removes an address that left the list, live and from the file", () => {
    const f = networkdHost(
      [line("managed", NETWORKD_DROPIN, "[Address]\nAddress=198.18.1.201/24\n[Address]\nAddress=198.18.1.202/24\n")],
      [`${SSH}/24`, "198.18.1.201/24", "198.18.1.202/24"],
    );
    const p = plan({ addresses: ["198.18.1.201/24"] }, f);
    expect(commands(p)).toEqual(["ip addr del 198.18.1.202/24 dev eth0"]);
    expect(fileChange(p).after).not.toContain("198.18.1.202");
    expect(
      p.checks.some((c) => c.kind === "probe" && c.compare === "excludes" && c.expected === "198.18.1.202/24"),
    ).toBe(true);
    expect(p.notes[0]!.text).toContain("2 source IPs");
  });

  it("changing an address's prefix replaces it", () => {
    const f = networkdHost(
      [line("managed", NETWORKD_DROPIN, "Address=198.18.1.201/24\n")],
      [`${SSH}/24`, "198.18.1.201/24"],
    );
    expect(commands(plan({ addresses: ["198.18.1.201/32"] }, f))).toEqual([
      "ip addr del 198.18.1.201/24 dev eth0",
      "ip addr add 198.18.1.201/32 dev eth0",
    ]);
    expect(
      answer(factsAfter(plan({ addresses: ["198.18.1.201/32"] }, f), f), ipAddressesProbe).interfaces.eth0!.cidrs,
    ).toEqual([`${SSH}/24`, "198.18.1.201/32"]);
  });

  it("[] removes every address and file it added, addresses first", () => {
    const hook =
      '[ "$IFACE" = eth0 ] || exit 0\nif has_family inet; then add 198.18.1.201/24 dev eth0; fi\nif has_family inet; then add 198.18.1.202/24 dev eth0; fi\n';
    const f = ifupdownHost(
      [line("managed", IFUPDOWN_HOOK, hook), stateLine(["198.18.1.201/24 eth0", "198.18.1.202/24 eth0"])],
      [`${SSH}/24`, "198.18.1.201/24"],
    );
    const p = plan({ addresses: [] }, f);
    // 198.18.1.202 is already gone live: only the files and the one still there
    expect(commands(p)).toEqual([
      "ip addr del 198.18.1.201/24 dev eth0",
      `rm -f -- ${STATE}`,
      `rm -f -- ${IFUPDOWN_HOOK}`,
    ]);
    expect(p.changes.some((c) => c.kind === "file")).toBe(false);
  });

  it("removes a drop-in left for another .network file", () => {
    const stale = "/etc/systemd/network/20-old.network.d/60-provision-secondary-ips.conf";
    const f = networkdHost([line("managed", stale, "Address=198.18.1.201/24\n")], [`${SSH}/24`, "198.18.1.201/24"]);
    const p = plan({ addresses: ["198.18.1.201/24"] }, f);
    expect(commands(p)).toEqual([`rm -f -- ${stale}`]);
    expect(fileChange(p).path).toBe(NETWORKD_DROPIN);
  });

  it("persist: false leaves earlier files alone and says so", () => {
    const f = networkdHost(
      [line("managed", NETWORKD_DROPIN, "Address=198.18.1.201/24\n")],
      [`${SSH}/24`, "198.18.1.201/24"],
    );
    const p = plan({ addresses: [], persist: false }, f);
    expect(p.changes).toEqual([]);
    expect(p.notes.map((n) => n.text)).toContain(
      `${NETWORKD_DROPIN} from an earlier run still add addresses at boot: delete it if they should not come back`,
    );
  });

  it("never removes the SSH address, even when a hand-edited file lists it", () => {
    const f = networkdHost([line("managed", NETWORKD_DROPIN, `Address=${SSH}/24\n`)]);
    expect(refusals({ addresses: [] }, f)).toMatch(/198\.18\.1\.2\/24 on eth0 is the address this SSH session uses/);
  });
});

describe("secondary-source-ips: live only and no addresses", () => {
  it("persist: false adds live and writes only its record of what it added, on a host with no stack at all", () => {
    const p = plan({ addresses: ["198.18.1.210/24"], persist: false }, hostFacts({}));
    expect(p.changes.map((c) => (c.kind === "file" ? c.path : c.kind))).toEqual([STATE, "command"]);
    expect(fileChange(p, STATE).after).toMatch(/\n# Address 1 of 1, added to eth0\.\n198\.18\.1\.210\/24 eth0\n$/);
    expect(p.notes.map((n) => n.text)).toContain(
      "not persisted (persist: false): the addresses vanish at the next reboot or ifdown of eth0",
    );
  });

  it("no addresses and nothing from earlier: nothing to do, whatever the stack", () => {
    const p = plan({}, hostFacts({}));
    expect(p).toMatchObject({ changes: [], checks: [], refusals: [] });
    expect(p.notes.map((n) => n.text)).toEqual([
      "no addresses for this host: set secondary_source_ips.addresses in its host vars to add source IPs",
    ]);
  });

  it("no addresses is no error even where adding some would be refused (the default playbook runs it everywhere)", () => {
    const f = hostFacts({
      stack: [line("netplan", "/etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth0: {}\n")],
    });
    f.probes!["ip-addresses"] = { ok: false, error: "ip (iproute2) is not installed; install iproute2" };
    expect(plan({ interface: "eth9" }, f, { ssh: "web01" })).toMatchObject({ changes: [], checks: [], refusals: [] });
  });

  it("picks the interface holding the SSH address when none is named", () => {
    const f = hostFacts({ eth0: ["10.0.0.5/24"], more: { ens5: [`${SSH}/24`] } });
    expect(commands(plan({ addresses: ["198.18.1.210/24"], persist: false }, f))).toEqual([
      "ip addr add 198.18.1.210/24 dev ens5",
    ]);
  });

  it("checks that a fresh login still sees the interface when the SSH address is not on the host (NAT)", () => {
    const p = plan({ interface: "eth0", addresses: ["198.18.1.210/24"], persist: false }, hostFacts({}), {
      ssh: "203.0.113.9",
    });
    expect(p.checks.at(-1)).toMatchObject({
      field: ["names"],
      expected: "eth0",
      compare: "includes",
      freshLogin: true,
    });
  });
});

describe("secondary-source-ips refusals (per-host plan errors)", () => {
  const v4 = { addresses: ["198.18.1.200/24"] };
  it.each<[string, Record<string, unknown>, Facts, RegExp, string?]>([
    [
      "the SSH address itself",
      { addresses: [`${SSH}/24`] },
      networkdHost(),
      /198\.18\.1\.2\/24 on eth0 is the address this SSH session uses \(198\.18\.1\.2\); secondary-source-ips never adds, changes or removes it\. Remove it from secondary_source_ips\.addresses/,
    ],
    [
      "the SSH address with another prefix",
      { addresses: [`${SSH}/32`] },
      networkdHost(),
      /is the address this SSH session uses/,
    ],
    [
      "the SSH address seen as IPv4-mapped IPv6",
      { addresses: [`${SSH}/24`] },
      networkdHost(),
      /is the address this SSH session uses/,
      `::ffff:${SSH}`,
    ],
    [
      "an interface that does not exist",
      { interface: "eth1", ...v4 },
      networkdHost(),
      /interface "eth1" does not exist on this host \(it has: lo, eth0\)\. Set secondary_source_ips\.interface to one of them/,
    ],
    [
      "an SSH address that is not an IP",
      v4,
      networkdHost(),
      /cannot tell which address the SSH session uses \(got "web01"\); refusing to change addresses/,
      "web01",
    ],
    [
      "an SSH address on no interface, no interface named",
      v4,
      networkdHost(),
      /the SSH session's address 203\.0\.113\.9 is on none of this host's interfaces \(lo, eth0\): NAT or a jump host/,
      "203.0.113.9",
    ],
    [
      "an address already on another interface",
      v4,
      hostFacts({
        more: { eth1: ["198.18.1.200/32"] },
        stack: [line("networkd", "/etc/systemd/network/10-eth0.network", ETH0_NETWORK)],
      }),
      /198\.18\.1\.200 is already on eth1 \(198\.18\.1\.200\/32\); an address belongs to one interface/,
    ],
    [
      "an address on the interface with another prefix",
      v4,
      networkdHost([], [`${SSH}/24`, "198.18.1.200/32"]),
      /198\.18\.1\.200 is already on eth0 as 198\.18\.1\.200\/32, not 198\.18\.1\.200\/24\. Remove it by hand \(ip addr del 198\.18\.1\.200\/32 dev eth0\)/,
    ],
    [
      "no stack configures the interface",
      v4,
      hostFacts({}),
      /no network stack configures eth0 here: no \.network file matches it by Name=.*Set persist: false to add them live only/,
    ],
    [
      "netplan",
      v4,
      hostFacts({
        stack: [
          line("netplan", "/etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n"),
        ],
      }),
      /netplan manages eth0 \(\/etc\/netplan\/50-cloud-init\.yaml\); secondary-source-ips does not write netplan configuration\. Add the addresses under network\.ethernets\.eth0\.addresses/,
    ],
    [
      "netplan-generated networkd config",
      v4,
      hostFacts({ stack: [line("networkd", "/run/systemd/network/10-netplan-eth0.network", ETH0_NETWORK)] }),
      /netplan manages eth0 \(\/run\/systemd\/network\/10-netplan-eth0\.network\)/,
    ],
    [
      "NetworkManager",
      v4,
      hostFacts({ stack: [line("flag", "networkmanager", "yes"), line("nm-devices", "-", "eth0:connected\n")] }),
      /NetworkManager manages eth0; .*nmcli connection modify <profile> \+ipv4\.addresses/,
    ],
    [
      "networkd and ifupdown both",
      v4,
      networkdHost([line("ifupdown-main", "/etc/network/interfaces", DEBIAN_INTERFACES)]),
      /systemd-networkd and ifupdown all configure eth0; can't tell which one runs\. Set secondary_source_ips\.stack to networkd or ifupdown/,
    ],
    [
      "stack: networkd without a .network file",
      { ...v4, stack: "networkd" },
      ifupdownHost(),
      /stack is networkd but no \.network file matches eth0 by \[Match\] Name=/,
    ],
    [
      "stack: ifupdown without /etc/network/interfaces",
      { ...v4, stack: "ifupdown" },
      networkdHost(),
      /stack is ifupdown but \/etc\/network\/interfaces does not exist/,
    ],
  ])("%s", (_what, over, f, message, ssh) => {
    expect(refusals(over, f, { ssh })).toMatch(message);
  });

  it("an explicit stack settles networkd-and-ifupdown", () => {
    const f = networkdHost([line("ifupdown-main", "/etc/network/interfaces", DEBIAN_INTERFACES)]);
    expect(fileChange(plan({ ...v4, stack: "ifupdown" }, f)).path).toBe(IFUPDOWN_HOOK);
    expect(fileChange(plan({ ...v4, stack: "networkd" }, f)).path).toBe(NETWORKD_DROPIN);
  });

  it("a probe that failed is an error naming what could not be read", () => {
    const f = networkdHost();
    f.probes!["ip-addresses"] = { ok: false, error: "ip (iproute2) is not installed; install iproute2" };
    expect(refusals(v4, f)).toBe(
      "could not read the host's addresses (`ip -j addr show`): ip (iproute2) is not installed; install iproute2",
    );
    delete f.probes!["network-stack"];
    expect(refusals(v4, f)).toBe("could not detect the host's network stack: no answer from the network-stack probe");
  });

  it("gives every reason in one plan, and none that advises deleting the SSH address", () => {
    const f = hostFacts({ more: { eth1: ["198.18.1.200/32"] } });
    const p = plan({ addresses: [`${SSH}/32`, "198.18.1.200/24"] }, f);
    expect(p.refusals.map((r) => r.text)).toEqual([
      expect.stringMatching(/^198\.18\.1\.2\/32 on eth0 is the address this SSH session uses/),
      expect.stringMatching(/^198\.18\.1\.200 is already on eth1 \(198\.18\.1\.200\/32\)/),
      expect.stringMatching(/^no network stack configures eth0 here/),
    ]);
    expect(p).toMatchObject({ changes: [], checks: [], notes: [] });
  });
});

describe("secondary-source-ips: deleting a primary IPv4 address (promote_secondaries)", () => {
  // The extra address came first (e.g. an interfaces.d stanza ran before eth0's own at boot): it is
  // the subnet's primary, and the SSH address a secondary that the kernel deletes along with it.
  const sshSecondary = (promote?: Record<string, string> | null) =>
    networkdHost([stateLine(["198.18.1.200/24 eth0"])], ["198.18.1.200/24", `${SSH}/24`], promote);

  it("the probe marks the SSH address secondary, as the kernel does", () => {
    const eth0 = answer(sshSecondary(), ipAddressesProbe).interfaces.eth0!;
    expect(eth0.addresses.filter((a) => a.secondary).map((a) => a.text)).toEqual([`${SSH}/24`]);
    expect(eth0.promoteSecondaries).toBe(false);
  });

  it("refuses to delete it while promote_secondaries is 0, naming the SSH address and the fix", () => {
    expect(refusals({ addresses: [] }, sshSecondary())).toBe(
      "deleting 198.18.1.200/24 from eth0 would also delete 198.18.1.2/24 (198.18.1.2 is the address this SSH session uses: the host would drop off the network): " +
        '198.18.1.200/24 is the primary address of 198.18.1.0/24 on eth0 (`ip addr` shows no "secondary" flag on it) and net.ipv4.conf.eth0.promote_secondaries is 0, ' +
        "so the kernel deletes the subnet's secondary addresses with it. Set net.ipv4.conf.eth0.promote_secondaries=1 first (sysctl -w net.ipv4.conf.eth0.promote_secondaries=1, " +
        "and a file in /etc/sysctl.d to keep it), then run again; or delete 198.18.1.200/24 from a console, not over SSH. Until then keep it in secondary_source_ips.addresses",
    );
  });

  it("refuses when promote_secondaries could not be read (an older probe)", () => {
    expect(refusals({ addresses: [] }, sshSecondary(null))).toMatch(
      /net\.ipv4\.conf\.eth0\.promote_secondaries could not be read/,
    );
  });

  it("refuses at verify too, and for a prefix change of the primary", () => {
    expect(refusals({ addresses: [] }, sshSecondary(), { purpose: "verify" })).toMatch(
      /would also delete 198\.18\.1\.2\/24/,
    );
    expect(refusals({ addresses: ["198.18.1.200/32"] }, sshSecondary())).toMatch(
      /deleting 198\.18\.1\.200\/24 from eth0 would also delete 198\.18\.1\.2\/24/,
    );
  });

  it.each<[string, Record<string, string>]>([
    ["the interface's setting", { eth0: "1" }],
    ["`all` (the kernel ORs it with the interface's)", { all: "1" }],
  ])("deletes it once promote_secondaries is 1 through %s, and the SSH address stays", (_how, promote) => {
    const f = sshSecondary(promote);
    const p = plan({ addresses: [] }, f);
    expect(commands(p)).toEqual(["ip addr del 198.18.1.200/24 dev eth0", `rm -f -- ${STATE}`]);
    const after = factsAfter(p, f);
    expect(failedLabels(p, after)).toEqual([]);
    expect(answer(after, ipAddressesProbe).interfaces.eth0!.cidrs).toEqual([`${SSH}/24`]);
  });

  it("deletes secondaries before their primary when all of them go", () => {
    const f = networkdHost(
      [stateLine(["198.18.9.10/24 eth0", "198.18.9.11/24 eth0"])],
      [`${SSH}/24`, "198.18.9.10/24", "198.18.9.11/24"],
    );
    const p = plan({ addresses: [] }, f);
    expect(commands(p).slice(0, 2)).toEqual([
      "ip addr del 198.18.9.11/24 dev eth0",
      "ip addr del 198.18.9.10/24 dev eth0",
    ]);
    expect(() => factsAfter(p, f)).not.toThrow();
  });

  it("refuses to delete a primary that would take a kept extra along", () => {
    const f = networkdHost(
      [stateLine(["198.18.9.10/24 eth0", "198.18.9.11/24 eth0"])],
      [`${SSH}/24`, "198.18.9.10/24", "198.18.9.11/24"],
    );
    expect(refusals({ addresses: ["198.18.9.11/24"] }, f)).toMatch(
      /^deleting 198\.18\.9\.10\/24 from eth0 would also delete 198\.18\.9\.11\/24: 198\.18\.9\.10\/24 is the primary address of 198\.18\.9\.0\/24/,
    );
  });

  it("a /32 or another prefix is no secondary of the subnet: deleting it takes nothing along", () => {
    const f = networkdHost([stateLine(["198.18.1.200/32 eth0"])], ["198.18.1.200/32", `${SSH}/24`]);
    expect(commands(plan({ addresses: [] }, f))).toEqual(["ip addr del 198.18.1.200/32 dev eth0", `rm -f -- ${STATE}`]);
  });
});

describe("secondary-source-ips: what it added is recorded with its interface", () => {
  it("persist: false, then [] deletes what it added live (the record is the only trace)", () => {
    const before = hostFacts({});
    const added = factsAfter(plan({ addresses: ["198.18.1.210/24"], persist: false }, before), before);
    const emptied = plan({ addresses: [], persist: false }, added);
    expect(commands(emptied)).toEqual(["ip addr del 198.18.1.210/24 dev eth0", `rm -f -- ${STATE}`]);
    const after = factsAfter(emptied, added);
    expect(failedLabels(emptied, after)).toEqual([]);
    expect(plan({ addresses: [], persist: false }, after).changes).toEqual([]);
  });

  it("persist: false with no record (files of an earlier version only) still leaves addresses and files alone", () => {
    const f = networkdHost(
      [line("managed", NETWORKD_DROPIN, "Address=198.18.1.201/24\n")],
      [`${SSH}/24`, "198.18.1.201/24"],
    );
    expect(plan({ addresses: [], persist: false }, f).changes).toEqual([]);
  });

  it("after the interface changes, addresses are deleted from the old one (networkd drop-in of the old .network file)", () => {
    const f = hostFacts({
      more: { eth1: ["198.18.2.2/24"] },
      stack: [
        line("networkd", "/etc/systemd/network/10-eth0.network", ETH0_NETWORK),
        line("networkd", "/etc/systemd/network/20-eth1.network", "[Match]\nName=eth1\n"),
        line("managed", NETWORKD_DROPIN, "[Address]\nAddress=198.18.1.201/24\n"),
      ],
      eth0: [`${SSH}/24`, "198.18.1.201/24"],
    });
    const p = plan({ interface: "eth1", addresses: ["198.18.1.201/24"] }, f);
    expect(commands(p)).toEqual([
      "ip addr del 198.18.1.201/24 dev eth0",
      `rm -f -- ${NETWORKD_DROPIN}`,
      "ip addr add 198.18.1.201/24 dev eth1",
    ]);
    expect(fileChange(p).path).toBe("/etc/systemd/network/20-eth1.network.d/60-provision-secondary-ips.conf");
    const after = factsAfter(p, f);
    expect(failedLabels(p, after)).toEqual([]);
    expect(plan({ interface: "eth1", addresses: ["198.18.1.201/24"] }, after).changes).toEqual([]);
  });

  it("after the interface changes, the record names the old interface (live only)", () => {
    const f = hostFacts({
      eth0: [`${SSH}/24`, "198.18.1.210/24"],
      more: { eth1: [] },
      stack: [stateLine(["198.18.1.210/24 eth0"])],
    });
    expect(commands(plan({ interface: "eth1", addresses: ["198.18.1.210/24"], persist: false }, f))).toEqual([
      "ip addr del 198.18.1.210/24 dev eth0",
      "ip addr add 198.18.1.210/24 dev eth1",
    ]);
  });

  it("a drop-in is credited to every interface its .network file matches, not to the one named now", () => {
    const net = networkStackProbe.parse(
      line("networkd", "/etc/systemd/network/10-e.network", "[Match]\nName=eth*\n"),
      undefined,
    );
    const live = liveAddresses(ipAddressesProbe.parse(probeOutput({ eth0: [], eth1: [], ens5: [] }), undefined));
    const owned = ownedAddresses(
      "/etc/systemd/network/10-e.network.d/60-provision-secondary-ips.conf",
      "Address=198.18.1.201/24\n",
      net.networkd.files,
      live,
    );
    expect(owned.map((o) => `${o.cidr.text}@${o.iface}`)).toEqual(["198.18.1.201/24@eth0", "198.18.1.201/24@eth1"]);
    expect(
      ownedAddresses(
        "/etc/systemd/network/99-gone.network.d/60-provision-secondary-ips.conf",
        "Address=198.18.1.201/24\n",
        net.networkd.files,
        live,
      ),
    ).toEqual([]);
  });
});

describe("secondary-source-ips: its files, by exact name", () => {
  const commaDropin = "/etc/systemd/network/10-a,b.network.d/60-provision-secondary-ips.conf";

  it("a .network file name with a comma stays one path: only that drop-in is removed, and verify reads it back", () => {
    const f = networkdHost(
      [line("managed", commaDropin, "Address=198.18.1.201/24\n")],
      [`${SSH}/24`, "198.18.1.201/24"],
    );
    expect(answer(f, networkStackProbe).managed.paths).toEqual([commaDropin]);
    const p = plan({ addresses: ["198.18.1.201/24"] }, f);
    expect(p.changes.filter((c) => c.kind === "command").map((c) => (c.kind === "command" ? c.argv : []))).toEqual([
      ["rm", "-f", "--", commaDropin],
    ]);
    const after = factsAfter(p, f);
    expect(failedLabels(p, after)).toEqual([]);
    expect(plan({ addresses: ["198.18.1.201/24"] }, after).changes).toEqual([]);
  });

  it("a path with a newline or a space is one entry too", () => {
    const odd = "/etc/systemd/network/10-x\ny, z.network.d/60-provision-secondary-ips.conf";
    const f = networkStackProbe.parse(
      [line("managed", odd, "x"), line("managed", NETWORKD_DROPIN, "y")].join("\n"),
      undefined,
    );
    expect(f.managed.paths).toEqual([odd, NETWORKD_DROPIN]);
    expect(Object.keys(f.managed.files)).toEqual([odd, NETWORKD_DROPIN]);
  });

  it("a probe record for any other path is ignored, never deleted", () => {
    const f = networkdHost([
      line("managed", "/etc/passwd", "root:x:0:0\n"),
      line("managed", "/etc/systemd/network/x/../10-eth0.network.d/other.conf", "Address=198.18.1.201/24\n"),
    ]);
    expect(answer(f, networkStackProbe).managed).toEqual({ paths: [], files: {} });
    expect(plan({ addresses: [] }, f).changes).toEqual([]);
  });
});

describe("secondary-source-ips: IPv6 duplicate address detection", () => {
  const live = (flag: string) =>
    networkdHost([stateLine(["2001:db8:5::10/64 eth0"])], [`${SSH}/24`, `2001:db8:5::10/64 ${flag}`]);

  it("reads the flags of a captured namespace (duplicate on a veth peer, one still in detection)", () => {
    const ip = ipAddressesProbe.parse(fixture("netns-dad-ip-addr.txt"), undefined);
    const eth0 = ip.interfaces.eth0!;
    const flagged = (flag: "secondary" | "tentative" | "dadfailed") =>
      eth0.addresses.filter((a) => a[flag]).map((a) => a.text);
    expect(flagged("dadfailed")).toEqual(["2001:db8::5/64"]);
    // the kernel keeps a failed address tentative too: it counts as failed only
    expect(flagged("tentative")).toEqual(["2001:db8::6/64"]);
    expect(flagged("secondary")).toEqual(["198.18.7.200/24", "198.18.9.11/24"]);
    expect(eth0.promoteSecondaries).toBe(false);
    expect(ip.interfaces.peer0!.promoteSecondaries).toBe(true);
    expect(eth0.cidrs).toContain("2001:db8::5/64");
    expect(eth0.usable).toEqual(expect.arrayContaining(["2001:db8::6/64"]));
    expect(eth0.usable).not.toContain("2001:db8::5/64");
  });

  it("a dadfailed address fails verify with the cause, and run deletes and re-adds it", () => {
    const f = live("dadfailed");
    const over = { addresses: ["2001:db8:5::10/64"] };
    const verify = plan(over, f, { purpose: "verify" });
    // (the record and drop-in of this fixture are not what the role renders: their sha256 checks fail too)
    const failed = evaluateChecks(verify.checks, f).filter(
      (r) => !r.ok && r.check.kind === "probe" && !r.check.label.endsWith("(sha256)"),
    );
    expect(failed.map((r) => (r.check.kind === "probe" ? r.check.label : ""))).toEqual(["2001:db8:5::10/64 on eth0"]);
    expect(failed[0]!.check.message).toMatch(
      /failed duplicate address detection \(dadfailed\): another node on the link uses it/,
    );
    const p = plan(over, f);
    expect(commands(p)).toEqual([
      "ip addr del 2001:db8:5::10/64 dev eth0",
      "ip addr add 2001:db8:5::10/64 dev eth0 preferred_lft 0",
    ]);
    expect(p.notes.map((n) => n.text)).toContain(
      "2001:db8:5::10/64 on eth0 failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it; run deletes and re-adds it to repeat the detection",
    );
    expect(p.notes[0]!.text).toContain("over IPv6 from eth0: 1 source IPs");
  });

  it("a tentative address is present (nothing to do, verify passes) but noted as not usable yet", () => {
    const f = live("tentative");
    const p = plan({ addresses: ["2001:db8:5::10/64"] }, f);
    expect(commands(p)).toEqual([]);
    expect(
      failedLabels(plan({ addresses: ["2001:db8:5::10/64"] }, f, { purpose: "verify" }), f).filter(
        (l) => !l.includes("sha256"),
      ),
    ).toEqual([]);
    expect(p.notes.map((n) => n.text)).toContain(
      "2001:db8:5::10/64 on eth0 is tentative (duplicate address detection running): bind() to it fails with EADDRNOTAVAIL until it ends, within a few seconds",
    );
  });
});

describe("secondary-source-ips validate()", () => {
  const validate = secondarySourceIps.validate!;
  it.each<[string, Record<string, unknown>, Array<{ param: string; problem: RegExp }>]>([
    ["the defaults", {}, []],
    ["IPv4 and IPv6", { addresses: ["198.18.5.10/24", "2001:db8::10/64"] }, []],
    [
      "no prefix",
      { addresses: ["198.18.5.10"] },
      [{ param: "addresses", problem: /"198\.18\.5\.10" is not ADDRESS\/PREFIX/ }],
    ],
    ["a leading zero", { addresses: ["198.18.05.10/24"] }, [{ param: "addresses", problem: /not an IPv4 address/ }]],
    [
      "the network address",
      { addresses: ["198.18.5.0/24"] },
      [{ param: "addresses", problem: /network address of 198\.18\.5\.0\/24/ }],
    ],
    ["loopback", { addresses: ["127.0.0.5/8"] }, [{ param: "addresses", problem: /loopback/ }]],
    [
      "the same address twice, two spellings",
      { addresses: ["2001:db8::10/64", "2001:DB8:0::10/64"] },
      [{ param: "addresses", problem: /repeats 2001:db8::10 \(already listed as "2001:db8::10\/64"\)/ }],
    ],
    [
      "the same address with two prefixes",
      { addresses: ["198.18.5.10/24", "198.18.5.10/32"] },
      [{ param: "addresses", problem: /repeats 198\.18\.5\.10/ }],
    ],
    ["interface ..", { interface: ".." }, [{ param: "interface", problem: /"\.\." is not an interface name/ }]],
    [
      "several problems at once",
      { interface: ".", addresses: ["1.2.3/24", "224.0.0.1/4"] },
      [
        { param: "interface", problem: /./ },
        { param: "addresses", problem: /not an IPv4/ },
        { param: "addresses", problem: /multicast/ },
      ],
    ],
  ])("%s", (_what, over, expected) => {
    const problems = validate(paramsOf(secondarySourceIps, over) as unknown as SecondarySourceIpsParams);
    expect(problems.map((p) => ({ param: p.param, problem: p.problem, severity: p.severity }))).toEqual(
      expected.map((e) => ({
        param: e.param,
        problem: expect.stringMatching(e.problem) as unknown as string,
        severity: "error",
      })),
    );
    for (const p of problems) expect(p.fix.length).toBeGreaterThan(10);
  });
});

describe("secondary-source-ips schema", () => {
  function check(yaml: string): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    const file = parseYamlText(yaml, "host_vars.yaml", problems)!;
    validateAgainstSchema(secondarySourceIps.schema, file.data, file, [], problems);
    return problems;
  }

  it("gives every param a default, a why and a fix; the defaults are valid", () => {
    for (const [key, s] of Object.entries(secondarySourceIps.schema.properties)) {
      expect(s.description.length, key).toBeGreaterThan(150);
      expect("default" in s, key).toBe(true);
    }
    expect(paramsOf(secondarySourceIps)).toEqual({ interface: null, addresses: [], persist: true, stack: "auto" });
    expect(check("{}")).toEqual([]);
    expect(secondarySourceIps.schema.properties.addresses!.description).toMatch(
      /28,232.*64,512.*EADDRNOTAVAIL.*bind\(src_ip, 0\).*IP_BIND_ADDRESS_NO_PORT/,
    );
  });

  it.each<[string, RegExp | null]>([
    ["interface: eth0\naddresses: [198.18.5.10/24, '2001:db8::10/64']\nstack: networkd\n", null],
    ["interface: vlan.100@eth0\n", null],
    ["interface: 'eth0; reboot'\n", /interface: "eth0; reboot" has an invalid form.*letters, digits/],
    ["interface: ../../etc\n", /has an invalid form/],
    ["interface: averyveryverylongname\n", /has an invalid form/],
    ["addresses: ['198.18.5.10/24; rm -rf /']\n", /addresses\[0\].*has an invalid form.*ADDRESS\/PREFIX/],
    ['addresses: ["198.18.5.10/24\\n"]\n', /has an invalid form/],
    ["addresses: 198.18.5.10/24\n", /addresses: expected a list, got a string/],
    ["stack: netplan\n", /stack: "netplan" is not one of.*netplan and NetworkManager are not supported/],
    ["persist: yes please\n", /expected a boolean/],
  ])("%j", (yaml, expected) => {
    const problems = check(yaml).map((p) => `${p.keyPath}: ${p.problem}. ${p.fix}`);
    if (expected === null) expect(problems).toEqual([]);
    else expect(problems.join("\n")).toMatch(expected);
  });
});

/** Value lines (matching `isValue`) whose previous line is not a comment. */
function valueLinesWithoutComment(content: string, isValue: RegExp): string[] {
  const lines = content.split("\n");
  return lines.filter((l, i) => isValue.test(l) && !(lines[i - 1] ?? "").startsWith("#"));
}

/** Facts of a fleet host as gathered on this machine (probe output captured with test/fleet). */
function captured(host: "h1" | "h2"): Facts {
  return {
    sysctl: { [RANGE]: "32768\t60999" },
    files: {},
    listeningPorts: null,
    probes: {
      "ip-addresses": { ok: true, value: ipAddressesProbe.parse(fixture(`${host}-ip-addr.json`), undefined) },
      "network-stack": { ok: true, value: networkStackProbe.parse(fixture(`${host}-network-stack.txt`), undefined) },
    },
  };
}
