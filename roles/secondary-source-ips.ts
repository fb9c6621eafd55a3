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
    if (p.interface === "." || p.interface === "..") {
      problems.push({
        param: "interface",
        severity: "error",
        problem: `"${p.interface}" is not an interface name`,
        fix: "use a name that `ip -br link` shows, e.g. eth0",
      });
    }
    const seen = new Map<string, string>();
    for (const item of p.addresses) {
      const c = parseCidr(item);
      if ("error" in c) {
        problems.push({
          param: "addresses",
          severity: "error",
          problem: `"${item}" ${c.error}`,
          fix: "write it as ADDRESS/PREFIX, e.g. 198.18.5.10/24 or 2001:db8::10/64",
        });
        continue;
      }
      const reason = unusableReason(c);
      if (reason) {
        problems.push({
          param: "addresses",
          severity: "error",
          problem: `"${item}" ${reason}`,
          fix: "use a unicast address the host can send from, in its network's prefix",
        });
        continue;
      }
      const earlier = seen.get(c.address);
      if (earlier !== undefined) {
        problems.push({
          param: "addresses",
          severity: "error",
          problem: `"${item}" repeats ${c.address} (already listed as "${earlier}")`,
          fix: "list each address once, with one prefix",
        });
      }
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
    // The default playbook applies this role to every host; one without addresses (and nothing
    // from an earlier run to undo) must not fail for reasons that only matter when adding some.
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

    // Deletions first: if one fails, nothing else changes and the files still record what to delete next time.
    const steps = [
      ...deletions.map((d) => (removed.includes(d) ? removeStep(d) : readdPrepStep(d))),
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
      ...persistNotes(p, target, iface, net, configs),
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

/** Where the addresses are persisted. */
interface Target {
  stack: "networkd" | "ifupdown";
  path: string;
  /** networkd: the .network file the drop-in extends. */
  networkFile?: string;
}

/** The mode of each stack's file: run-parts skips an ifupdown hook that is not executable. */
const MODE: Record<Target["stack"], string | undefined> = { networkd: undefined, ifupdown: "755" };

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

/** Part of a plan: the changes of one thing and the checks that read it back. */
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

function chooseInterface(p: SecondarySourceIpsParams, live: Map<string, LiveAddress[]>, ssh: string): string | Refusal {
  const existing = [...live.keys()].join(", ");
  if (p.interface !== null) {
    return live.has(p.interface)
      ? p.interface
      : new Refusal(
          `interface "${p.interface}" does not exist on this host (it has: ${existing}). Set secondary_source_ips.interface to one of them`,
        );
  }
  const holder = [...live.entries()].find(([, addrs]) => addrs.some((a) => a.address === ssh));
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
function conflictRefusals(wanted: Cidr[], live: Map<string, LiveAddress[]>, iface: string, removed: Owned[]): string[] {
  const goingAway = (name: string, c: Cidr) => removed.some((r) => r.iface === name && r.cidr.text === c.text);
  return wanted.flatMap((w) =>
    [...live].flatMap(([name, addrs]) => {
      const clash = addrs.find(
        (a) => a.address === w.address && !(name === iface && a.prefix === w.prefix) && !goingAway(name, a),
      );
      if (!clash) return [];
      return name === iface
        ? [
            `${w.address} is already on ${iface} as ${clash.text}, not ${w.text}. Remove it by hand (ip addr del ${clash.text} dev ${iface}) or list it as ${clash.text}`,
          ]
        : [
            `${w.address} is already on ${name} (${clash.text}); an address belongs to one interface. Remove it there (ip addr del ${clash.text} dev ${name}) or drop it from addresses`,
          ];
    }),
  );
}

function liveAddress(live: Map<string, LiveAddress[]>, iface: string, c: Cidr): LiveAddress | null {
  return (live.get(iface) ?? []).find((a) => a.text === c.text) ?? null;
}

/** Secondaries go before primaries: deleting a primary first would take them along, and their own deletion would then fail. */
function secondariesFirst(deletions: Owned[], live: Map<string, LiveAddress[]>): Owned[] {
  const isPrimary = (d: Owned) =>
    liveAddress(live, d.iface, d.cidr)?.secondary === false && d.cidr.family === 4 ? 1 : 0;
  return [...deletions].sort((a, b) => isPrimary(a) - isPrimary(b));
}

/**
 * Refuses to delete a primary IPv4 address while other addresses of its subnet stay on the
 * interface and promote_secondaries is off: the kernel would delete them too, the SSH address
 * among them (a lockout that no later step can repair). Walks the deletions in order, as the kernel
 * would; a refused deletion is left out of the walk.
 */
function cascadeRefusals(deletions: Owned[], live: Map<string, LiveAddress[]>, ip: IpAddresses, ssh: string): string[] {
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

/** A whole file of the role's, checked by sha256 (and mode, for a hook run-parts must be able to execute). */
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
  const what =
    path === STATE_FILE
      ? "a later run may delete the wrong addresses, or miss some"
      : "the addresses may not come back at boot";
  const checks = [
    probeCheck(networkStackProbe, {
      field: ["managed", "files", path, "sha256"],
      expected: sha256(content),
      compare: "equal",
      label: `${path} (sha256)`,
      message: `${path} differs from what ${ROLE} renders (edited by hand, or removed): ${what}; \`provision plan\` shows the diff`,
    }),
  ];
  if (mode) {
    checks.push(
      probeCheck(networkStackProbe, {
        field: ["managed", "files", path, "mode"],
        expected: mode,
        compare: "equal",
        label: `${path} (mode)`,
        message: `${path} is not mode ${mode}: run-parts skips a hook it can't execute, so the addresses would not come back at ifup or boot`,
      }),
    );
  }
  return { changes, checks };
}

/** The record of what was added live: rewritten with the wanted addresses, removed once there are none. */
function stateSteps(ctx: PlanContext, state: OwnFile | null, iface: string, wanted: Cidr[], net: NetworkStack): Step[] {
  if (wanted.length === 0) return state ? [staleFileStep(state)] : [];
  const addresses = wanted.map((c, i) => ({ cidr: c.text, n: i + 1 }));
  return [fileStep(STATE_FILE, ctx.render("state.hbs", { iface, addresses, total: wanted.length }), net)];
}

/** Only ever one of the role's own files (ownFiles keeps nothing else): this plans a deletion. */
function staleFileStep(f: OwnFile): Step {
  return f.path === STATE_FILE
    ? planStaleFile({
        path: f.path,
        why: "no address is left to record",
        message: `${f.path} is back: a later run would delete the addresses it lists`,
      })
    : planStaleFile({
        path: f.path,
        why: "an earlier run wrote it, and no address is persisted there any more",
        message: `${f.path} is back: it would re-add old addresses at boot`,
      });
}

function removeStep(r: Owned): Step {
  return {
    changes: [
      {
        kind: "command",
        argv: ["ip", "addr", "del", r.cidr.text, "dev", r.iface],
        description: `remove ${r.cidr.text} from ${r.iface}: no longer in addresses`,
      },
    ],
    checks: [addressCheck(r.iface, r.cidr, "excludes", null)],
  };
}

/** Deleting an address that failed duplicate address detection, so adding it again repeats the detection. */
function readdPrepStep(r: Owned): Step {
  return {
    changes: [
      {
        kind: "command",
        argv: ["ip", "addr", "del", r.cidr.text, "dev", r.iface],
        description: `delete ${r.cidr.text} from ${r.iface} to add it again: duplicate address detection failed`,
      },
    ],
    checks: [],
  };
}

/** IPv6 extras are deprecated at once so the kernel's source selection (RFC 6724) never picks them by itself. */
function addStep(c: Cidr, iface: string, live: Map<string, LiveAddress[]>): Step {
  const now = liveAddress(live, iface, c);
  return {
    changes:
      now && !now.dadfailed
        ? []
        : [
            {
              kind: "command",
              argv: addArgv(c, iface),
              undo: ["ip", "addr", "del", c.text, "dev", iface],
              description: `add ${c.text} to ${iface} live`,
            },
          ],
    checks: [addressCheck(iface, c, "includes", now)],
  };
}

function addArgv(c: Cidr, iface: string): string[] {
  return ["ip", "addr", "add", c.text, "dev", iface, ...(c.family === 6 ? ["preferred_lft", "0"] : [])];
}

/** The role's own files, by exact name; anything else the probe reported is ignored, never deleted. */
function ownFiles(net: NetworkStack): OwnFile[] {
  return net.managed.paths
    .filter(isOwnFileName)
    .map((path) => ({ path, content: net.managed.files[path]?.content ?? "" }));
}

function ownedFrom(files: OwnFile[], networkFiles: NetworkFile[], live: Map<string, LiveAddress[]>): Owned[] {
  const all = files.flatMap((f) => ownedAddresses(f.path, f.content, networkFiles, live));
  return all.filter((o, i) => all.findIndex((x) => x.iface === o.iface && x.cidr.text === o.cidr.text) === i);
}

/**
 * How each of the role's files names an address and its interface: the state file's
 * `ADDRESS/PREFIX IFACE` lines, the ifupdown hook's `add A dev I` lines, an older version's
 * `up ip addr replace A dev I` stanza lines. A networkd drop-in has only `Address=` lines.
 */
const OWNED_LINE = new Map<string, RegExp>([
  [STATE_FILE, /^([0-9A-Fa-f:.]+\/\d+) (\S+)$/],
  [IFUPDOWN_HOOK, /\badd (\S+) dev ([^\s;]+)/],
  [IFUPDOWN_DROPIN, /^\s*up ip addr replace (\S+) dev (\S+)/],
]);
const NETWORKD_ADDRESS_LINE = /^Address=(\S+)\s*$/;

/**
 * Addresses an earlier run added, with their interface (see OWNED_LINE). A networkd drop-in's are
 * credited to every interface its .network file matches (networkd applies the drop-in there,
 * whatever interface it was written for).
 */
export function ownedAddresses(
  path: string,
  content: string,
  networkFiles: NetworkFile[],
  live: Map<string, LiveAddress[]>,
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

/** The live interfaces the .network file a drop-in extends matches by Name= (none when that file is gone). */
function interfacesOfDropin(path: string, networkFiles: NetworkFile[], live: Map<string, LiveAddress[]>): string[] {
  const networkName = posix.basename(posix.dirname(path)).replace(/\.d$/, "");
  const networkFile = networkFiles.find((f) => posix.basename(f.path) === networkName);
  return networkFile ? [...live.keys()].filter((iface) => matchesNameList(networkFile.names, iface)) : [];
}

function sha256(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex");
}

/** Includes reads `usable` (dadfailed left out, tentative kept: it becomes usable within seconds); excludes reads every address. */
function addressCheck(iface: string, c: Cidr, compare: "includes" | "excludes", now: LiveAddress | null): Check {
  if (compare === "excludes") {
    return probeCheck(ipAddressesProbe, {
      field: ["interfaces", iface, "cidrs"],
      expected: c.text,
      compare,
      label: `${c.text} gone from ${iface}`,
      message: `${c.text} is still on ${iface} though it left addresses`,
    });
  }
  return probeCheck(ipAddressesProbe, {
    field: ["interfaces", iface, "usable"],
    expected: c.text,
    compare,
    label: `${c.text} on ${iface}`,
    message: now?.dadfailed
      ? `${c.text} is on ${iface} but failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it. ` +
        "Pick another address, or stop the other node using it, then `provision run` (it deletes and re-adds it to repeat the detection)"
      : `${c.text} is not on ${iface}: removed by hand, by ifdown, or by the network stack reconfiguring the link; outbound capacity is down one source IP until \`provision run\` adds it back`,
  });
}

/** Read through a brand-new login: proves the host still takes SSH connections after its addresses changed. */
function freshLoginCheck(live: Map<string, LiveAddress[]>, ssh: string, iface: string): Check {
  const sshIsLocal = [...live.values()].some((addrs) => addrs.some((a) => a.address === ssh));
  return sshIsLocal
    ? probeCheck(ipAddressesProbe, {
        field: ["locals"],
        expected: ssh,
        compare: "includes",
        freshLogin: true,
        label: `fresh login: SSH address ${ssh} still on the host`,
        message: `a new SSH login does not find ${ssh} on the host any more: the address this session uses must never change`,
      })
    : probeCheck(ipAddressesProbe, {
        field: ["names"],
        expected: iface,
        compare: "includes",
        freshLogin: true,
        label: `fresh login: ${iface} still present`,
        message: `a new SSH login does not see ${iface}`,
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
    `no network stack configures ${iface} here: no .network file matches it by Name= (in ${["/etc", "/run", "/usr/lib"].map((d) => `${d}/systemd/network`).join(", ")}), ` +
      `${IFUPDOWN_MAIN} does not name it, and netplan/NetworkManager don't either, so the addresses could not be persisted. ` +
      "Set persist: false to add them live only (they vanish at reboot), or configure the interface with systemd-networkd or ifupdown",
  );
}

/** The first .network file that matches by Name=; one that matches only by other keys (Type=, MACAddress=, …) can't be judged from here and is skipped. */
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
  if (target.stack === "networkd") {
    const addresses = wanted.map((c, i) => ({ cidr: c.text, address: c.address, ipv6: c.family === 6, n: i + 1 }));
    return ctx.render("networkd.conf.hbs", {
      why: ctx.why,
      iface,
      addresses,
      total: wanted.length,
      networkFile: target.networkFile ?? "",
    });
  }
  const families = Object.hasOwn(net.ifupdown.families, iface) ? net.ifupdown.families[iface]! : [];
  const addresses = wanted.map((c, i) => {
    const line = hookLine(c, iface, families);
    return {
      cidr: c.text,
      command: line.command,
      note: `Extra source address ${i + 1} of ${wanted.length} (${c.address}): ${line.when}.`,
    };
  });
  return ctx.render("ifupdown-hook.sh.hbs", {
    why: ctx.why,
    iface,
    ifaceWord: shQuote(iface),
    addresses,
    total: wanted.length,
  });
}

/**
 * When the hook adds an address: after the interface's own stanza of that family is up (so an
 * IPv4 extra joins the interface's address as a secondary), or at once when there is no such stanza.
 */
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
  live: Map<string, LiveAddress[]>,
  iface: string,
  wanted: Cidr[],
  removed: Owned[],
  range: string | null,
): string[] {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(range ?? "");
  const ports = m ? Number(m[2]) - Number(m[1]) + 1 : null;
  const fmt = (n: number) => n.toLocaleString("en-US");
  const gone = (c: LiveAddress) => c.dadfailed || removed.some((r) => r.iface === iface && r.cidr.text === c.text);
  const notes: string[] = [];
  for (const family of [4, 6] as const) {
    if (!wanted.some((w) => w.family === family)) continue;
    const sources = new Set(
      [...(live.get(iface) ?? []).filter((c) => !gone(c)), ...wanted]
        .filter((c) => c.family === family && !isLinkLocal(c))
        .map((c) => c.address),
    );
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
      return [
        `${w.text} on ${iface} failed duplicate address detection (dadfailed): another node on the link uses it, and the kernel never sends from it; run deletes and re-adds it to repeat the detection`,
      ];
    }
    if (now?.tentative)
      return [
        `${w.text} on ${iface} is tentative (duplicate address detection running): bind() to it fails with EADDRNOTAVAIL until it ends, within a few seconds`,
      ];
    return [];
  });
}

function persistNotes(
  p: SecondarySourceIpsParams,
  target: Target | null,
  iface: string,
  net: NetworkStack,
  configs: OwnFile[],
): string[] {
  if (!p.persist) {
    const earlier = configs.map((m) => m.path);
    return [
      `not persisted (persist: false): the addresses vanish at the next reboot or ifdown of ${iface}`,
      ...(earlier.length > 0
        ? [
            `${earlier.join(", ")} from an earlier run still add addresses at boot: delete it if they should not come back`,
          ]
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
