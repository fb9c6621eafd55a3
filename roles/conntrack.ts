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
  type RolePlan,
} from "../src/role.js";
import { conntrackProbe, HASHSIZE_PATH, memTotalProbe, type ConntrackState } from "../src/facts/conntrack.js";
import { planManagedFile, planStaleFile } from "../src/managedFile.js";
import { bootTruthChecks, sysctlDropinPath } from "../src/sysctl/dropin.js";
import { normalizeSysctlValue, sysctlEqual } from "../src/sysctl/value.js";
import { thousands as n } from "../src/output/words.js";

export interface ConntrackParams {
  nf_conntrack_max: number | null;
  hashsize: number | null;
  tcp_timeout_time_wait: number | null;
  tcp_timeout_established: number | null;
  max_memory_percent: number;
  load_module: boolean;
}

const ROLE = "conntrack";
export const PATHS = {
  modulesLoad: "/etc/modules-load.d/60-provision-conntrack.conf",
  modprobe: "/etc/modprobe.d/60-provision-conntrack.conf",
  sysctl: sysctlDropinPath(ROLE),
  udev: "/etc/udev/rules.d/60-provision-conntrack.rules",
} as const;

export const KEYS = {
  nf_conntrack_max: "net.netfilter.nf_conntrack_max",
  tcp_timeout_time_wait: "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
  tcp_timeout_established: "net.netfilter.nf_conntrack_tcp_timeout_established",
} as const;

/**
 * One tracked connection: the nf_conn slab object (256 bytes on this 6.18 kernel, /sys/kernel/slab/
 * nf_conntrack/slab_size) plus its extension area (accounting, timestamps, NAT: ~64 bytes).
 */
export const ENTRY_BYTES = 320;
/** One hash bucket: an hlist_nulls_head, one pointer. */
export const BUCKET_BYTES = 8;
/** The most buckets the kernel picks by itself (64-bit hosts with more than 4 GB). */
export const KERNEL_MAX_DEFAULT_BUCKETS = 262144;

/** Bytes the conntrack table takes when it is full: entries are allocated as they come, buckets up front. */
export function conntrackTableBytes(max: number, buckets: number): number {
  return max * ENTRY_BYTES + buckets * BUCKET_BYTES;
}

/** The largest nf_conntrack_max whose full table stays within `percent` of `memTotalBytes`. */
export function largestMaxWithin(memTotalBytes: number, percent: number, buckets: number): number {
  return Math.max(0, Math.floor((memTotalBytes * (percent / 100) - buckets * BUCKET_BYTES) / ENTRY_BYTES));
}

export interface MemoryBound {
  tableBytes: number;
  limitBytes: number;
  percentOfMemory: number;
  largestMax: number;
  ok: boolean;
}

export function memoryBound(max: number, buckets: number, memTotalBytes: number, percent: number): MemoryBound {
  const tableBytes = conntrackTableBytes(max, buckets);
  const limitBytes = memTotalBytes * (percent / 100);
  return {
    tableBytes,
    limitBytes,
    percentOfMemory: (tableBytes / memTotalBytes) * 100,
    largestMax: largestMaxWithin(memTotalBytes, percent, buckets),
    ok: tableBytes <= limitBytes,
  };
}

const gib = (bytes: number) => `${(bytes / 1073741824).toFixed(1)} GiB`;
const size = (bytes: number) => (bytes >= 1073741824 ? gib(bytes) : `${(bytes / 1048576).toFixed(1)} MiB`);
const pct = (v: number) => `${Number(v.toFixed(2))}%`;

export const NAMESPACE_READ_ONLY =
  "nf_conntrack_max is read-only in this network namespace (a container): set it on the host that owns the namespace, or set nf_conntrack_max: null";

export default defineRole<ConntrackParams>({
  name: ROLE,
  summary:
    'Size the connection-tracking table for 100k+ connections and make it survive boot, so packets aren\'t dropped with "table full"',
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      nf_conntrack_max: {
        type: ["integer", "null"],
        minimum: 1024,
        maximum: 67108864,
        default: 1048576,
        description:
          "Most connections the firewall's connection tracker holds (net.netfilter.nf_conntrack_max; default = the hash size, 262,144 at most, less on hosts under 4 GB). " +
          'When it is full the kernel logs "nf_conntrack: table full, dropping packet" and drops every NEW connection\'s first packet: clients see timeouts, not errors. ' +
          "A proxied connection takes 2 entries (client side and upstream side) and each closed one lingers for the TIME_WAIT timeout, " +
          "so 100,000 proxied connections plus 1,000 closes/s need about 200,000 + 120,000 entries; 1,048,576 leaves room for bursts. " +
          "A full table costs about 320 bytes per entry (320 MiB at 1,048,576), allocated only as entries appear; it is refused above max_memory_percent of the host's memory. " +
          "Only the initial network namespace may set it: null leaves the host's value (required on containers).",
        fix: "use an integer from 1024 to 67108864, or null to leave the host's value (required inside a container)",
      },
      hashsize: {
        type: ["integer", "null"],
        minimum: 8192,
        maximum: 16777216,
        multipleOf: 8192,
        default: 262144,
        description:
          "Buckets of the conntrack hash table (module option nf_conntrack hashsize, live in /sys/module/nf_conntrack/parameters/hashsize; " +
          "the kernel picks RAM/16 KiB/8, between 1,024 and 262,144). Every packet looks its connection up in one bucket's chain, and each connection is hashed twice " +
          "(original and reply direction), so a full table averages 2 × nf_conntrack_max / hashsize entries per chain. 262,144 is the kernel's own choice on 64-bit hosts " +
          "over 4 GB (nothing is resized there): chains average 8 when 1,048,576 entries are full and under 2 at the 100k-connection design point, for 2 MiB of buckets. " +
          "A smaller table on a small host makes every packet walk long chains under load. The value is one for the whole machine: null leaves it (required on containers). " +
          "It must be a multiple of 8,192: the kernel rounds the size up to whole pages of buckets (512 per 4 KiB page, 8,192 per 64 KiB page), and any other value would read back different and be re-applied on every run.",
        fix: "use a multiple of 8192 from 8192 to 16777216 (about nf_conntrack_max / 4), e.g. 262144, or null to leave the host's value",
      },
      tcp_timeout_time_wait: {
        type: ["integer", "null"],
        minimum: 10,
        maximum: 600,
        default: 60,
        description:
          "Seconds a closed TCP connection keeps its conntrack entry (net.netfilter.nf_conntrack_tcp_timeout_time_wait, default 120). " +
          "Linux's own TIME_WAIT lasts 60 s, so the default keeps entries for a minute after the sockets are gone: at 1,000 closes/s that is 120,000 entries " +
          "where 60 s keeps 60,000. Set per network namespace. null leaves the host's value.",
        fix: "use seconds from 10 to 600 (60 matches Linux's TIME_WAIT), or null",
      },
      tcp_timeout_established: {
        type: ["integer", "null"],
        minimum: 300,
        maximum: 1296000,
        default: 86400,
        description:
          "Seconds an idle established TCP connection keeps its conntrack entry (net.netfilter.nf_conntrack_tcp_timeout_established, default 432000 = 5 days). " +
          "A peer that vanishes without FIN or RST (power loss, a NAT that forgot the flow) holds its entry for the whole timeout: at 1,000 such losses per hour " +
          '5 days is 120,000 dead entries, a leading cause of "table full"; 86,400 (1 day) keeps 24,000. It must stay well above the longest idle gap of a live connection ' +
          "(TCP keepalive, WebSocket pings): an expired entry's next packet can be dropped as INVALID or lose its NAT mapping. Set per network namespace. null leaves the host's value.",
        fix: "use seconds from 300 to 1296000, well above your keepalive interval (86400 = 1 day), or null",
      },
      max_memory_percent: {
        type: "number",
        exclusiveMinimum: 0,
        maximum: 50,
        default: 5,
        description:
          "Refuse an nf_conntrack_max whose full table (entries × 320 bytes + buckets × 8 bytes) would take more than this share of the host's MemTotal. " +
          "The kernel sizes its default table at about 0.25% of RAM; a table that fills (a SYN flood, a leak of idle entries) takes its memory from the page cache and the applications. " +
          "5% allows 1,048,576 entries (322 MiB) from about 6.3 GiB of RAM up.",
        fix: "use a percentage above 0 and at most 50, e.g. 5",
      },
      load_module: {
        type: "boolean",
        default: false,
        description:
          "Load nf_conntrack (and list it in /etc/modules-load.d) on a host that does not use it yet. Off by default: a host whose kernel has neither loaded nor built in " +
          'the connection tracker (no NAT, no stateful firewall rule) tracks nothing and cannot hit "table full"; loading it there would start tracking, and limiting, every connection ' +
          "(each costing about 320 bytes and a hash lookup per packet). " +
          "Where the module is already loaded or built in, the role tunes it either way.",
        fix: "use true to load nf_conntrack where it is not in use, or false to tune it only where it is",
      },
    },
  },

  lint(p, hints) {
    if (p.nf_conntrack_max === null || hints.memTotalMb === null) return [];
    const mem = hints.memTotalMb * 1048576;
    const buckets = p.hashsize ?? KERNEL_MAX_DEFAULT_BUCKETS;
    const b = memoryBound(p.nf_conntrack_max, buckets, mem, p.max_memory_percent);
    if (b.ok) return [];
    return [
      {
        param: "nf_conntrack_max",
        severity: "error",
        problem: `a full conntrack table of ${n(p.nf_conntrack_max)} entries takes ${size(b.tableBytes)}, ${pct(b.percentOfMemory)} of ansible_memtotal_mb ${n(hints.memTotalMb)} MiB, above max_memory_percent ${p.max_memory_percent}%`,
        fix: `set nf_conntrack_max to at most ${n(b.largestMax)} for this host, or raise max_memory_percent`,
      },
    ];
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    if (p.nf_conntrack_max !== null && p.hashsize !== null) {
      if (p.hashsize > p.nf_conntrack_max) {
        problems.push({
          param: "hashsize",
          severity: "warning",
          problem: `hashsize ${n(p.hashsize)} is above nf_conntrack_max ${n(p.nf_conntrack_max)}: buckets the table can never fill cost ${BUCKET_BYTES} bytes each`,
          fix: `use about nf_conntrack_max / 4, e.g. ${n(Math.max(1024, Math.floor(p.nf_conntrack_max / 4)))}`,
        });
      } else if (p.nf_conntrack_max > 8 * p.hashsize) {
        problems.push({
          param: "hashsize",
          severity: "warning",
          problem: `nf_conntrack_max ${n(p.nf_conntrack_max)} is more than 8 × hashsize ${n(p.hashsize)}: a full table averages ${Math.round((2 * p.nf_conntrack_max) / p.hashsize)} entries per hash chain, walked for every packet`,
          fix: `raise hashsize to at least ${n(Math.ceil(p.nf_conntrack_max / 8))} (nf_conntrack_max / 8), ideally nf_conntrack_max / 4`,
        });
      }
    }
    if (p.tcp_timeout_established !== null && p.tcp_timeout_established < 3600) {
      problems.push({
        param: "tcp_timeout_established",
        severity: "warning",
        problem: `tcp_timeout_established ${p.tcp_timeout_established} s forgets connections idle for more than ${Math.round(p.tcp_timeout_established / 60)} min; their next packet can be dropped as INVALID or lose its NAT mapping`,
        fix: "keep it well above the longest idle gap of your connections (TCP keepalive, WebSocket pings), e.g. 86400",
      });
    }
    return problems;
  },

  facts: () => [
    ...Object.values(KEYS).map((key) => ({ kind: "sysctl" as const, key })),
    ...Object.values(PATHS).map((path) => ({ kind: "file" as const, path })),
    probeRequest(conntrackProbe),
    probeRequest(memTotalProbe),
  ],

  plan(p, facts, ctx) {
    const read = probeResult(facts, conntrackProbe);
    if (!read?.ok)
      return refused([
        `cannot read nf_conntrack's state on this host: ${read?.error ?? "the conntrack probe was not gathered"}`,
      ]);
    const state = read.value;
    if (state.module === "absent" && !p.load_module) {
      return {
        changes: [],
        checks: [],
        refusals: [],
        notes: [
          `nf_conntrack is not in use on this host (neither loaded nor built into kernel ${state.kernel}): nothing tracks connections, so there is no table to size. Set load_module: true to load it and tune it anyway`,
        ],
      };
    }
    const desired = desiredSysctls(p);
    const refusals = [
      ...moduleRefusals(state),
      ...writeRefusals(p, state, desired.length > 0),
      ...memoryRefusals(p, state, facts),
    ];
    if (refusals.length > 0) return refused(refusals);

    const files = planFiles(p, state, desired, facts, ctx);
    const commands = planCommands(p, state);
    const sysctls = liveSysctlChanges(desired, facts);
    return {
      // Apply order: the module option before the module loads, the module before its sysctls exist.
      changes: [...files.changes, ...commands, ...sysctls],
      checks: [...files.checks, ...sysctlChecks(desired), ...moduleChecks(p)],
      notes: notes(p, state, facts),
      refusals: [],
    };
  },
});

function memTotalBytes(facts: Facts): number | string {
  const read = probeResult(facts, memTotalProbe);
  if (!read) return "the meminfo probe was not gathered";
  if (!read.ok) return `cannot read MemTotal from /proc/meminfo: ${read.error}`;
  return read.value * 1024;
}

function desiredSysctls(p: ConntrackParams): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (p.nf_conntrack_max !== null) out.push([KEYS.nf_conntrack_max, String(p.nf_conntrack_max)]);
  if (p.tcp_timeout_time_wait !== null) out.push([KEYS.tcp_timeout_time_wait, String(p.tcp_timeout_time_wait)]);
  if (p.tcp_timeout_established !== null) out.push([KEYS.tcp_timeout_established, String(p.tcp_timeout_established)]);
  return out;
}

/** Why the module can't be there for us; empty when it is, or when we can load it. */
function moduleRefusals(s: ConntrackState): string[] {
  if (s.module !== "absent") return [];
  if (s.netns === "other") {
    return [
      "nf_conntrack is not loaded, and this host is not in the initial network namespace (a container): a kernel module belongs to the whole machine; load it on the host that owns the namespace (`modprobe nf_conntrack`, and list it in /etc/modules-load.d/)",
    ];
  }
  if (!s.moduleSupport) {
    return [
      `nf_conntrack is neither built into kernel ${s.kernel} nor loadable (no /proc/modules: the kernel has no module support), so its sysctls cannot exist: use a kernel with nf_conntrack, or remove the conntrack role from this host`,
    ];
  }
  if (!s.modprobe)
    return [
      "nf_conntrack is not loaded and modprobe is not installed: install kmod (apt-get install kmod), or load the module by other means first",
    ];
  if (!s.loadable) {
    return [
      `nf_conntrack is not loaded and \`modprobe -n nf_conntrack\` cannot find it for kernel ${s.kernel}: install the modules of the running kernel (e.g. apt-get install linux-image-${s.kernel}), or remove the conntrack role from this host`,
    ];
  }
  return [];
}

/** Keys and values this login can't write, found at plan time instead of failing half-way through apply. */
function writeRefusals(p: ConntrackParams, s: ConntrackState, wantsSysctls: boolean): string[] {
  const out: string[] = [];
  if (s.module !== "absent" && wantsSysctls && (s.max === "absent" || s.timeouts === "absent")) {
    out.push(
      "nf_conntrack is loaded but its net.netfilter sysctls do not exist in this network namespace (the kernel hides them from namespaces owned by an unprivileged user namespace): set them on the host that owns the namespace, or set nf_conntrack_max, tcp_timeout_time_wait and tcp_timeout_established to null",
    );
  } else if (wantsSysctls && s.timeouts === "read-only") {
    out.push(
      "the net.netfilter sysctls are read-only for this login (not root, or /proc/sys mounted read-only as in many containers): set ansible_become: true or log in as root; in a container, set them on the host",
    );
  } else if (p.nf_conntrack_max !== null && (s.max === "read-only" || (s.max === "absent" && s.netns === "other"))) {
    out.push(NAMESPACE_READ_ONLY);
  }
  if (p.hashsize !== null) out.push(...hashsizeRefusals(p.hashsize, s));
  return out;
}

function hashsizeRefusals(hashsize: number, s: ConntrackState): string[] {
  if (s.netns === "other") {
    return [
      `hashsize is one value for the whole machine (${HASHSIZE_PATH}) and this host is not in the initial network namespace (a container): set it on the host that owns the namespace, or set hashsize: null`,
    ];
  }
  if (s.module === "absent") return [];
  if (s.hashsize === null)
    return [`cannot read ${HASHSIZE_PATH} (readable by root only): set ansible_become: true or log in as root`];
  if (s.hashsize !== hashsize && !s.hashsizeWritable) {
    return [
      `${HASHSIZE_PATH} is not writable (not root, or /sys mounted read-only as in containers): set ansible_become: true, set it on the host, or set hashsize: null`,
    ];
  }
  return [];
}

function bucketsFor(p: ConntrackParams, s: ConntrackState): number {
  return p.hashsize ?? s.hashsize ?? KERNEL_MAX_DEFAULT_BUCKETS;
}

function memoryRefusals(p: ConntrackParams, s: ConntrackState, facts: Facts): string[] {
  if (p.nf_conntrack_max === null) return [];
  const mem = memTotalBytes(facts);
  if (typeof mem === "string") return [`${mem}: cannot bound nf_conntrack_max by the host's memory`];
  const buckets = bucketsFor(p, s);
  const b = memoryBound(p.nf_conntrack_max, buckets, mem, p.max_memory_percent);
  if (b.ok) return [];
  return [
    `nf_conntrack_max ${n(p.nf_conntrack_max)} would let a full conntrack table take ${size(b.tableBytes)} ` +
      `(${n(p.nf_conntrack_max)} entries × ${ENTRY_BYTES} bytes + ${n(buckets)} buckets × ${BUCKET_BYTES} bytes), ${pct(b.percentOfMemory)} of this host's ${gib(mem)} MemTotal, ` +
      `above max_memory_percent ${p.max_memory_percent}%: set nf_conntrack_max to at most ${n(b.largestMax)} for this host, or raise max_memory_percent`,
  ];
}

function planFiles(
  p: ConntrackParams,
  s: ConntrackState,
  desired: Array<[string, string]>,
  facts: Facts,
  ctx: PlanContext,
): Pick<RolePlan, "changes" | "checks"> {
  const changes: Change[] = [];
  const checks: Check[] = [];
  const add = (path: string, content: string) => {
    const planned = planManagedFile({ path, content, role: ROLE }, facts);
    changes.push(...planned.changes);
    checks.push(...planned.checks);
  };
  const remove = (path: string, why: string) => {
    if (facts.files[path] == null) return;
    const stale = planStaleFile({ path, why, message: `${path} is back though ${why}: it applies at boot again` });
    changes.push(...stale.changes);
    checks.push(...stale.checks);
  };
  add(PATHS.modulesLoad, ctx.render("modules-load.conf.hbs"));
  if (p.hashsize !== null)
    add(
      PATHS.modprobe,
      ctx.render("modprobe.conf.hbs", { hashsize: p.hashsize, kernelDefault: KERNEL_MAX_DEFAULT_BUCKETS }),
    );
  else remove(PATHS.modprobe, "hashsize is null now (the next module load takes the kernel's size)");
  if (desired.length > 0) {
    const sysctlContent = renderSysctl(p, s, ctx);
    add(PATHS.sysctl, sysctlContent);
    checks.push(
      ...bootTruthChecks(
        PATHS.sysctl,
        sysctlContent,
        desired.map(([key]) => key),
      ),
    );
  } else {
    remove(PATHS.sysctl, "all three sysctls are null now (the next boot takes the kernel's values)");
  }
  if (desired.length > 0 && s.sysctlApplier !== null)
    add(PATHS.udev, ctx.render("udev.rules.hbs", udevData(s.sysctlApplier)));
  else
    remove(
      PATHS.udev,
      desired.length > 0 ? "this host has no sysctl binary for it to run" : "no conntrack sysctl is set any more",
    );
  return { changes, checks };
}

function renderSysctl(p: ConntrackParams, s: ConntrackState, ctx: PlanContext): string {
  const buckets = bucketsFor(p, s);
  return ctx.render("sysctl.conf.hbs", {
    max: p.nf_conntrack_max,
    tableSize: p.nf_conntrack_max === null ? null : size(conntrackTableBytes(p.nf_conntrack_max, buckets)),
    chain:
      p.nf_conntrack_max === null || p.hashsize === null ? null : ((2 * p.nf_conntrack_max) / p.hashsize).toFixed(1),
    time_wait: p.tcp_timeout_time_wait,
    established: p.tcp_timeout_established,
  });
}

function udevData(applier: NonNullable<ConntrackState["sysctlApplier"]>): Record<string, unknown> {
  return applier.kind === "systemd-sysctl"
    ? { systemd: true, command: `${applier.path} --prefix=/net/netfilter`, path: applier.path }
    : { systemd: false, command: `${applier.path} -q -p ${PATHS.sysctl}`, path: applier.path };
}

function planCommands(p: ConntrackParams, s: ConntrackState): Change[] {
  // A module loaded now reads the options file written just before, so it needs no live hashsize.
  if (s.module === "absent")
    return [
      {
        kind: "command",
        argv: ["modprobe", "nf_conntrack"],
        description: "load nf_conntrack now (its sysctls exist only once it is loaded)",
      },
    ];
  if (p.hashsize === null || s.hashsize === p.hashsize) return [];
  const buckets = Math.trunc(p.hashsize);
  return [
    {
      kind: "command",
      argv: ["sh", "-c", `echo ${buckets} > ${HASHSIZE_PATH}`],
      description: `resize the conntrack hash live: ${s.hashsize === null ? "?" : n(s.hashsize)} → ${n(buckets)} buckets (a sysfs module parameter, not a file)`,
    },
  ];
}

function liveSysctlChanges(desired: Array<[string, string]>, facts: Facts): Change[] {
  return desired.flatMap(([key, value]): Change[] => {
    const live = facts.sysctl[key] ?? null;
    if (sysctlEqual(live, value)) return [];
    return [
      {
        kind: "sysctl",
        key,
        before: live === null ? null : normalizeSysctlValue(live),
        after: value,
        description: `set ${key} live`,
      },
    ];
  });
}

function sysctlChecks(desired: Array<[string, string]>): Check[] {
  return desired.map(([key, value]) => ({
    kind: "sysctl" as const,
    key,
    expected: value,
    message: `${key} is not ${value} on the running kernel: nf_conntrack was reloaded without the udev rule, something changed it, or another sysctl file won at boot`,
  }));
}

function moduleChecks(p: ConntrackParams): Check[] {
  const checks: Check[] = [
    probeCheck(conntrackProbe, {
      field: ["loaded"],
      expected: "true",
      compare: "equal",
      label: "nf_conntrack loaded",
      message:
        "nf_conntrack is not loaded: its sysctls don't exist and the table can't be sized; check /etc/modules-load.d and `modprobe nf_conntrack`",
    }),
  ];
  if (p.hashsize !== null) {
    checks.push(
      probeCheck(conntrackProbe, {
        field: ["hashsize"],
        expected: String(p.hashsize),
        compare: "equal",
        label: "nf_conntrack hashsize",
        message: `${HASHSIZE_PATH} is not ${p.hashsize}: the module was loaded without /etc/modprobe.d options (built in: set nf_conntrack.hashsize on the kernel command line) or someone resized it`,
      }),
    );
  }
  return checks;
}

function notes(p: ConntrackParams, s: ConntrackState, facts: Facts): string[] {
  const out: string[] = [];
  if (s.module === "builtin") {
    out.push(
      `nf_conntrack is built into kernel ${s.kernel}: its keys exist before systemd-sysctl runs, so /etc/sysctl.d applies at boot by itself; the modules-load entry and the udev rule matter only for a kernel that ships it as a module`,
    );
    if (p.hashsize !== null)
      out.push(
        `a built-in nf_conntrack ignores /etc/modprobe.d: add nf_conntrack.hashsize=${p.hashsize} to the kernel command line to keep it across reboots`,
      );
  }
  if (s.netns === "other" && p.nf_conntrack_max === null) {
    out.push(
      "this host is not in the initial network namespace: nf_conntrack_max and hashsize belong to the machine and are left alone; only the per-namespace timeouts are set here",
    );
  }
  if (desiredSysctls(p).length > 0 && s.sysctlApplier === null) {
    out.push(
      `no systemd-sysctl or sysctl binary on this host: ${PATHS.udev} is not written, so values set in ${PATHS.sysctl} apply at boot only if something else loads them`,
    );
  }
  const mem = memTotalBytes(facts);
  if (p.nf_conntrack_max !== null && typeof mem === "number") {
    const b = memoryBound(p.nf_conntrack_max, bucketsFor(p, s), mem, p.max_memory_percent);
    out.push(
      `a full conntrack table takes ${size(b.tableBytes)}, ${pct(b.percentOfMemory)} of ${gib(mem)} MemTotal (limit ${p.max_memory_percent}%)`,
    );
  }
  return out;
}
