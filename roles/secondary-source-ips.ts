import { createHash } from "node:crypto";
import { posix } from "node:path";
import { canonicalIp, IP_ADDRESSES_PROBE, ipAddressesProbe, isLinkLocal, liveAddresses, parseCidr, unusableReason, type Cidr } from "../src/facts/ipAddresses.js";
import {
  IFUPDOWN_DROPIN,
  IFUPDOWN_MAIN,
  matchesNameList,
  NETWORK_STACK_PROBE,
  networkStackProbe,
  NETWORKD_DROPIN_NAME,
} from "../src/facts/networkStack.js";
import { registerProbes } from "../src/facts/probes.js";
import { planManagedFile } from "../src/managedFile.js";
import { defineRole, probeKey, type Change, type Check, type Facts, type ParamProblem, type PlanContext } from "../src/role.js";

registerProbes(ipAddressesProbe, networkStackProbe);

export interface SecondarySourceIpsParams {
  interface: string | null;
  addresses: string[];
  persist: boolean;
  stack: "auto" | "networkd" | "ifupdown";
}

const ROLE = "secondary-source-ips";
const PORT_RANGE_KEY = "net.ipv4.ip_local_port_range";

type Fields = Record<string, string>;

/** Where the addresses are persisted. */
interface Target {
  stack: "networkd" | "ifupdown";
  path: string;
  /** networkd: the .network file the drop-in extends. */
  networkFile?: string;
}

/** An address this role put on an interface in an earlier run (read from its own files). */
interface Owned {
  iface: string;
  cidr: Cidr;
}

export default defineRole<SecondarySourceIpsParams>({
  name: ROLE,
  summary: "Add source IPs to an interface so outbound connections to one upstream aren't capped at one IP's ports",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      interface: {
        type: ["string", "null"], pattern: "^[a-zA-Z0-9_.@-]{1,15}$", default: null,
        description:
          "Interface that gets the extra source addresses. null (the default) picks the interface holding the address this SSH session is connected to, " +
          "which carries the host's traffic in most setups. It must exist: the plan names the interfaces that do when it doesn't.",
        fix: "use a name that `ip -br link` shows, e.g. eth0 or ens5 (letters, digits, _ . @ -; at most 15 characters), or null",
      },
      addresses: {
        type: "array", default: [], maxItems: 256,
        items: {
          type: "string", pattern: "^[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}$",
          fix: "write each address as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64",
        },
        description:
          "Extra IPv4/IPv6 addresses in CIDR form (198.18.5.10/24, 2001:db8::10/64), usually set per host in host_vars. " +
          "A source IP holds at most one connection per local port to a given destination ip:port: 28,232 with the default port range, 64,512 with 1024-65535; " +
          "past that connect() fails with EADDRNOTAVAIL, so a proxy that must hold 100k connections to one upstream needs 2+ source IPs. " +
          "The kernel keeps the primary address as the default source: an application uses the extra ones only when it calls bind(src_ip, 0) before connect(), " +
          "with IP_BIND_ADDRESS_NO_PORT set (Linux 4.2+) so the port is picked at connect() per 4-tuple instead of at bind() per source IP " +
          "(SO_REUSEADDR also works, with more collisions); e.g. nginx proxy_bind, HAProxy `source`. IPv6 addresses are added deprecated (preferred lifetime 0) " +
          "so the kernel never picks them by itself. The address the SSH session uses is never added, changed or removed. " +
          "Addresses this role added earlier and that leave the list are removed; [] removes them all.",
        fix: "write each address as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64",
      },
      persist: {
        type: "boolean", default: true,
        description:
          "Also write the addresses into the configuration of the network stack that manages the interface, so a reboot or ifdown/ifup brings them back; " +
          "an address added only live is lost then, and outbound capacity silently falls back to one IP. false adds them live only.",
      },
      stack: {
        type: "string", enum: ["auto", "networkd", "ifupdown"], default: "auto",
        description:
          "Network stack that persists the addresses. auto decides from configuration files, not from running daemons (which may not run while provision looks): " +
          "systemd-networkd when a .network file in /etc, /run or /usr/lib/systemd/network matches the interface by [Match] Name= (first by file name, as networkd picks), " +
          "persisted as a drop-in <that file>.d/60-provision-secondary-ips.conf; ifupdown when /etc/network/interfaces or interfaces.d names the interface " +
          "(iface, auto or allow- stanza), persisted as /etc/network/interfaces.d/60-provision-secondary-ips, which needs `source /etc/network/interfaces.d/*`. " +
          "netplan (/etc/netplan/*.yaml naming the interface) and NetworkManager (nmcli managing it) are detected and refused: they own their files. " +
          "When both networkd and ifupdown name the interface, say here which one runs.",
        fix: "use auto, networkd or ifupdown; netplan and NetworkManager are not supported (set persist: false and add the addresses in their configuration)",
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    if (p.interface === "." || p.interface === "..") {
      problems.push({ param: "interface", severity: "error", problem: `"${p.interface}" is not an interface name`, fix: "use a name that `ip -br link` shows, e.g. eth0" });
    }
    const seen = new Map<string, string>();
    for (const item of p.addresses) {
      const c = parseCidr(item);
      if ("error" in c) {
        problems.push({ param: "addresses", severity: "error", problem: `"${item}" ${c.error}`, fix: "write it as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64" });
        continue;
      }
      const reason = unusableReason(c);
      if (reason) {
        problems.push({ param: "addresses", severity: "error", problem: `"${item}" ${reason}`, fix: "use a unicast address the host can send from, in its network's prefix" });
        continue;
      }
      const earlier = seen.get(c.address);
      if (earlier !== undefined) {
        problems.push({ param: "addresses", severity: "error", problem: `"${item}" repeats ${c.address} (already listed as "${earlier}")`, fix: "list each address once, with one prefix" });
      }
      seen.set(c.address, item);
    }
    return problems;
  },

  facts: () => [
    { kind: "probe", probe: IP_ADDRESSES_PROBE },
    { kind: "probe", probe: NETWORK_STACK_PROBE },
    { kind: "sysctl", key: PORT_RANGE_KEY },
  ],

  plan(p, facts, ctx) {
    const net = probeFields(facts, NETWORK_STACK_PROBE, "detect the host's network stack");
    const managed = managedFiles(net);
    // The default playbook applies this role to every host; one without addresses (and nothing
    // from an earlier run to undo) must not fail for reasons that only matter when adding some.
    if (p.addresses.length === 0 && managed.length === 0) {
      return { changes: [], checks: [], notes: ["no addresses for this host: set secondary_source_ips.addresses in its host vars to add source IPs"] };
    }
    const live = liveAddresses(probeFields(facts, IP_ADDRESSES_PROBE, "read the host's addresses (`ip -j addr show`)"));
    const ssh = sshAddressOf(ctx);
    const iface = chooseInterface(p, live, ssh);
    const wanted = p.addresses.map((a) => parseCidr(a) as Cidr);
    refuseSshAddress(wanted, ssh, iface);

    const owned = p.persist ? managed.flatMap((m) => ownedAddresses(m.path, m.content, iface)) : [];
    const removed = owned.filter((o) => !(o.iface === iface && wanted.some((w) => w.text === o.cidr.text)) && hasAddress(live, o.iface, o.cidr));
    for (const r of removed) refuseSshAddress([r.cidr], ssh, r.iface);
    refuseConflicts(wanted, live, iface, removed);

    const target = p.persist && wanted.length > 0 ? chooseTarget(p, iface, net) : null;
    const steps = [
      ...(target ? [fileStep(ctx, target, iface, wanted, net)] : []),
      ...(p.persist ? managed.filter((m) => m.path !== target?.path).map((m) => staleFileStep(m.path)) : []),
      ...removed.map((r) => removeStep(r)),
      ...wanted.map((w) => addStep(w, iface, live)),
    ];
    const changes = steps.flatMap((s) => s.changes);
    const checks = steps.flatMap((s) => s.checks);
    if (changes.length > 0 || wanted.length > 0) checks.push(freshLoginCheck(live, ssh, iface));
    const notes = [...capacityNotes(live, iface, wanted, removed, facts.sysctl[PORT_RANGE_KEY] ?? null), ...persistNotes(p, target, iface, net, managed)];
    return { changes, checks, notes };
  },
});

function probeFields(facts: Facts, probe: string, what: string): Fields {
  const result = facts.probes?.[probeKey(probe)];
  if (!result) throw new Error(`could not ${what}: no answer from the ${probe} probe`);
  if (!result.ok) throw new Error(`could not ${what}: ${result.error}`);
  return result.fields;
}

function sshAddressOf(ctx: PlanContext): string {
  const ssh = canonicalIp(ctx.sshAddress);
  // Without the session's address we can't promise to leave it alone.
  if (ssh === null) throw new Error(`cannot tell which address the SSH session uses (got "${ctx.sshAddress}"); refusing to change addresses. Connect by IP address (ansible_host)`);
  return ssh;
}

function chooseInterface(p: SecondarySourceIpsParams, live: Map<string, Cidr[]>, ssh: string): string {
  const existing = [...live.keys()].join(", ");
  if (p.interface !== null) {
    if (!live.has(p.interface)) {
      throw new Error(`interface "${p.interface}" does not exist on this host (it has: ${existing}). Set secondary_source_ips.interface to one of them`);
    }
    return p.interface;
  }
  const holder = [...live.entries()].find(([, addrs]) => addrs.some((a) => a.address === ssh));
  if (!holder) {
    throw new Error(
      `the SSH session's address ${ssh} is on none of this host's interfaces (${existing}): NAT or a jump host is in between. ` +
        "Set secondary_source_ips.interface to the interface that should get the addresses",
    );
  }
  return holder[0];
}

function refuseSshAddress(cidrs: Cidr[], ssh: string, iface: string): void {
  const hit = cidrs.find((c) => c.address === ssh);
  if (hit) {
    throw new Error(
      `${hit.text} on ${iface} is the address this SSH session uses (${ssh}); secondary-source-ips never adds, changes or removes it. ` +
        "Remove it from secondary_source_ips.addresses (the primary address already counts as a source IP)",
    );
  }
}

/** An address can't sit on two interfaces, or on one with two prefixes, without surprising routing. */
function refuseConflicts(wanted: Cidr[], live: Map<string, Cidr[]>, iface: string, removed: Owned[]): void {
  const goingAway = (name: string, c: Cidr) => removed.some((r) => r.iface === name && r.cidr.text === c.text);
  for (const w of wanted) {
    for (const [name, addrs] of live) {
      const clash = addrs.find((a) => a.address === w.address && !(name === iface && a.prefix === w.prefix) && !goingAway(name, a));
      if (!clash) continue;
      throw new Error(
        name === iface
          ? `${w.address} is already on ${iface} as ${clash.text}, not ${w.text}. Remove it by hand (ip addr del ${clash.text} dev ${iface}) or list it as ${clash.text}`
          : `${w.address} is already on ${name} (${clash.text}); an address belongs to one interface. Remove it there (ip addr del ${clash.text} dev ${name}) or drop it from addresses`,
      );
    }
  }
}

function hasAddress(live: Map<string, Cidr[]>, iface: string, c: Cidr): boolean {
  return (live.get(iface) ?? []).some((a) => a.text === c.text);
}


/** Part of a plan: the changes of one thing and the checks that read it back. */
interface Step {
  changes: Change[];
  checks: Check[];
}

function fileStep(ctx: PlanContext, target: Target, iface: string, wanted: Cidr[], net: Fields): Step {
  const content = renderFile(ctx, target, iface, wanted);
  const file = planManagedFile({ path: target.path, content, role: ROLE }, fileFacts(net, target.path));
  return { changes: file.changes, checks: [fileCheck(target.path, content)] };
}

function staleFileStep(path: string): Step {
  return {
    changes: [{ kind: "command", argv: ["rm", "-f", "--", path], description: `remove ${path}: an earlier run wrote it, and no address is persisted there any more` }],
    checks: [{ kind: "probe", probe: NETWORK_STACK_PROBE, field: "managed.files", expected: path, compare: "excludes", label: `${path} removed`, message: `${path} is back: it would re-add old addresses at boot` }],
  };
}

function removeStep(r: Owned): Step {
  return {
    changes: [{ kind: "command", argv: ["ip", "addr", "del", r.cidr.text, "dev", r.iface], description: `remove ${r.cidr.text} from ${r.iface}: no longer in addresses` }],
    checks: [addressCheck(r.iface, r.cidr, "excludes")],
  };
}

/** IPv6 extras are deprecated at once so the kernel's source selection (RFC 6724) never picks them by itself. */
function addStep(c: Cidr, iface: string, live: Map<string, Cidr[]>): Step {
  const argv = ["ip", "addr", "add", c.text, "dev", iface, ...(c.family === 6 ? ["preferred_lft", "0"] : [])];
  return {
    changes: hasAddress(live, iface, c) ? [] : [{ kind: "command", argv, description: `add ${c.text} to ${iface} live` }],
    checks: [addressCheck(iface, c, "includes")],
  };
}

function managedFiles(net: Fields): Array<{ path: string; content: string }> {
  return (net["managed.files"] ?? "")
    .split(",")
    .filter(Boolean)
    .map((path) => ({ path, content: net[`managed.content:${path}`] ?? "" }));
}

/** Addresses an earlier run persisted: networkd `Address=` lines (for the current interface), ifupdown `up ip addr replace A dev I` lines. */
export function ownedAddresses(path: string, content: string, iface: string): Owned[] {
  const out: Owned[] = [];
  for (const line of content.split("\n")) {
    const m = path === IFUPDOWN_DROPIN ? /^\s*up ip addr replace (\S+) dev (\S+)/.exec(line) : /^Address=(\S+)\s*$/.exec(line);
    if (!m) continue;
    const cidr = parseCidr(m[1]!);
    if (!("error" in cidr)) out.push({ iface: m[2] ?? iface, cidr });
  }
  return out;
}

/** The facts planManagedFile needs, taken from the probe (a drop-in's path is only known after gathering). */
function fileFacts(net: Fields, path: string): Facts {
  const exists = (net["managed.files"] ?? "").split(",").includes(path);
  return {
    sysctl: {},
    listeningPorts: null,
    files: { [path]: exists ? (net[`managed.content:${path}`] ?? "") : null },
    fileSha256: { [path]: exists ? (net[`managed.sha256:${path}`] ?? "unreadable") : "absent" },
  };
}

function sha256(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex");
}

function fileCheck(path: string, content: string): Check {
  return {
    kind: "probe", probe: NETWORK_STACK_PROBE, field: `managed.sha256:${path}`, expected: sha256(content), compare: "equal",
    label: `${path} (sha256)`,
    message: `${path} differs from what ${ROLE} renders (edited by hand, or removed): the addresses may not come back at boot; \`provision plan\` shows the diff`,
  };
}

function addressCheck(iface: string, c: Cidr, compare: "includes" | "excludes"): Check {
  return {
    kind: "probe", probe: IP_ADDRESSES_PROBE, field: `addrs:${iface}`, expected: c.text, compare,
    label: compare === "includes" ? `${c.text} on ${iface}` : `${c.text} gone from ${iface}`,
    message:
      compare === "includes"
        ? `${c.text} is not on ${iface}: removed by hand, by ifdown, or by the network stack reconfiguring the link; outbound capacity is down one source IP until \`provision run\` adds it back`
        : `${c.text} is still on ${iface} though it left addresses`,
  };
}

/** Read through a brand-new login: proves the host still takes SSH connections after its addresses changed. */
function freshLoginCheck(live: Map<string, Cidr[]>, ssh: string, iface: string): Check {
  const sshIsLocal = [...live.values()].some((addrs) => addrs.some((a) => a.address === ssh));
  return sshIsLocal
    ? {
        kind: "probe", probe: IP_ADDRESSES_PROBE, field: "locals", expected: ssh, compare: "includes", freshLogin: true,
        label: `fresh login: SSH address ${ssh} still on the host`,
        message: `a new SSH login does not find ${ssh} on the host any more: the address this session uses must never change`,
      }
    : {
        kind: "probe", probe: IP_ADDRESSES_PROBE, field: "interfaces", expected: iface, compare: "includes", freshLogin: true,
        label: `fresh login: ${iface} still present`,
        message: `a new SSH login does not see ${iface}`,
      };
}

function chooseTarget(p: SecondarySourceIpsParams, iface: string, net: Fields): Target {
  const networkd = networkdFileFor(iface, net);
  const ifupdown = (net["ifupdown.ifaces"] ?? "").split(" ").includes(iface);
  if (p.stack === "networkd") return networkdTarget(iface, networkd);
  if (p.stack === "ifupdown") return ifupdownTarget(net);

  const netplan = netplanFileNaming(iface, net, networkd);
  if (netplan) {
    throw new Error(
      `netplan manages ${iface} (${netplan}); ${ROLE} does not write netplan configuration. Add the addresses under network.ethernets.${iface}.addresses ` +
        "there and run `netplan apply`, or set persist: false to add them live only",
    );
  }
  const nm = (net["networkmanager.ifaces"] ?? "").split(" ").includes(iface);
  const claims = [networkd ? "systemd-networkd" : "", ifupdown ? "ifupdown" : "", nm ? "NetworkManager" : ""].filter(Boolean);
  if (claims.length > 1) {
    throw new Error(`${claims.join(" and ")} all configure ${iface}; can't tell which one runs. Set secondary_source_ips.stack to networkd or ifupdown`);
  }
  if (nm) {
    throw new Error(
      `NetworkManager manages ${iface}; ${ROLE} does not write NetworkManager profiles. Run \`nmcli connection modify <profile> +ipv4.addresses ADDRESS/PREFIX\` ` +
        "and `nmcli connection up <profile>`, or set persist: false to add them live only",
    );
  }
  if (networkd) return networkdTarget(iface, networkd);
  if (ifupdown) return ifupdownTarget(net);
  throw new Error(
    `no network stack configures ${iface} here: no .network file matches it by Name= (in ${["/etc", "/run", "/usr/lib"].map((d) => `${d}/systemd/network`).join(", ")}), ` +
      `${IFUPDOWN_MAIN} does not name it, and netplan/NetworkManager don't either, so the addresses could not be persisted. ` +
      "Set persist: false to add them live only (they vanish at reboot), or configure the interface with systemd-networkd or ifupdown",
  );
}

function networkdFileFor(iface: string, net: Fields): string | null {
  for (const path of (net["networkd.files"] ?? "").split("\n").filter(Boolean)) {
    const names = (net[`networkd.names:${path}`] ?? "").split(" ").filter(Boolean);
    const other = (net[`networkd.other:${path}`] ?? "").split(",").filter(Boolean);
    // A file that matches only by other keys (Type=, MACAddress=, …) can't be judged from here; it is skipped.
    if (names.length === 0 && other.length > 0) continue;
    if (matchesNameList(names, iface)) return path;
  }
  return null;
}

function netplanFileNaming(iface: string, net: Fields, networkdFile: string | null): string | null {
  if (networkdFile && /^\/run\/systemd\/network\/10-netplan-/.test(networkdFile)) return networkdFile;
  const word = new RegExp(`(^|[^A-Za-z0-9_.@-])${iface.replace(/[.]/g, "\\.")}([^A-Za-z0-9_.@-]|$)`, "m");
  return (net["netplan.files"] ?? "").split("\n").filter(Boolean).find((path) => word.test(net[`netplan.text:${path}`] ?? "")) ?? null;
}

function networkdTarget(iface: string, networkFile: string | null): Target {
  if (!networkFile) {
    throw new Error(
      `stack is networkd but no .network file matches ${iface} by [Match] Name=, so networkd would never read a drop-in. ` +
        `Create one (e.g. /etc/systemd/network/10-${iface}.network with [Match] Name=${iface}) or set persist: false`,
    );
  }
  return { stack: "networkd", networkFile, path: `/etc/systemd/network/${posix.basename(networkFile)}.d/${NETWORKD_DROPIN_NAME}` };
}

function ifupdownTarget(net: Fields): Target {
  if (net["ifupdown.main"] !== "present") {
    throw new Error(`stack is ifupdown but ${IFUPDOWN_MAIN} does not exist. Install and configure ifupdown, or set stack to networkd or persist: false`);
  }
  if (net["ifupdown.sources-dropin"] !== "yes") {
    throw new Error(
      `${IFUPDOWN_MAIN} does not read ${posix.dirname(IFUPDOWN_DROPIN)}/, so ${IFUPDOWN_DROPIN} would never be loaded. ` +
        `Add the line \`source ${posix.dirname(IFUPDOWN_DROPIN)}/*\` to ${IFUPDOWN_MAIN} (Debian's default), or set persist: false`,
    );
  }
  return { stack: "ifupdown", path: IFUPDOWN_DROPIN };
}

function renderFile(ctx: PlanContext, target: Target, iface: string, wanted: Cidr[]): string {
  const addresses = wanted.map((c, i) => ({ cidr: c.text, address: c.address, ipv6: c.family === 6, n: i + 1 }));
  const data = { why: ctx.why, iface, addresses, total: wanted.length, networkFile: target.networkFile ?? "" };
  return ctx.render(target.stack === "networkd" ? "networkd.conf.hbs" : "ifupdown.hbs", data);
}

function capacityNotes(live: Map<string, Cidr[]>, iface: string, wanted: Cidr[], removed: Owned[], range: string | null): string[] {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(range ?? "");
  const ports = m ? Number(m[2]) - Number(m[1]) + 1 : null;
  const fmt = (n: number) => n.toLocaleString("en-US");
  const gone = (c: Cidr) => removed.some((r) => r.iface === iface && r.cidr.text === c.text);
  const notes: string[] = [];
  for (const family of [4, 6] as const) {
    if (!wanted.some((w) => w.family === family)) continue;
    const sources = new Set([...(live.get(iface) ?? []).filter((c) => !gone(c)), ...wanted].filter((c) => c.family === family && !isLinkLocal(c)).map((c) => c.address));
    const head = `outbound capacity per destination ip:port over IPv${family} from ${iface}: ${sources.size} source IPs`;
    notes.push(
      ports === null
        ? `${head} × the port range (${PORT_RANGE_KEY} unreadable)`
        : `${head} × ${fmt(ports)} ports = ${fmt(sources.size * ports)} connections (${PORT_RANGE_KEY} ${m![1]} ${m![2]}; only for applications that bind() to the extra IPs)`,
    );
  }
  return notes;
}

function persistNotes(p: SecondarySourceIpsParams, target: Target | null, iface: string, net: Fields, managed: Array<{ path: string }>): string[] {
  if (!p.persist) {
    const earlier = managed.map((m) => m.path);
    return [
      `not persisted (persist: false): the addresses vanish at the next reboot or ifdown of ${iface}`,
      ...(earlier.length > 0 ? [`${earlier.join(", ")} from an earlier run still add addresses at boot: delete it if they should not come back`] : []),
    ];
  }
  if (!target) return [];
  if (target.stack === "networkd") {
    return [
      `persisted for systemd-networkd: a drop-in for ${target.networkFile}, read at networkd's next reload (\`networkctl reload\`) or boot; the addresses are added live now`,
      ...(net["networkd.daemon"] === "yes" ? [] : ["systemd-networkd is not installed here: nothing reads the drop-in until it is"]),
    ];
  }
  return [
    `persisted for ifupdown: ${IFUPDOWN_DROPIN} adds them whenever ${iface} comes up (ifup, boot); the addresses are added live now`,
    ...(net["ifupdown.ifup"] === "yes" ? [] : [`ifup is not installed here: nothing reads ${IFUPDOWN_MAIN} at boot, so the addresses won't come back after a reboot until ifupdown is installed`]),
  ];
}
