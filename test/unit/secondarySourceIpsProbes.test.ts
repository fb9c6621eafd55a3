import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  canonicalIp,
  ipAddressesProbe,
  liveAddresses,
  parseCidr,
  parseIpAddr,
  promotesSecondaries,
  unusableReason,
  type Cidr,
  type IpAddresses,
} from "../../src/facts/ipAddresses.js";
import {
  fnmatch,
  matchesNameList,
  networkStackProbe,
  parseInterfaces,
  parseMatchSection,
} from "../../src/facts/networkStack.js";
import { ProbeParseError } from "../../src/facts/probe.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "secondary-source-ips");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8").replace(/\n$/, "");
const cidr = (text: string) => parseCidr(text) as Cidr;

/** A network-stack probe line, as the probe prints it. */
function line(kind: string, path: string, content: string | null): string {
  return `${kind} ${Buffer.from(path).toString("base64")} ${content === null ? "-" : Buffer.from(content).toString("base64")}`;
}

describe("parseCidr", () => {
  it.each<[string, string]>([
    ["198.18.5.10/24", "198.18.5.10/24"],
    [" 198.18.5.10/32 ", "198.18.5.10/32"],
    ["2001:db8::10/64", "2001:db8::10/64"],
    ["2001:DB8:0:0:0:0:0:0010/64", "2001:db8::10/64"],
    ["2001:db8:0:0:1:0:0:1/64", "2001:db8::1:0:0:1/64"],
    ["2001:db8:0:1:1:1:1:1/64", "2001:db8:0:1:1:1:1:1/64"],
    ["2001:0:0:1:0:0:0:1/64", "2001:0:0:1::1/64"],
    ["fd00::1:2/128", "fd00::1:2/128"],
    ["::ffff:1.2.3.4/128", "::ffff:102:304/128"],
  ])("%s → %s", (input, expected) => {
    expect(cidr(input).text).toBe(expected);
  });

  it.each<[string, RegExp]>([
    ["198.18.5.10", /is not ADDRESS\/PREFIX/],
    ["198.18.5.10/33", /prefix \/33; an IPv4 prefix is 1 to 32/],
    ["198.18.5.10/0", /prefix \/0/],
    ["198.18.5.10/024", /prefix \/024/],
    ["2001:db8::1/129", /IPv6 prefix is 1 to 128/],
    ["198.018.5.10/24", /not an IPv4 address/],
    ["198.18.5.256/24", /not an IPv4 address/],
    ["198.18.5/24", /not an IPv4 address/],
    ["2001:db8::1::2/64", /not an IPv6 address/],
    ["2001:db8:1:2:3:4:5:6:7/64", /not an IPv6 address/],
    ["2001:db8:1:2:3:4:5/64", /not an IPv6 address/],
    ["2001:db8::12345/64", /not an IPv6 address/],
    ["2001:db8::g/64", /not an IPv6 address/],
  ])("%s is refused", (input, problem) => {
    const r = parseCidr(input);
    expect("error" in r && r.error).toMatch(problem);
  });
});

describe("unusableReason", () => {
  it.each<[string, RegExp | null]>([
    ["198.18.5.10/24", null],
    ["198.18.5.1/31", null],
    ["198.18.5.0/31", null],
    ["10.0.0.5/32", null],
    ["2001:db8::10/64", null],
    ["2001:db8::/127", null],
    ["198.18.5.0/24", /network address/],
    ["198.18.5.255/24", /broadcast address/],
    ["127.0.0.2/8", /loopback/],
    ["0.1.2.3/8", /this network/],
    ["169.254.1.1/16", /link-local/],
    ["224.0.0.1/24", /multicast/],
    ["255.255.255.255/32", /multicast or reserved/],
    ["::1/128", /unspecified, loopback/],
    ["::/128", /unspecified/],
    ["::ffff:1.2.3.4/128", /IPv4-mapped/],
    ["fe80::1/64", /link-local/],
    ["febf::1/64", /link-local/],
    ["ff02::1/64", /multicast/],
    ["2001:db8::/64", /subnet-router anycast/],
  ])("%s", (input, expected) => {
    const reason = unusableReason(cidr(input));
    if (expected === null) expect(reason).toBeNull();
    else expect(reason).toMatch(expected);
  });
});

describe("canonicalIp (the SSH session's address)", () => {
  it.each<[string, string | null]>([
    ["198.18.5.2", "198.18.5.2"],
    ["::ffff:198.18.5.2", "198.18.5.2"],
    ["2001:DB8::0002", "2001:db8::2"],
    ["fe80::1%eth0", "fe80::1"],
    ["web01.example.com", null],
    ["", null],
  ])("%s → %s", (input, expected) => {
    expect(canonicalIp(input)).toBe(expected);
  });
});

describe("ip-addresses probe", () => {
  /** An interface's addresses as the probe's answer holds them: ADDRESS/PREFIX and the flags that are set. */
  const flagged = (ip: IpAddresses, name: string) =>
    ip.interfaces[name]!.addresses.map((a) =>
      [a.text, ...(["secondary", "tentative", "dadfailed"] as const).filter((f) => a[f])].join(" "),
    );

  it.each<[string, string[], Record<string, string[]>, string[] | RegExp]>([
    [
      "h1-ip-addr.json",
      ["lo", "eth0"],
      {
        lo: ["127.0.0.1/8", "::1/128"],
        eth0: [
          "198.18.1.2/24",
          "198.18.1.201/24 secondary",
          "2001:db8:5::10/64",
          "fe80::dca4:b9ff:fe07:55ef/64 tentative",
        ],
      },
      ["127.0.0.1", "::1", "198.18.1.2", "198.18.1.201", "2001:db8:5::10", "fe80::dca4:b9ff:fe07:55ef"],
    ],
    [
      "h2-ip-addr.json",
      ["lo", "eth0"],
      { lo: ["127.0.0.1/8", "::1/128"], eth0: ["198.18.1.3/24", "fe80::484d:2aff:fe85:7884/64 tentative"] },
      ["127.0.0.1", "::1", "198.18.1.3", "fe80::484d:2aff:fe85:7884"],
    ],
    [
      "netns-ip-addr.json",
      ["lo", "peer0", "eth0"],
      {
        lo: ["127.0.0.1/8", "::1/128"],
        peer0: [expect.stringMatching(/^fe80::[0-9a-f:]+\/64 tentative$/) as unknown as string],
        eth0: [
          "198.18.7.2/24",
          "10.9.0.5/32",
          "198.18.7.200/24 secondary",
          "2001:db8::5/64",
          expect.stringMatching(/^fe80::[0-9a-f:]+\/64 tentative$/) as unknown as string,
        ],
      },
      /198\.18\.7\.200,2001:db8::5,/,
    ],
  ])("parses %s (captured on this machine)", (name, names, addresses, locals) => {
    const ip = ipAddressesProbe.parse(fixture(name), undefined);
    expect(ip.names).toEqual(names);
    expect(Object.keys(ip.interfaces)).toEqual(names);
    for (const n of names) {
      expect(flagged(ip, n), n).toEqual(addresses[n]);
      // no duplicate address detection failed here: every address is usable
      expect(ip.interfaces[n]!.usable, n).toEqual(ip.interfaces[n]!.cidrs);
      expect(ip.interfaces[n]!.cidrs, n).toEqual(ip.interfaces[n]!.addresses.map((a) => a.text));
      // a fixture without promote_secondaries lines: unknown
      expect(ip.interfaces[n]!.promoteSecondaries, n).toBeNull();
    }
    if (Array.isArray(locals)) expect(ip.locals).toEqual(locals);
    else expect(ip.locals.join(",")).toMatch(locals);
  });

  it("turns the answer into addresses per interface", () => {
    const live = liveAddresses(ipAddressesProbe.parse(fixture("h1-ip-addr.json"), undefined));
    expect([...live.keys()]).toEqual(["lo", "eth0"]);
    expect(live.get("eth0")!.map((c) => [c.family, c.address, c.prefix])).toEqual([
      [4, "198.18.1.2", 24],
      [4, "198.18.1.201", 24],
      [6, "2001:db8:5::10", 64],
      [6, "fe80::dca4:b9ff:fe07:55ef", 64],
    ]);
  });

  it("parseIpAddr reads `ip -j addr show` alone, with each address's scope", () => {
    const links = parseIpAddr(fixture("h1-ip-addr.json"));
    expect(links.map((l) => l.name)).toEqual(["lo", "eth0"]);
    expect(links[1]!.addresses.map((a) => `${a.text} ${a.scope}`)).toEqual([
      "198.18.1.2/24 global",
      "198.18.1.201/24 global",
      "2001:db8:5::10/64 global",
      "fe80::dca4:b9ff:fe07:55ef/64 link",
    ]);
  });

  it.each<[string, string, RegExp]>([
    ["not JSON (an old iproute2 without -j)", 'Option "-j" is unknown, try "ip -help".', /did not print JSON/],
    ["not an array", '{"ifname":"eth0"}', /not print a JSON array/],
  ])("refuses output that is %s", (_what, raw, message) => {
    expect(() => ipAddressesProbe.parse(raw, undefined)).toThrow(ProbeParseError);
    expect(() => ipAddressesProbe.parse(raw, undefined)).toThrow(message);
  });

  it("skips the empty objects iproute2 prints for filtered links", () => {
    expect(
      ipAddressesProbe.parse(
        '[{},{"ifname":"eth0","addr_info":[{"local":"198.18.1.2","prefixlen":24},{}]}]',
        undefined,
      ),
    ).toEqual({
      names: ["eth0"],
      interfaces: {
        eth0: {
          addresses: [
            {
              family: 4,
              address: "198.18.1.2",
              prefix: 24,
              text: "198.18.1.2/24",
              scope: "",
              secondary: false,
              tentative: false,
              dadfailed: false,
            },
          ],
          cidrs: ["198.18.1.2/24"],
          usable: ["198.18.1.2/24"],
          promoteSecondaries: null,
        },
      },
      locals: ["198.18.1.2"],
    });
  });

  it.each<[string, string, Record<string, boolean | null>]>([
    ["the interface's own setting", "all 0\ndefault 0\neth0 1\nlo 0\n", { eth0: true, lo: false }],
    ["`all`, which the kernel ORs with the interface's", "all 1\ndefault 0\neth0 0\nlo 0\n", { eth0: true, lo: true }],
    ["neither (the kernel's default)", "all 0\ndefault 0\neth0 0\nlo 0\n", { eth0: false }],
    ["an unreadable value", "all 0\neth0 \n", { eth0: null }],
    ["no section at all (an older probe)", null as unknown as string, { eth0: null }],
  ])("promote_secondaries from %s", (_what, lines, expected) => {
    const json =
      '[{"ifname":"lo","addr_info":[]},{"ifname":"eth0","addr_info":[{"local":"198.18.1.2","prefixlen":24}]}]';
    const raw = lines === null ? json : `${json}\n\n# promote_secondaries\n${lines}`;
    const ip = ipAddressesProbe.parse(raw, undefined);
    for (const [name, value] of Object.entries(expected)) {
      expect(ip.interfaces[name]!.promoteSecondaries, name).toBe(value);
      expect(promotesSecondaries(ip, name), name).toBe(value);
    }
  });

  it("a name that is also an Object property is no interface", () => {
    const ip = ipAddressesProbe.parse('[{"ifname":"eth0","addr_info":[]}]', undefined);
    expect(promotesSecondaries(ip, "constructor")).toBeNull();
  });

  it("runs locally and finds the loopback address", () => {
    const raw = execFileSync("sh", ["-c", `set -u\n${ipAddressesProbe.script(undefined)}`], { encoding: "utf8" });
    const ip = ipAddressesProbe.parse(raw, undefined);
    expect(ip.interfaces.lo!.cidrs).toContain("127.0.0.1/8");
  });
});

describe("network-stack probe", () => {
  it("parses a networkd host (captured: 10-eth0.network, a masked vendor file, this role's drop-in)", () => {
    const f = networkStackProbe.parse(fixture("h1-network-stack.txt"), undefined);
    const files = f.networkd.files.map((n) => n.path);
    expect(files[0]).toBe("/etc/systemd/network/10-eth0.network");
    // masked in /etc by a /dev/null symlink: shadows the vendor file of the same name
    expect(files.some((p) => p.endsWith("80-wifi-adhoc.network"))).toBe(false);
    // /lib is a symlink to /usr/lib here: each name counted once, the higher directory first
    expect(files.filter((p) => p.endsWith("80-6rd-tunnel.network"))).toEqual([
      "/usr/lib/systemd/network/80-6rd-tunnel.network",
    ]);
    const byPath = (path: string) => f.networkd.files.find((n) => n.path === path);
    expect(byPath("/etc/systemd/network/10-eth0.network")).toEqual({
      path: "/etc/systemd/network/10-eth0.network",
      names: ["eth0"],
      other: [],
    });
    expect(byPath("/usr/lib/systemd/network/80-6rd-tunnel.network")).toEqual({
      path: "/usr/lib/systemd/network/80-6rd-tunnel.network",
      names: ["6rd-*"],
      other: ["Type"],
    });
    const dropin = "/etc/systemd/network/10-eth0.network.d/60-provision-secondary-ips.conf";
    expect(f.managed.paths).toEqual([dropin]);
    expect(f.managed.files[dropin]!.content).toBe("# managed\n[Address]\nAddress=198.18.1.201/24\n");
    expect(f.managed.files[dropin]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(f).toMatchObject({
      networkd: { daemon: true },
      ifupdown: { main: false, ifup: false },
      networkManager: { present: false },
    });
    expect(f.netplan).toEqual({});
  });

  it("parses an ifupdown host (captured: interfaces sourcing interfaces.d, eth1 in interfaces.d)", () => {
    const f = networkStackProbe.parse(fixture("h2-network-stack.txt"), undefined);
    expect(f).toMatchObject({
      ifupdown: { main: true, sourcesDropin: true, ifaces: ["lo", "eth0", "eth1"] },
      managed: { paths: [] },
    });
  });

  it("reads netplan and NetworkManager records", () => {
    const raw = [
      line("netplan", "/etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n"),
      line("flag", "networkmanager", "yes"),
      line("nm-devices", "-", "eth0:connected\nlo:unmanaged\nwlan0:disconnected\n"),
      line("nm-profiles", "-", "interface-name=eth2\n"),
    ].join("\n");
    const f = networkStackProbe.parse(raw, undefined);
    expect(Object.keys(f.netplan)).toEqual(["/etc/netplan/50-cloud-init.yaml"]);
    expect(f.netplan["/etc/netplan/50-cloud-init.yaml"]).toContain("eth0:");
    expect(f.networkManager).toEqual({ present: true, ifaces: ["eth0", "wlan0", "eth2"] });
  });

  it("keeps bytes exact for the sha256 of this role's files (no final newline, non-UTF-8)", () => {
    const path = "/etc/network/interfaces.d/60-provision-secondary-ips";
    const bytes = Buffer.from([0x23, 0x20, 0xff, 0x0a, 0x78]);
    const raw = `managed ${Buffer.from(path).toString("base64")} ${bytes.toString("base64")}`;
    const f = networkStackProbe.parse(raw, undefined);
    expect(f.managed.files[path]!.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
  });

  it("reads the mode of this role's files (run-parts skips a hook that is not executable)", () => {
    const hook = "/etc/network/if-up.d/60-provision-secondary-ips";
    const f = networkStackProbe.parse(
      [line("managed", hook, "#!/bin/sh\n"), line("mode", hook, "644\n")].join("\n"),
      undefined,
    );
    expect(f.managed.files[hook]!.mode).toBe("644");
  });

  it("lists the families of each interface's stanzas, across interfaces.d", () => {
    const f = networkStackProbe.parse(
      [
        line(
          "ifupdown-main",
          "/etc/network/interfaces",
          "source /etc/network/interfaces.d/*\niface eth0 inet static\n",
        ),
        line("ifupdown-file", "/etc/network/interfaces.d/v6", "iface eth0 inet6 auto\n"),
      ].join("\n"),
      undefined,
    );
    expect(f.ifupdown.families).toEqual({ eth0: ["inet", "inet6"] });
  });

  it("refuses a line it does not know", () => {
    expect(() => networkStackProbe.parse("garbage", undefined)).toThrow(ProbeParseError);
  });

  it.each<[string, string]>([
    ["a plain absolute path travels as it is", "/etc/systemd/network/10-eth0.network"],
    ["a path with a space travels in base64", "/etc/systemd/network/10 eth0.network"],
    ["a path with a newline travels in base64", "/etc/systemd/network/10\neth0.network"],
  ])("paths: %s, and read back the same", (_what, path) => {
    const dir = mkdtempSync(join(tmpdir(), "network-stack-"));
    try {
      const file = join(dir, path.split("/").pop()!);
      writeFileSync(file, "[Match]\nName=eth0\n");
      // the probe's own emit, run on a file of that name
      const script = `${networkStackProbe.script(undefined).split("\nseen=")[0]}\nemit networkd "$1"`;
      const out = execFileSync("sh", ["-c", `set -u\n${script}`, "sh", file], { encoding: "utf8" });
      expect(out.startsWith(`networkd ${file} `)).toBe(!/[\s]/.test(file));
      const f = networkStackProbe.parse(out, undefined);
      expect(f.networkd.files).toEqual([{ path: file, names: ["eth0"], other: [] }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs locally (this machine: vendor .network files only, no ifupdown)", () => {
    const raw = execFileSync("sh", ["-c", `set -u\n${networkStackProbe.script(undefined)}`], { encoding: "utf8" });
    const f = networkStackProbe.parse(raw.replace(/\n+$/, ""), undefined);
    expect(f.networkd.files.map((n) => n.path)).toContain("/usr/lib/systemd/network/80-container-host0.network");
    expect(f.ifupdown.main).toBe(false);
  });
});

describe("[Match] sections and Name= globs", () => {
  it.each<[string, string, { names: string[]; other: string[] }]>([
    ["a name", "[Match]\nName=eth0\n", { names: ["eth0"], other: [] }],
    ["globs on two lines", "[Match]\nName=en* eth0\nName=wl?\n", { names: ["en*", "eth0", "wl?"], other: [] }],
    ["an empty Name= resets", "[Match]\nName=eth0\nName=\nName=eth1\n", { names: ["eth1"], other: [] }],
    ["other keys", "[Match]\nMACAddress=aa:bb:cc:dd:ee:ff\nType=ether\n", { names: [], other: ["MACAddress", "Type"] }],
    ["no [Match] at all", "[Network]\nDHCP=yes\n", { names: [], other: [] }],
    [
      "keys outside [Match] and comments ignored",
      "# Name=x\n[Network]\nName=y\n[Match]\n; Name=z\n Name = eth0 \n",
      { names: ["eth0"], other: [] },
    ],
  ])("%s", (_what, content, expected) => {
    expect(parseMatchSection(content)).toEqual(expected);
  });

  it.each<[string[], string, boolean]>([
    [["eth0"], "eth0", true],
    [["eth0"], "eth1", false],
    [["en*"], "ens5", true],
    [["eth?"], "eth0", true],
    [["eth[0-3]"], "eth2", true],
    [["eth[!0-3]"], "eth2", false],
    [["!eth0"], "eth1", true],
    [["!eth0", "lo"], "lo", false],
    [[], "anything", true],
    [["eth0.100"], "eth0x100", false],
  ])("Name=%j against %s → %s", (names, iface, expected) => {
    expect(matchesNameList(names, iface)).toBe(expected);
  });

  it.each<[string, string, boolean]>([
    ["/etc/network/interfaces.d/*", "/etc/network/interfaces.d/60-provision-secondary-ips", true],
    ["/etc/network/*", "/etc/network/interfaces.d/60-provision-secondary-ips", false],
    ["/etc/network/interfaces.d/[0-9]*", "/etc/network/interfaces.d/60-x", true],
    ["/etc/network/interfaces.d/*.cfg", "/etc/network/interfaces.d/60-x", false],
  ])("fnmatch(%s, %s) → %s", (glob, path, expected) => {
    expect(fnmatch(glob, path)).toBe(expected);
  });
});

describe("interfaces(5) parsing", () => {
  type Parsed = ReturnType<typeof parseInterfaces>;
  it.each<[string, string, Parsed]>([
    [
      "Debian's default",
      "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
      {
        ifaces: ["lo", "lo"],
        stanzas: [{ iface: "lo", family: "inet" }],
        sources: ["/etc/network/interfaces.d/*"],
        sourceDirs: [],
      },
    ],
    [
      "relative source and source-directory",
      "source interfaces.d/*\nsource-directory interfaces.d\n",
      { ifaces: [], stanzas: [], sources: ["/etc/network/interfaces.d/*"], sourceDirs: ["/etc/network/interfaces.d"] },
    ],
    [
      "allow-hotplug, continued lines, two families",
      "allow-hotplug eth0 \\\n  eth1\niface eth0 inet dhcp\n# iface eth9 inet dhcp\niface eth0 inet6 auto\n",
      {
        ifaces: ["eth0", "eth1", "eth0", "eth0"],
        stanzas: [
          { iface: "eth0", family: "inet" },
          { iface: "eth0", family: "inet6" },
        ],
        sources: [],
        sourceDirs: [],
      },
    ],
  ])("%s", (_what, content, expected) => {
    expect(parseInterfaces(content)).toEqual(expected);
  });

  it.each<[string, boolean]>([
    ["source /etc/network/interfaces.d/*\n", true],
    ["source-directory /etc/network/interfaces.d\n", true],
    ["source-directory interfaces.d/\n", true],
    ["source interfaces.d/*\n", true],
    ["source /etc/network/interfaces.d/*.cfg\n", false],
    ["auto eth0\niface eth0 inet dhcp\n", false],
  ])("does %j read this role's file? %s", (content, expected) => {
    const f = networkStackProbe.parse(line("ifupdown-main", "/etc/network/interfaces", content), undefined);
    expect(f.ifupdown.sourcesDropin).toBe(expected);
  });
});
