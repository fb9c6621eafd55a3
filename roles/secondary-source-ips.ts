import { createHash } from "node:crypto";
import { posix } from "node:path";
import {
  canonicalIp,
  deletedAlongWith,
  IP_ADDRESSES_PROBE,
  ipAddressesProbe,
  isLinkLocal,
  liveAddresses,
  networkOf,
  parseCidr,
  promotesSecondaries,
  unusableReason,
  type Cidr,
  type LiveAddress,
} from "../src/facts/ipAddresses.js";
import {
  decodeListEntries,
  encodeListEntry,
  IFUPDOWN_DROPIN,
  IFUPDOWN_HOOK,
  IFUPDOWN_MAIN,
  isOwnFileName,
  matchesNameList,
  NETWORK_STACK_PROBE,
  networkStackProbe,
  NETWORKD_DROPIN_NAME,
  STATE_FILE,
} from "../src/facts/networkStack.js";
import { registerProbes } from "../src/facts/probes.js";
import { planManagedFile } from "../src/managedFile.js";
import { defineRole, probeKey, type Change, type Check, type Facts, type ParamProblem, type PlanContext } from "../src/role.js";
import { shJoin, shQuote } from "../src/transport/shell.js";

registerProbes(ipAddressesProbe, networkStackProbe);

export interface SecondarySourceIpsParams {
  interface: string | null;
  addresses: string[];
  persist: boolean;
  stack: "auto" | "networkd" | "ifupdown";
}

const ROLE = "secondary-source-ips";
const PORT_RANGE_KEY = "net.ipv4.ip_local_port_range";
/** run-parts skips a hook that is not executable. */
const HOOK_MODE = "755";

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

/** One of the role's own files as the network-stack probe read it. */
interface OwnFile {
  path: string;
  content: string;
}

export default defineRole<SecondarySourceIpsParams>({
  name: ROLE,
  summary: "Add source IPs to an interface so outbound connections to one upstream aren't capped at one IP's ports",
  touchesLogin: true,
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      interface: {
        type: ["string", "null"], pattern: "^[a-zA-Z0-9_.@-]{1,15}$", default: null,
        description:
          "Interface that gets the extra source addresses. null (the default) picks the interface holding the address this SSH session is connected to, " +
          "which carries the host's traffic in most setups. It must exist: the plan names the interfaces that do when it doesn't. " +
          "When it changes, the addresses added to the old interface are deleted there (the role records each address with its interface).",
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
          "so the kernel never picks them by itself; one that fails duplicate address detection (another node on the link has it) is reported and re-added by run. " +
          "The address the SSH session uses is never added, changed or removed. " +
          "Addresses this role added earlier and that leave the list are removed; [] removes them all. " +
          "The first IPv4 address of a subnet on an interface is its primary: deleting it while net.ipv4.conf.<iface>.promote_secondaries is 0 " +
          "(the kernel's and Debian's default) deletes every other address of that subnet too, the SSH address included, so such a removal is refused " +
          "until promote_secondaries is 1; the persisted configuration adds the extras after the interface's own address so they stay secondaries.",
        fix: "write each address as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64",
      },
      persist: {
        type: "boolean", default: true,
        description:
          "Also write the addresses into the configuration of the network stack that manages the interface, so a reboot or ifdown/ifup brings them back; " +
          "an address added only live is lost then, and outbound capacity silently falls back to one IP. false adds them live only " +
          `(and leaves files of an earlier persisting run alone). Either way the role records what it added, with the interface, in ${STATE_FILE}, ` +
          "so addresses that leave the list are deleted also when nothing was persisted.",
      },
      stack: {
        type: "string", enum: ["auto", "networkd", "ifupdown"], default: "auto",
        description:
          "Network stack that persists the addresses. auto decides from configuration files, not from running daemons (which may not run while provision looks): " +
          "systemd-networkd when a .network file in /etc, /run or /usr/lib/systemd/network matches the interface by [Match] Name= (first by file name, as networkd picks), " +
          "persisted as a drop-in <that file>.d/60-provision-secondary-ips.conf (networkd adds its own Address= lines first and sets promote_secondaries=1 on its links); " +
          `ifupdown when /etc/network/interfaces or interfaces.d names the interface (iface, auto or allow- stanza), persisted as the hook ${IFUPDOWN_HOOK}, ` +
          "which ifupdown runs after each of the interface's stanzas is up. Not a stanza in interfaces.d: Debian sources that directory before the interface's own stanza, " +
          "so the extra address would come first, become the subnet's primary, and take the interface's own address along when deleted. " +
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
    const files = ownFiles(net);
    // The default playbook applies this role to every host; one without addresses (and nothing
    // from an earlier run to undo) must not fail for reasons that only matter when adding some.
    if (p.addresses.length === 0 && files.length === 0) {
      return { changes: [], checks: [], notes: ["no addresses for this host: set secondary_source_ips.addresses in its host vars to add source IPs"] };
    }
    const ipFields = probeFields(facts, IP_ADDRESSES_PROBE, "read the host's addresses (`ip -j addr show`)");
    const live = liveAddresses(ipFields);
    const ssh = sshAddressOf(ctx);
    const iface = chooseInterface(p, live, ssh);
    const wanted = p.addresses.map((a) => parseCidr(a) as Cidr);
    refuseSshAddress(wanted, ssh, iface);

    const state = files.find((f) => f.path === STATE_FILE) ?? null;
    const configs = files.filter((f) => f.path !== STATE_FILE);
    const owned = ownedFrom([...(state ? [state] : []), ...(p.persist ? configs : [])], net, live);
    const removed = owned.filter((o) => !(o.iface === iface && wanted.some((w) => w.text === o.cidr.text)) && liveAddress(live, o.iface, o.cidr) !== null);
    for (const r of removed) refuseSshAddress([r.cidr], ssh, r.iface);
    refuseConflicts(wanted, live, iface, removed);
    const failedDad = wanted.filter((w) => liveAddress(live, iface, w)?.dadfailed === true);
    const deletions = secondariesFirst([...removed, ...failedDad.map((cidr) => ({ iface, cidr }))], live);
    refuseCascades(deletions, live, ipFields, ssh);

    const target = p.persist && wanted.length > 0 ? chooseTarget(p, iface, net) : null;
    // Deletions first: if one fails, nothing else changes and the files still record what to delete next time.
    const steps = [
      ...deletions.map((d) => (removed.includes(d) ? removeStep(d) : readdPrepStep(d))),
      ...stateSteps(ctx, state, iface, wanted, net),
      ...(target ? fileSteps(ctx, target, iface, wanted, net) : []),
      ...(p.persist ? configs.filter((m) => m.path !== target?.path).map((m) => staleFileStep(m.path)) : []),
      ...wanted.map((w) => addStep(w, iface, live)),
    ];
    const changes = steps.flatMap((s) => s.changes);
    const checks = steps.flatMap((s) => s.checks);
    if (changes.length > 0 || wanted.length > 0) checks.push(freshLoginCheck(live, ssh, iface));
    const notes = [
      ...capacityNotes(live, iface, wanted, removed, facts.sysctl[PORT_RANGE_KEY] ?? null),
      ...detectionNotes(live, iface, wanted),
      ...persistNotes(p, target, iface, net, configs),
    ];
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
  if (ctx.sshAddress === "") throw new Error("this host is reached with ansible_connection: local, so there is no SSH address to keep safe while addresses change; refusing to change addresses. Run this role over SSH");
  const ssh = canonicalIp(ctx.sshAddress);
  // Without the session's address we can't promise to leave it alone.
  if (ssh === null) throw new Error(`cannot tell which address the SSH session uses (got "${ctx.sshAddress}"); refusing to change addresses. Connect by IP address (ansible_host)`);
  return ssh;
}

function chooseInterface(p: SecondarySourceIpsParams, live: Map<string, LiveAddress[]>, ssh: string): string {
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
function refuseConflicts(wanted: Cidr[], live: Map<string, LiveAddress[]>, iface: string, removed: Owned[]): void {
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

function liveAddress(live: Map<string, LiveAddress[]>, iface: string, c: Cidr): LiveAddress | null {
  return (live.get(iface) ?? []).find((a) => a.text === c.text) ?? null;
}

/** Secondaries go before primaries: deleting a primary first would take them along, and their own deletion would then fail. */
function secondariesFirst(deletions: Owned[], live: Map<string, LiveAddress[]>): Owned[] {
  const isPrimary = (d: Owned) => (liveAddress(live, d.iface, d.cidr)?.secondary === false && d.cidr.family === 4 ? 1 : 0);
  return [...deletions].sort((a, b) => isPrimary(a) - isPrimary(b));
}

/**
 * Refuses to delete a primary IPv4 address while other addresses of its subnet stay on the
 * interface and promote_secondaries is off: the kernel would delete them too, the SSH address
 * among them (a lockout that no later step can repair). Walks the deletions in order, as the kernel would.
 */
function refuseCascades(deletions: Owned[], live: Map<string, LiveAddress[]>, ipFields: Fields, ssh: string): void {
  const remaining = new Map([...live].map(([name, addrs]) => [name, addrs.map((a) => ({ ...a }))]));
  for (const d of deletions) {
    const onInterface = remaining.get(d.iface) ?? [];
    const doomed = onInterface.find((a) => a.text === d.cidr.text);
    if (!doomed) continue;
    const along = deletedAlongWith(doomed, onInterface);
    const promote = promotesSecondaries(ipFields, d.iface);
    if (along.length > 0 && promote !== true) throw new Error(cascadeMessage(d, along, promote, ssh));
    if (along.length > 0) along[0]!.secondary = false;
    remaining.set(d.iface, onInterface.filter((a) => a !== doomed));
  }
}

function cascadeMessage(d: Owned, along: LiveAddress[], promote: boolean | null, ssh: string): string {
  const key = `net.ipv4.conf.${d.iface}.promote_secondaries`;
  const sshHit = along.some((a) => a.address === ssh);
  return (
    `deleting ${d.cidr.text} from ${d.iface} would also delete ${along.map((a) => a.text).join(", ")}` +
    (sshHit ? ` (${ssh} is the address this SSH session uses: the host would drop off the network)` : "") +
    `: ${d.cidr.text} is the primary address of ${networkOf(d.cidr)} on ${d.iface} (\`ip addr\` shows no "secondary" flag on it) and ` +
    (promote === null ? `${key} could not be read` : `${key} is 0`) +
    ", so the kernel deletes the subnet's secondary addresses with it. " +
    `Set ${key}=1 first (sysctl -w ${key}=1, and a file in /etc/sysctl.d to keep it), then run again; ` +
    `or delete ${d.cidr.text} from a console, not over SSH. Until then keep it in secondary_source_ips.addresses`
  );
}

/** Part of a plan: the changes of one thing and the checks that read it back. */
interface Step {
  changes: Change[];
  checks: Check[];
}

function fileSteps(ctx: PlanContext, target: Target, iface: string, wanted: Cidr[], net: Fields): Step[] {
  const content = renderFile(ctx, target, iface, wanted, net);
  const mode = target.stack === "ifupdown" ? HOOK_MODE : undefined;
  return [ownFileStep(target.path, content, net, mode)];
}

/** A whole file of the role's, checked by sha256 (and mode, for a hook run-parts must be able to execute). */
function ownFileStep(path: string, content: string, net: Fields, mode?: string): Step {
  const file = planManagedFile({ path, content, role: ROLE, ...(mode ? { mode: `0${mode}` } : {}) }, fileFacts(net, path));
  const modeNow = net[`managed.mode:${path}`];
  // A file change sets the mode itself; an unchanged file may still have lost it.
  const chmod: Change[] =
    mode && file.changes.length === 0 && modeNow !== mode
      ? [{ kind: "command", argv: ["chmod", `0${mode}`, "--", path], description: `make ${path} mode ${mode} (it is ${modeNow ?? "unknown"}): run-parts skips a hook it can't execute` }]
      : [];
  const checks: Check[] = [fileCheck(path, content)];
  if (mode) {
    checks.push({
      kind: "probe", probe: NETWORK_STACK_PROBE, field: `managed.mode:${path}`, expected: mode, compare: "equal", label: `${path} (mode)`,
      message: `${path} is not mode ${mode}: run-parts skips a hook it can't execute, so the addresses would not come back at ifup or boot`,
    });
  }
  return { changes: [...file.changes, ...chmod], checks };
}

/** The record of what was added live: rewritten with the wanted addresses, removed once there are none. */
function stateSteps(ctx: PlanContext, state: OwnFile | null, iface: string, wanted: Cidr[], net: Fields): Step[] {
  if (wanted.length === 0) return state ? [staleFileStep(STATE_FILE)] : [];
  const addresses = wanted.map((c, i) => ({ cidr: c.text, n: i + 1 }));
  return [ownFileStep(STATE_FILE, ctx.render("state.hbs", { iface, addresses, total: wanted.length }), net)];
}

function staleFileStep(path: string): Step {
  // The probe only reports the role's own names; this guards the one command that deletes files.
  if (!isOwnFileName(path)) throw new Error(`refusing to delete ${JSON.stringify(path)}: it is not one of ${ROLE}'s file names`);
  const why = path === STATE_FILE ? "no address is left to record" : "an earlier run wrote it, and no address is persisted there any more";
  return {
    changes: [{ kind: "command", argv: ["rm", "-f", "--", path], description: `remove ${path}: ${why}` }],
    checks: [
      {
        kind: "probe", probe: NETWORK_STACK_PROBE, field: "managed.files", expected: encodeListEntry(path), compare: "excludes", label: `${path} removed`,
        message: path === STATE_FILE ? `${path} is back: a later run would delete the addresses it lists` : `${path} is back: it would re-add old addresses at boot`,
      },
    ],
  };
}

function removeStep(r: Owned): Step {
  return {
    changes: [{ kind: "command", argv: ["ip", "addr", "del", r.cidr.text, "dev", r.iface], description: `remove ${r.cidr.text} from ${r.iface}: no longer in addresses` }],
    checks: [addressCheck(r.iface, r.cidr, "excludes", null)],
  };
}

/** Deleting an address that failed duplicate address detection, so adding it again repeats the detection. */
function readdPrepStep(r: Owned): Step {
  return {
    changes: [{ kind: "command", argv: ["ip", "addr", "del", r.cidr.text, "dev", r.iface], description: `delete ${r.cidr.text} from ${r.iface} to add it again: duplicate address detection failed` }],
    checks: [],
  };
}

/** IPv6 extras are deprecated at once so the kernel's source selection (RFC 6724) never picks them by itself. */
function addStep(c: Cidr, iface: string, live: Map<string, LiveAddress[]>): Step {
  const now = liveAddress(live, iface, c);
  return {
    changes: now && !now.dadfailed ? [] : [{ kind: "command", argv: addArgv(c, iface), undo: ["ip", "addr", "del", c.text, "dev", iface], description: `add ${c.text} to ${iface} live` }],
    checks: [addressCheck(iface, c, "includes", now)],
  };
}

function addArgv(c: Cidr, iface: string): string[] {
  return ["ip", "addr", "add", c.text, "dev", iface, ...(c.family === 6 ? ["preferred_lft", "0"] : [])];
}

/** The role's own files, by exact name; anything else the probe reported is ignored, never deleted. */
function ownFiles(net: Fields): OwnFile[] {
  return decodeListEntries(net["managed.files"] ?? "")
    .filter(isOwnFileName)
    .map((path) => ({ path, content: net[`managed.content:${path}`] ?? "" }));
}

function ownedFrom(files: OwnFile[], net: Fields, live: Map<string, LiveAddress[]>): Owned[] {
  const all = files.flatMap((f) => ownedAddresses(f.path, f.content, net, live));
  return all.filter((o, i) => all.findIndex((x) => x.iface === o.iface && x.cidr.text === o.cidr.text) === i);
}

/**
 * Addresses an earlier run added, with their interface: the state file's `ADDRESS/PREFIX IFACE` lines,
 * the ifupdown hook's `add A dev I` lines, an older version's `up ip addr replace A dev I` stanza lines,
 * and a networkd drop-in's `Address=` lines, credited to every interface its .network file matches
 * (networkd applies the drop-in there, whatever interface it was written for).
 */
export function ownedAddresses(path: string, content: string, net: Fields, live: Map<string, LiveAddress[]>): Owned[] {
  const pattern = path === STATE_FILE ? /^([0-9A-Fa-f:.]+\/\d+) (\S+)$/ : path === IFUPDOWN_HOOK ? /\badd (\S+) dev ([^\s;]+)/ : path === IFUPDOWN_DROPIN ? /^\s*up ip addr replace (\S+) dev (\S+)/ : /^Address=(\S+)\s*$/;
  const networkdIfaces = path === STATE_FILE || path === IFUPDOWN_HOOK || path === IFUPDOWN_DROPIN ? [] : interfacesOfDropin(path, net, live);
  const out: Owned[] = [];
  for (const line of content.split("\n")) {
    if (line.trimStart().startsWith("#")) continue;
    const m = pattern.exec(line);
    if (!m) continue;
    const cidr = parseCidr(m[1]!);
    if ("error" in cidr) continue;
    for (const iface of m[2] !== undefined ? [m[2]] : networkdIfaces) out.push({ iface, cidr });
  }
  return out;
}

/** The live interfaces the .network file a drop-in extends matches by Name= (none when that file is gone). */
function interfacesOfDropin(path: string, net: Fields, live: Map<string, LiveAddress[]>): string[] {
  const networkName = posix.basename(posix.dirname(path)).replace(/\.d$/, "");
  const networkFile = (net["networkd.files"] ?? "").split("\n").find((f) => f !== "" && posix.basename(f) === networkName);
  if (!networkFile) return [];
  const names = (net[`networkd.names:${networkFile}`] ?? "").split(" ").filter(Boolean);
  return [...live.keys()].filter((iface) => matchesNameList(names, iface));
}

/** The facts planManagedFile needs, taken from the probe (a drop-in's path is only known after gathering). */
function fileFacts(net: Fields, path: string): Facts {
  const exists = decodeListEntries(net["managed.files"] ?? "").includes(path);
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
  const what = path === STATE_FILE ? "a later run may delete the wrong addresses, or miss some" : "the addresses may not come back at boot";
  return {
    kind: "probe", probe: NETWORK_STACK_PROBE, field: `managed.sha256:${path}`, expected: sha256(content), compare: "equal",
    label: `${path} (sha256)`,
    message: `${path} differs from what ${ROLE} renders (edited by hand, or removed): ${what}; \`provision plan\` shows the diff`,
  };
}

/** Includes reads `usable:` (dadfailed left out, tentative kept: it becomes usable within seconds); excludes reads every address. */
function addressCheck(iface: string, c: Cidr, compare: "includes" | "excludes", now: LiveAddress | null): Check {
  if (compare === "excludes") {
    return {
      kind: "probe", probe: IP_ADDRESSES_PROBE, field: `addrs:${iface}`, expected: c.text, compare, label: `${c.text} gone from ${iface}`,
      message: `${c.text} is still on ${iface} though it left addresses`,
    };
  }
  return {
    kind: "probe", probe: IP_ADDRESSES_PROBE, field: `usable:${iface}`, expected: c.text, compare, label: `${c.text} on ${iface}`,
    message: now?.dadfailed
      ? `${c.text} is on ${iface} but failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it. ` +
        "Pick another address, or stop the other node using it, then `provision run` (it deletes and re-adds it to repeat the detection)"
      : `${c.text} is not on ${iface}: removed by hand, by ifdown, or by the network stack reconfiguring the link; outbound capacity is down one source IP until \`provision run\` adds it back`,
  };
}

/** Read through a brand-new login: proves the host still takes SSH connections after its addresses changed. */
function freshLoginCheck(live: Map<string, LiveAddress[]>, ssh: string, iface: string): Check {
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
  return { stack: "ifupdown", path: IFUPDOWN_HOOK };
}

function renderFile(ctx: PlanContext, target: Target, iface: string, wanted: Cidr[], net: Fields): string {
  if (target.stack === "networkd") {
    const addresses = wanted.map((c, i) => ({ cidr: c.text, address: c.address, ipv6: c.family === 6, n: i + 1 }));
    return ctx.render("networkd.conf.hbs", { why: ctx.why, iface, addresses, total: wanted.length, networkFile: target.networkFile ?? "" });
  }
  const families = (net[`ifupdown.families:${iface}`] ?? "").split(" ");
  const addresses = wanted.map((c, i) => {
    const line = hookLine(c, iface, families);
    return { cidr: c.text, command: line.command, note: `Extra source address ${i + 1} of ${wanted.length} (${c.address}): ${line.when}.` };
  });
  return ctx.render("ifupdown-hook.sh.hbs", { why: ctx.why, iface, ifaceWord: shQuote(iface), addresses, total: wanted.length });
}

/**
 * When the hook adds an address: after the interface's own stanza of that family is up (so an
 * IPv4 extra joins the interface's address as a secondary), or at once when there is no such stanza.
 */
function hookLine(c: Cidr, iface: string, families: string[]): { when: string; command: string } {
  const family = c.family === 4 ? "inet" : "inet6";
  const add = `add ${shJoin(addArgv(c, iface).slice(3))}`;
  const deprecated = c.family === 6 ? "deprecated at once (preferred_lft 0) so IPv6 source selection never picks it by itself; " : "";
  if (!families.includes(family)) {
    return { when: `${deprecated}added when ${iface} comes up (it has no \`${family}\` stanza to wait for)`, command: add };
  }
  const after = c.family === 4 ? `, so it joins ${iface}'s own address as a secondary` : "";
  return { when: `${deprecated}added once ${iface}'s \`${family}\` stanza is up${after}`, command: `if has_family ${family}; then ${add}; fi` };
}

function capacityNotes(live: Map<string, LiveAddress[]>, iface: string, wanted: Cidr[], removed: Owned[], range: string | null): string[] {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(range ?? "");
  const ports = m ? Number(m[2]) - Number(m[1]) + 1 : null;
  const fmt = (n: number) => n.toLocaleString("en-US");
  const gone = (c: LiveAddress) => c.dadfailed || removed.some((r) => r.iface === iface && r.cidr.text === c.text);
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

/** IPv6 duplicate address detection: a failed address is useless, a tentative one not usable yet. */
function detectionNotes(live: Map<string, LiveAddress[]>, iface: string, wanted: Cidr[]): string[] {
  return wanted.flatMap((w) => {
    const now = liveAddress(live, iface, w);
    if (now?.dadfailed) {
      return [`${w.text} on ${iface} failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it; run deletes and re-adds it to repeat the detection`];
    }
    if (now?.tentative) return [`${w.text} on ${iface} is tentative (duplicate address detection running): bind() to it fails with EADDRNOTAVAIL until it ends, within a few seconds`];
    return [];
  });
}

function persistNotes(p: SecondarySourceIpsParams, target: Target | null, iface: string, net: Fields, configs: OwnFile[]): string[] {
  if (!p.persist) {
    const earlier = configs.map((m) => m.path);
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
    `persisted for ifupdown: ${IFUPDOWN_HOOK} adds them each time ${iface} comes up (ifup, boot), after ${iface}'s own stanzas; the addresses are added live now`,
    ...(net["ifupdown.ifup"] === "yes" ? [] : [`ifup is not installed here: nothing reads ${IFUPDOWN_MAIN} at boot, so the addresses won't come back after a reboot until ifupdown is installed`]),
  ];
}
