import { createHash } from "node:crypto";
import { posix } from "node:path";
import {
  canonicalIp,
  deletedAlongWith,
  ipAddressesProbe,
  isLinkLocal,
  liveAddresses,
  networkOf,
  parseCidr,
  promotesSecondaries,
  unusableReason,
  type Cidr,
  type IpAddresses,
  type LiveAddress,
  type LiveAddresses,
} from "../src/facts/ipAddresses.js";
import {
  IFUPDOWN_DROPIN,
  IFUPDOWN_HOOK,
  IFUPDOWN_MAIN,
  isOwnFileName,
  matchesNameList,
  networkStackProbe,
  NETWORKD_DROPIN_NAME,
  STATE_FILE,
  type NetworkFile,
  type NetworkStack,
} from "../src/facts/networkStack.js";
import type { Probe } from "../src/facts/probe.js";
import { managedFileChanges, planStaleFile } from "../src/managedFile.js";
import { thousands } from "../src/output/words.js";
import { parseLocalPortRange } from "../src/sysctl/portList.js";
import {
  defineRole,
  probeCheck,
  probeRequest,
  probeResult,
  refused,
  type Change,
  type Check,
  type Facts,
  type ParamProblem,
  type PlanContext,
} from "../src/role.js";
import { shJoin, shQuote } from "../src/transport/shell.js";

export interface SecondarySourceIpsParams {
  interface: string | null;
  addresses: string[];
  persist: boolean;
  stack: "auto" | "networkd" | "ifupdown";
}

const ROLE = "secondary-source-ips";
const PORT_RANGE_KEY = "net.ipv4.ip_local_port_range";

export default defineRole<SecondarySourceIpsParams>({
  name: ROLE,
  summary: "Add source IPs to an interface so outbound connections to one upstream aren't capped at one IP's ports",
  touchesLogin: true,
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      interface: {
        type: ["string", "null"],
        pattern: "^[a-zA-Z0-9_.@-]{1,15}$",
        default: null,
        description:
          "Interface that gets the extra source addresses. null (the default) picks the interface holding the address this SSH session is connected to, " +
          "which carries the host's traffic in most setups. It must exist: the plan names the interfaces that do when it doesn't. " +
          "When it changes, the addresses added to the old interface are deleted there (the role records each address with its interface).",
        fix: "use a name that `ip -br link` shows, e.g. eth0 or ens5 (letters, digits, _ . @ -; at most 15 characters), or null",
      },
      addresses: {
        type: "array",
        default: [],
        maxItems: 256,
        items: {
          type: "string",
          pattern: "^[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}$",
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
        type: "boolean",
        default: true,
        description:
          "Also write the addresses into the configuration of the network stack that manages the interface, so a reboot or ifdown/ifup brings them back; " +
          "an address added only live is lost then, and outbound capacity silently falls back to one IP. false adds them live only " +
          `(and leaves files of an earlier persisting run alone). Either way the role records what it added, with the interface, in ${STATE_FILE}, ` +
          "so addresses that leave the list are deleted also when nothing was persisted.",
      },
      stack: {
        type: "string",
        enum: ["auto", "networkd", "ifupdown"],
        default: "auto",
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
    const error = (param: string, problem: string, fix: string) =>
      problems.push({ param, severity: "error", problem, fix });
    if (p.interface === "." || p.interface === "..")
      error("interface", `"${p.interface}" is not an interface name`, "use a name that `ip -br link` shows, e.g. eth0");
    const seen = new Map<string, string>();
    for (const item of p.addresses) {
      const bad = (problem: string, fix: string) => error("addresses", `"${item}" ${problem}`, fix);
      const c = parseCidr(item);
      if ("error" in c) {
        bad(c.error, "write it as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64");
        continue;
      }
      const reason = unusableReason(c);
      if (reason) {
        bad(reason, "use a unicast address the host can send from, in its network's prefix");
        continue;
      }
      const earlier = seen.get(c.address);
      if (earlier !== undefined)
        bad(`repeats ${c.address} (already listed as "${earlier}")`, "list each address once, with one prefix");
      seen.set(c.address, item);
    }
    return problems;
  },

  facts: () => [
    probeRequest(ipAddressesProbe),
    probeRequest(networkStackProbe),
    { kind: "sysctl", key: PORT_RANGE_KEY },
  ],

  plan(p, facts, ctx) {
    const net = answer(facts, networkStackProbe, "detect the host's network stack");
    if (net instanceof Refusal) return refused([net.text]);
    const files = ownFiles(net);
    // The default playbook applies this role to every host: one with nothing to add or undo must not fail.
    if (p.addresses.length === 0 && files.length === 0) {
      return {
        changes: [],
        checks: [],
        notes: ["no addresses for this host: set secondary_source_ips.addresses in its host vars to add source IPs"],
        refusals: [],
      };
    }
    const ip = answer(facts, ipAddressesProbe, "read the host's addresses (`ip -j addr show`)");
    const ssh = sshAddressOf(ctx);
    if (ip instanceof Refusal || ssh instanceof Refusal) return refused(reasons(ip, ssh));
    const live = liveAddresses(ip);
    const iface = chooseInterface(p, live, ssh);
    if (iface instanceof Refusal) return refused([iface.text]);
    const wanted = p.addresses.map((a) => parseCidr(a) as Cidr);

    const state = files.find((f) => f.path === STATE_FILE) ?? null;
    const configs = files.filter((f) => f.path !== STATE_FILE);
    const owned = ownedFrom([...(state ? [state] : []), ...(p.persist ? configs : [])], net.networkd.files, live);
    const removed = owned.filter(
      (o) =>
        !(o.iface === iface && wanted.some((w) => w.text === o.cidr.text)) &&
        liveAddress(live, o.iface, o.cidr) !== null,
    );
    const failedDad = wanted.filter((w) => liveAddress(live, iface, w)?.dadfailed === true);
    const deletions = secondariesFirst([...removed, ...failedDad.map((cidr) => ({ iface, cidr }))], live);
    const target = p.persist && wanted.length > 0 ? chooseTarget(p, iface, net) : null;
    // The SSH address is refused once; no other refusal may advise deleting it.
    const notSsh = (c: Cidr) => c.address !== ssh;
    const refusals = [
      ...sshAddressRefusals([...wanted.map((cidr) => ({ iface, cidr })), ...removed], ssh),
      ...conflictRefusals(wanted.filter(notSsh), live, iface, removed),
      ...cascadeRefusals(
        deletions.filter((d) => notSsh(d.cidr)),
        live,
        ip,
        ssh,
      ),
      ...reasons(target),
    ];
    if (refusals.length > 0 || target instanceof Refusal) return refused(refusals);

    // Deletions first: if one fails, nothing else changes and the files still record what to delete.
    const steps = [
      ...deletions.map((d) => deleteStep(d, removed.includes(d))),
      ...stateSteps(ctx, state, iface, wanted, net),
      ...(target ? [fileStep(target.path, renderFile(ctx, target, iface, wanted, net), net, MODE[target.stack])] : []),
      ...(p.persist ? configs.filter((m) => m.path !== target?.path).map(staleFileStep) : []),
      ...wanted.map((w) => addStep(w, iface, live)),
    ];
    const changes = steps.flatMap((s) => s.changes);
    const checks = steps.flatMap((s) => s.checks);
    if (changes.length > 0 || wanted.length > 0) checks.push(freshLoginCheck(live, ssh, iface));
    const notes = [
      ...capacityNotes(live, iface, wanted, removed, facts.sysctl[PORT_RANGE_KEY] ?? null),
      ...detectionNotes(live, iface, wanted),
      ...persistNotes(p.persist, target, iface, net, configs),
    ];
    return { changes, checks, notes, refusals: [] };
  },
});

/** Why the role can't go on: becomes one of its plan's refusals. */
class Refusal {
  constructor(readonly text: string) {}
}

function reasons(...results: unknown[]): string[] {
  return results.flatMap((r) => (r instanceof Refusal ? [r.text] : []));
}

/** networkFile: the .network file a networkd drop-in extends. */
interface Target {
  stack: "networkd" | "ifupdown";
  path: string;
  networkFile?: string;
}

/** run-parts skips an ifupdown hook that is not executable. */
const MODE: Record<Target["stack"], string | undefined> = { networkd: undefined, ifupdown: "755" };

/** An address an earlier run added (read from the role's own files). */
interface Owned {
  iface: string;
  cidr: Cidr;
}

interface OwnFile {
  path: string;
  content: string;
}

/** The changes of one thing and the checks that read it back. */
interface Step {
  changes: Change[];
  checks: Check[];
}

function answer<T>(facts: Facts, probe: Probe<T>, what: string): T | Refusal {
  const result = probeResult(facts, probe);
  if (!result) return new Refusal(`could not ${what}: no answer from the ${probe.name} probe`);
  return result.ok ? result.value : new Refusal(`could not ${what}: ${result.error}`);
}

function sshAddressOf(ctx: PlanContext): string | Refusal {
  if (ctx.sshAddress === "") {
    return new Refusal(
      "this host is reached with ansible_connection: local, so there is no SSH address to keep safe while addresses change; refusing to change addresses. Run this role over SSH",
    );
  }
  // Without the session's address we can't promise to leave it alone.
  return (
    canonicalIp(ctx.sshAddress) ??
    new Refusal(
      `cannot tell which address the SSH session uses (got "${ctx.sshAddress}"); refusing to change addresses. Connect by IP address (ansible_host)`,
    )
  );
}

function chooseInterface(p: SecondarySourceIpsParams, live: LiveAddresses, ssh: string): string | Refusal {
  const existing = [...live.keys()].join(", ");
  if (p.interface !== null) {
    return live.has(p.interface)
      ? p.interface
      : new Refusal(
          `interface "${p.interface}" does not exist on this host (it has: ${existing}). Set secondary_source_ips.interface to one of them`,
        );
  }
  const holder = [...live].find(([, addrs]) => addrs.some((a) => a.address === ssh));
  return holder
    ? holder[0]
    : new Refusal(
        `the SSH session's address ${ssh} is on none of this host's interfaces (${existing}): NAT or a jump host is in between. ` +
          "Set secondary_source_ips.interface to the interface that should get the addresses",
      );
}

function sshAddressRefusals(touched: Owned[], ssh: string): string[] {
  return touched
    .filter((o) => o.cidr.address === ssh)
    .map(
      ({ iface, cidr }) =>
        `${cidr.text} on ${iface} is the address this SSH session uses (${ssh}); secondary-source-ips never adds, changes or removes it. ` +
        "Remove it from secondary_source_ips.addresses (the primary address already counts as a source IP)",
    );
}

/** An address can't sit on two interfaces, or on one with two prefixes, without surprising routing. */
function conflictRefusals(wanted: Cidr[], live: LiveAddresses, iface: string, removed: Owned[]): string[] {
  return wanted.flatMap((w) =>
    [...live].flatMap(([name, addrs]) => {
      const clash = addrs.find(
        (a) =>
          a.address === w.address && !(name === iface && a.prefix === w.prefix) && !includesOwned(removed, name, a),
      );
      if (!clash) return [];
      return [
        name === iface
          ? `${w.address} is already on ${iface} as ${clash.text}, not ${w.text}. Remove it by hand (ip addr del ${clash.text} dev ${iface}) or list it as ${clash.text}`
          : `${w.address} is already on ${name} (${clash.text}); an address belongs to one interface. Remove it there (ip addr del ${clash.text} dev ${name}) or drop it from addresses`,
      ];
    }),
  );
}

function includesOwned(list: Owned[], iface: string, c: Cidr): boolean {
  return list.some((o) => o.iface === iface && o.cidr.text === c.text);
}

function liveAddress(live: LiveAddresses, iface: string, c: Cidr): LiveAddress | null {
  return (live.get(iface) ?? []).find((a) => a.text === c.text) ?? null;
}

/** Deleting a primary first would take its secondaries along, and their own deletion would then fail. */
function secondariesFirst(deletions: Owned[], live: LiveAddresses): Owned[] {
  const isPrimary = (d: Owned) =>
    liveAddress(live, d.iface, d.cidr)?.secondary === false && d.cidr.family === 4 ? 1 : 0;
  return [...deletions].sort((a, b) => isPrimary(a) - isPrimary(b));
}

/**
 * With promote_secondaries off, deleting a primary IPv4 address deletes its subnet's other
 * addresses too, the SSH address among them: a lockout no later step repairs. Walks the deletions
 * in order, as the kernel would, leaving refused ones out.
 */
function cascadeRefusals(deletions: Owned[], live: LiveAddresses, ip: IpAddresses, ssh: string): string[] {
  const remaining = new Map([...live].map(([name, addrs]) => [name, addrs.map((a) => ({ ...a }))]));
  const refusals: string[] = [];
  for (const d of deletions) {
    const onInterface = remaining.get(d.iface) ?? [];
    const doomed = onInterface.find((a) => a.text === d.cidr.text);
    if (!doomed) continue;
    const along = deletedAlongWith(doomed, onInterface);
    const promote = promotesSecondaries(ip, d.iface);
    if (along.length > 0 && promote !== true) {
      refusals.push(cascadeMessage(d, along, promote, ssh));
      continue;
    }
    if (along.length > 0) along[0]!.secondary = false;
    remaining.set(
      d.iface,
      onInterface.filter((a) => a !== doomed),
    );
  }
  return refusals;
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

/** Checked by sha256, and by mode for a hook run-parts must execute. */
function fileStep(path: string, content: string, net: NetworkStack, mode?: string): Step {
  const now = net.managed.files[path];
  const changes = managedFileChanges(
    { path, content, role: ROLE, ...(mode ? { mode: `0${mode}` } : {}) },
    now?.content ?? null,
    now?.sha256 ?? "absent",
  );
  // A file change sets the mode itself; an unchanged file may still have lost it.
  if (mode && changes.length === 0 && now?.mode !== mode) {
    changes.push({
      kind: "command",
      argv: ["chmod", `0${mode}`, "--", path],
      description: `make ${path} mode ${mode} (it is ${now?.mode ?? "unknown"}): run-parts skips a hook it can't execute`,
    });
  }
  const fileCheck = (key: "sha256" | "mode", expected: string, message: string) =>
    probeCheck(networkStackProbe, {
      field: ["managed", "files", path, key],
      expected,
      compare: "equal",
      label: `${path} (${key})`,
      message,
    });
  const lost =
    path === STATE_FILE
      ? "a later run may delete the wrong addresses, or miss some"
      : "the addresses may not come back at boot";
  const checks = [
    fileCheck(
      "sha256",
      createHash("sha256").update(content, "utf8").digest("hex"),
      `${path} differs from what ${ROLE} renders (edited by hand, or removed): ${lost}; \`provision plan\` shows the diff`,
    ),
  ];
  if (mode) {
    checks.push(
      fileCheck(
        "mode",
        mode,
        `${path} is not mode ${mode}: run-parts skips a hook it can't execute, so the addresses would not come back at ifup or boot`,
      ),
    );
  }
  return { changes, checks };
}

/** Removed once no address is wanted. */
function stateSteps(ctx: PlanContext, state: OwnFile | null, iface: string, wanted: Cidr[], net: NetworkStack): Step[] {
  if (wanted.length === 0) return state ? [staleFileStep(state)] : [];
  const addresses = wanted.map((c, i) => ({ cidr: c.text, n: i + 1 }));
  return [fileStep(STATE_FILE, ctx.render("state.hbs", { iface, addresses, total: wanted.length }), net)];
}

/** Only ever one of the role's own files (see ownFiles). */
function staleFileStep(f: OwnFile): Step {
  const isState = f.path === STATE_FILE;
  return planStaleFile({
    path: f.path,
    why: isState
      ? "no address is left to record"
      : "an earlier run wrote it, and no address is persisted there any more",
    message: `${f.path} is back: ${isState ? "a later run would delete the addresses it lists" : "it would re-add old addresses at boot"}`,
  });
}

/** Not leftTheList: it failed duplicate address detection, which adding it again repeats. */
function deleteStep({ iface, cidr }: Owned, leftTheList: boolean): Step {
  return {
    changes: [
      {
        kind: "command",
        argv: deleteArgv(cidr, iface),
        description: leftTheList
          ? `remove ${cidr.text} from ${iface}: no longer in addresses`
          : `delete ${cidr.text} from ${iface} to add it again: duplicate address detection failed`,
      },
    ],
    checks: leftTheList ? [addressCheck(iface, cidr, "excludes", null)] : [],
  };
}

function addStep(c: Cidr, iface: string, live: LiveAddresses): Step {
  const now = liveAddress(live, iface, c);
  const add: Change = {
    kind: "command",
    argv: addArgv(c, iface),
    undo: deleteArgv(c, iface),
    description: `add ${c.text} to ${iface} live`,
  };
  return { changes: now && !now.dadfailed ? [] : [add], checks: [addressCheck(iface, c, "includes", now)] };
}

/** IPv6 extras are deprecated at once so source selection (RFC 6724) never picks them by itself. */
function addArgv(c: Cidr, iface: string): string[] {
  return ["ip", "addr", "add", c.text, "dev", iface, ...(c.family === 6 ? ["preferred_lft", "0"] : [])];
}

function deleteArgv(c: Cidr, iface: string): string[] {
  return ["ip", "addr", "del", c.text, "dev", iface];
}

/** By exact name: anything else the probe reported is ignored, never deleted. */
function ownFiles(net: NetworkStack): OwnFile[] {
  return net.managed.paths
    .filter(isOwnFileName)
    .map((path) => ({ path, content: net.managed.files[path]?.content ?? "" }));
}

function ownedFrom(files: OwnFile[], networkFiles: NetworkFile[], live: LiveAddresses): Owned[] {
  const all = files.flatMap((f) => ownedAddresses(f.path, f.content, networkFiles, live));
  return all.filter((o, i) => !includesOwned(all.slice(0, i), o.iface, o.cidr));
}

/** How each of the role's files names an address and its interface; a networkd drop-in has only `Address=` lines. */
const OWNED_LINE = new Map<string, RegExp>([
  [STATE_FILE, /^([0-9A-Fa-f:.]+\/\d+) (\S+)$/],
  [IFUPDOWN_HOOK, /\badd (\S+) dev ([^\s;]+)/],
  [IFUPDOWN_DROPIN, /^\s*up ip addr replace (\S+) dev (\S+)/],
]);
const NETWORKD_ADDRESS_LINE = /^Address=(\S+)\s*$/;

/** A networkd drop-in's addresses go to every interface its .network file matches: networkd applies it there. */
export function ownedAddresses(
  path: string,
  content: string,
  networkFiles: NetworkFile[],
  live: LiveAddresses,
): Owned[] {
  const pattern = OWNED_LINE.get(path) ?? NETWORKD_ADDRESS_LINE;
  const networkdIfaces = OWNED_LINE.has(path) ? [] : interfacesOfDropin(path, networkFiles, live);
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

/** None when the .network file is gone. */
function interfacesOfDropin(path: string, networkFiles: NetworkFile[], live: LiveAddresses): string[] {
  const networkName = posix.basename(posix.dirname(path)).replace(/\.d$/, "");
  const networkFile = networkFiles.find((f) => posix.basename(f.path) === networkName);
  return networkFile ? [...live.keys()].filter((iface) => matchesNameList(networkFile.names, iface)) : [];
}

/** `usable` leaves dadfailed out and keeps tentative: it becomes usable within seconds. */
function addressCheck(iface: string, c: Cidr, compare: "includes" | "excludes", now: LiveAddress | null): Check {
  const present = compare === "includes";
  return probeCheck(ipAddressesProbe, {
    field: ["interfaces", iface, present ? "usable" : "cidrs"],
    expected: c.text,
    compare,
    label: present ? `${c.text} on ${iface}` : `${c.text} gone from ${iface}`,
    message: !present
      ? `${c.text} is still on ${iface} though it left addresses`
      : now?.dadfailed
        ? `${c.text} is on ${iface} but failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it. ` +
          "Pick another address, or stop the other node using it, then `provision run` (it deletes and re-adds it to repeat the detection)"
        : `${c.text} is not on ${iface}: removed by hand, by ifdown, or by the network stack reconfiguring the link; outbound capacity is down one source IP until \`provision run\` adds it back`,
  });
}

/** Proves the host still takes SSH logins after its addresses changed. */
function freshLoginCheck(live: LiveAddresses, ssh: string, iface: string): Check {
  const sshIsLocal = [...live.values()].some((addrs) => addrs.some((a) => a.address === ssh));
  return probeCheck(ipAddressesProbe, {
    field: [sshIsLocal ? "locals" : "names"],
    expected: sshIsLocal ? ssh : iface,
    compare: "includes",
    freshLogin: true,
    label: sshIsLocal ? `fresh login: SSH address ${ssh} still on the host` : `fresh login: ${iface} still present`,
    message: sshIsLocal
      ? `a new SSH login does not find ${ssh} on the host any more: the address this session uses must never change`
      : `a new SSH login does not see ${iface}`,
  });
}

function chooseTarget(p: SecondarySourceIpsParams, iface: string, net: NetworkStack): Target | Refusal {
  const networkd = networkdFileFor(iface, net.networkd.files);
  const ifupdown = net.ifupdown.ifaces.includes(iface);
  if (p.stack === "networkd") return networkdTarget(iface, networkd);
  if (p.stack === "ifupdown") return ifupdownTarget(net);

  const netplan = netplanFileNaming(iface, net, networkd);
  if (netplan) {
    return new Refusal(
      `netplan manages ${iface} (${netplan}); ${ROLE} does not write netplan configuration. Add the addresses under network.ethernets.${iface}.addresses ` +
        "there and run `netplan apply`, or set persist: false to add them live only",
    );
  }
  const nm = net.networkManager.ifaces.includes(iface);
  const claims = Object.entries({ "systemd-networkd": networkd !== null, ifupdown, NetworkManager: nm }).flatMap(
    ([stack, claimed]) => (claimed ? [stack] : []),
  );
  if (claims.length > 1)
    return new Refusal(
      `${claims.join(" and ")} all configure ${iface}; can't tell which one runs. Set secondary_source_ips.stack to networkd or ifupdown`,
    );
  if (nm) {
    return new Refusal(
      `NetworkManager manages ${iface}; ${ROLE} does not write NetworkManager profiles. Run \`nmcli connection modify <profile> +ipv4.addresses ADDRESS/PREFIX\` ` +
        "and `nmcli connection up <profile>`, or set persist: false to add them live only",
    );
  }
  if (networkd) return networkdTarget(iface, networkd);
  if (ifupdown) return ifupdownTarget(net);
  return new Refusal(
    `no network stack configures ${iface} here: no .network file matches it by Name= (in /etc/systemd/network, /run/systemd/network, /usr/lib/systemd/network), ` +
      `${IFUPDOWN_MAIN} does not name it, and netplan/NetworkManager don't either, so the addresses could not be persisted. ` +
      "Set persist: false to add them live only (they vanish at reboot), or configure the interface with systemd-networkd or ifupdown",
  );
}

/** A file matching only by other keys (Type=, MACAddress=, …) can't be judged from here: skipped. */
function networkdFileFor(iface: string, files: NetworkFile[]): string | null {
  return (
    files.find((f) => !(f.names.length === 0 && f.other.length > 0) && matchesNameList(f.names, iface))?.path ?? null
  );
}

function netplanFileNaming(iface: string, net: NetworkStack, networkdFile: string | null): string | null {
  if (networkdFile && /^\/run\/systemd\/network\/10-netplan-/.test(networkdFile)) return networkdFile;
  const word = new RegExp(`(^|[^A-Za-z0-9_.@-])${iface.replace(/[.]/g, "\\.")}([^A-Za-z0-9_.@-]|$)`, "m");
  return Object.entries(net.netplan).find(([, text]) => word.test(text))?.[0] ?? null;
}

function networkdTarget(iface: string, networkFile: string | null): Target | Refusal {
  if (!networkFile) {
    return new Refusal(
      `stack is networkd but no .network file matches ${iface} by [Match] Name=, so networkd would never read a drop-in. ` +
        `Create one (e.g. /etc/systemd/network/10-${iface}.network with [Match] Name=${iface}) or set persist: false`,
    );
  }
  return {
    stack: "networkd",
    networkFile,
    path: `/etc/systemd/network/${posix.basename(networkFile)}.d/${NETWORKD_DROPIN_NAME}`,
  };
}

function ifupdownTarget(net: NetworkStack): Target | Refusal {
  if (!net.ifupdown.main)
    return new Refusal(
      `stack is ifupdown but ${IFUPDOWN_MAIN} does not exist. Install and configure ifupdown, or set stack to networkd or persist: false`,
    );
  return { stack: "ifupdown", path: IFUPDOWN_HOOK };
}

function renderFile(ctx: PlanContext, target: Target, iface: string, wanted: Cidr[], net: NetworkStack): string {
  const total = wanted.length;
  if (target.stack === "networkd") {
    const addresses = wanted.map((c, i) => ({ cidr: c.text, address: c.address, ipv6: c.family === 6, n: i + 1 }));
    return ctx.render("networkd.conf.hbs", {
      why: ctx.why,
      iface,
      addresses,
      total,
      networkFile: target.networkFile ?? "",
    });
  }
  const families = Object.hasOwn(net.ifupdown.families, iface) ? net.ifupdown.families[iface]! : [];
  const addresses = wanted.map((c, i) => {
    const { when, command } = hookLine(c, iface, families);
    return { cidr: c.text, command, note: `Extra source address ${i + 1} of ${total} (${c.address}): ${when}.` };
  });
  return ctx.render("ifupdown-hook.sh.hbs", { why: ctx.why, iface, ifaceWord: shQuote(iface), addresses, total });
}

/** After the interface's own stanza of that family is up, so an IPv4 extra becomes a secondary. */
function hookLine(c: Cidr, iface: string, families: string[]): { when: string; command: string } {
  const family = c.family === 4 ? "inet" : "inet6";
  const add = `add ${shJoin(addArgv(c, iface).slice(3))}`;
  const deprecated =
    c.family === 6 ? "deprecated at once (preferred_lft 0) so IPv6 source selection never picks it by itself; " : "";
  if (!families.includes(family)) {
    return {
      when: `${deprecated}added when ${iface} comes up (it has no \`${family}\` stanza to wait for)`,
      command: add,
    };
  }
  const after = c.family === 4 ? `, so it joins ${iface}'s own address as a secondary` : "";
  return {
    when: `${deprecated}added once ${iface}'s \`${family}\` stanza is up${after}`,
    command: `if has_family ${family}; then ${add}; fi`,
  };
}

function capacityNotes(
  live: LiveAddresses,
  iface: string,
  wanted: Cidr[],
  removed: Owned[],
  range: string | null,
): string[] {
  const r = parseLocalPortRange(range);
  const ports = r ? r.to - r.from + 1 : null;
  const staying = (live.get(iface) ?? []).filter((c) => !c.dadfailed && !includesOwned(removed, iface, c));
  return ([4, 6] as const)
    .filter((family) => wanted.some((w) => w.family === family))
    .map((family) => {
      const sources = new Set(
        [...staying, ...wanted].filter((c) => c.family === family && !isLinkLocal(c)).map((c) => c.address),
      );
      const head = `outbound capacity per destination ip:port over IPv${family} from ${iface}: ${sources.size} source IPs`;
      return ports === null
        ? `${head} × the port range (${PORT_RANGE_KEY} unreadable)`
        : `${head} × ${thousands(ports)} ports = ${thousands(sources.size * ports)} connections (${PORT_RANGE_KEY} ${r!.from} ${r!.to}; only for applications that bind() to the extra IPs)`;
    });
}

function detectionNotes(live: LiveAddresses, iface: string, wanted: Cidr[]): string[] {
  return wanted.flatMap((w) => {
    const now = liveAddress(live, iface, w);
    if (now?.dadfailed) {
      return [
        `${w.text} on ${iface} failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it; run deletes and re-adds it to repeat the detection`,
      ];
    }
    return now?.tentative
      ? [
          `${w.text} on ${iface} is tentative (duplicate address detection running): bind() to it fails with EADDRNOTAVAIL until it ends, within a few seconds`,
        ]
      : [];
  });
}

function persistNotes(
  persist: boolean,
  target: Target | null,
  iface: string,
  net: NetworkStack,
  configs: OwnFile[],
): string[] {
  if (!persist) {
    const earlier = configs.map((m) => m.path).join(", ");
    return [
      `not persisted (persist: false): the addresses vanish at the next reboot or ifdown of ${iface}`,
      ...(earlier
        ? [`${earlier} from an earlier run still add addresses at boot: delete it if they should not come back`]
        : []),
    ];
  }
  if (!target) return [];
  if (target.stack === "networkd") {
    return [
      `persisted for systemd-networkd: a drop-in for ${target.networkFile}, read at networkd's next reload (\`networkctl reload\`) or boot; the addresses are added live now`,
      ...(net.networkd.daemon ? [] : ["systemd-networkd is not installed here: nothing reads the drop-in until it is"]),
    ];
  }
  return [
    `persisted for ifupdown: ${IFUPDOWN_HOOK} adds them each time ${iface} comes up (ifup, boot), after ${iface}'s own stanzas; the addresses are added live now`,
    ...(net.ifupdown.ifup
      ? []
      : [
          `ifup is not installed here: nothing reads ${IFUPDOWN_MAIN} at boot, so the addresses won't come back after a reboot until ifupdown is installed`,
        ]),
  ];
}
