import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import conntrack, {
  BUCKET_BYTES,
  conntrackTableBytes,
  ENTRY_BYTES,
  KEYS,
  largestMaxWithin,
  memoryBound,
  NAMESPACE_READ_ONLY,
  PATHS,
  type ConntrackParams,
} from "../../roles/conntrack.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import {
  conntrackProbe,
  detectNetns,
  memTotalProbe,
  parseMemTotalKb,
  type ConntrackState,
} from "../../src/facts/conntrack.js";
import { ProbeParseError } from "../../src/facts/probe.js";
import { planHost, type HostPlan } from "../../src/plan.js";
import type { Facts } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { facts, hostWith, paramsOf, settings, settingsWithoutComment } from "./_roles.js";
import { withoutBootChecks } from "./_roles.js";
import { withBootTruth } from "./_roles.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "conntrack");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

/** Captured on this machine: the probe in the initial netns, as root in a fleet host, as a non-root login there. */
const PROBE = {
  initial: fixture("probe-initial-netns.txt"),
  fleetRoot: fixture("probe-fleet-root.txt"),
  fleetUnprivileged: fixture("probe-fleet-unprivileged.txt"),
};
const MEMINFO = fixture("meminfo.txt");
const GIB = 1024 * 1024 * 1024;

/** A Debian host in the initial netns with nf_conntrack as a module that nothing loaded yet (no such host here). */
const MODULE_ABSENT = [
  "max=absent",
  "timeouts=absent",
  "module=absent",
  "hashsize=absent",
  "hashsize_writable=no",
  "netns_self=net:[4026531840]",
  "netns_pid1=net:[4026531840]",
  "module_support=yes",
  "modprobe=yes",
  "loadable=yes",
  "systemd_sysctl=/lib/systemd/systemd-sysctl",
  "sysctl=/usr/sbin/sysctl",
  "kernel=6.1.0-41-amd64",
].join("\n");

/** Root in a systemd-nspawn host (captured): its /sys hides /sys/module, yet the built-in tracker runs. */
const CONTAINER = withFields(PROBE.fleetRoot, { module: "absent", hashsize: "absent", hashsize_writable: "no" });

function withFields(raw: string, over: Record<string, string>): string {
  const lines = raw
    .trim()
    .split("\n")
    .filter((l) => !(l.split("=")[0]! in over));
  return [...lines, ...Object.entries(over).map(([k, v]) => `${k}=${v}`)].join("\n");
}

function memInfoKb(kb: number): string {
  return MEMINFO.replace(/^MemTotal:\s+\d+ kB$/m, `MemTotal:       ${kb} kB`);
}

const LIVE_DEFAULTS = {
  [KEYS.nf_conntrack_max]: "262144",
  [KEYS.tcp_timeout_time_wait]: "120",
  [KEYS.tcp_timeout_established]: "432000",
};

function hostFacts(
  probeRaw: string,
  opts: { meminfo?: string; sysctl?: Record<string, string | null>; files?: Record<string, string | null> } = {},
): Facts {
  const state = conntrackProbe.parse(probeRaw, undefined);
  const absentKeys =
    state.module === "absent"
      ? { [KEYS.nf_conntrack_max]: null, [KEYS.tcp_timeout_time_wait]: null, [KEYS.tcp_timeout_established]: null }
      : LIVE_DEFAULTS;
  return facts({
    sysctl: { ...absentKeys, ...opts.sysctl },
    files: { ...opts.files },
    probes: {
      [conntrackProbe.name]: { ok: true, value: state },
      [memTotalProbe.name]: { ok: true, value: memTotalProbe.parse(opts.meminfo ?? MEMINFO, undefined) },
    },
  });
}

function plan(over: Partial<ConntrackParams>, f: Facts, purpose: "plan" | "verify" = "plan"): HostPlan {
  return planHost(hostWith("h1", [[conntrack, over as Record<string, unknown>]]), f, purpose);
}

function planError(over: Partial<ConntrackParams>, f: Facts): string {
  const refusals = plan(over, f).refusals;
  if (refusals.length === 0) throw new Error("the plan did not refuse");
  return refusals.map((r) => r.text).join("; ");
}

function stateOf(f: Facts): ConntrackState {
  const read = f.probes![conntrackProbe.name]!;
  if (!read.ok) throw new Error(read.error);
  return read.value as ConntrackState;
}

const summary = (p: HostPlan) =>
  p.changes.map((c) =>
    c.kind === "file"
      ? `file ${c.path}`
      : c.kind === "sysctl"
        ? `sysctl ${c.key}=${c.after}`
        : `command ${c.argv.join(" ")}`,
  );

function fileContent(p: HostPlan, path: string): string {
  const c = p.changes.find((x) => x.kind === "file" && x.path === path);
  if (!c || c.kind !== "file") throw new Error(`no change of ${path}`);
  return c.after;
}

/** What the host looks like after apply: files written, the module loaded (with its options file), hashsize and sysctls set. */
function appliedFacts(p: HostPlan, before: Facts): Facts {
  const after: Facts = structuredClone(before);
  const state = stateOf(after);
  for (const c of p.changes) {
    if (c.kind === "file") after.files[c.path] = c.after;
    else if (c.kind === "sysctl") after.sysctl[c.key] = c.after;
    else if (c.argv[0] === "modprobe") {
      const option = /hashsize=(\d+)/.exec(after.files[PATHS.modprobe] ?? "");
      Object.assign(state, {
        module: "loaded",
        loaded: true,
        max: "writable",
        timeouts: "writable",
        hashsize: option ? Number(option[1]) : 262144,
        hashsizeWritable: true,
      });
      for (const [key, value] of Object.entries(LIVE_DEFAULTS)) after.sysctl[key] ??= value;
    } else {
      state.hashsize = Number(/^echo (\d+) > /.exec(c.argv[2]!)![1]!);
    }
  }
  return withBootTruth(after);
}

describe("conntrack probe parser (output captured on this machine)", () => {
  it.each<[string, string, Partial<ConntrackState>]>([
    [
      "the machine itself (initial netns, built-in nf_conntrack, no module support)",
      PROBE.initial,
      {
        module: "builtin",
        max: "writable",
        timeouts: "writable",
        hashsize: 262144,
        hashsizeWritable: true,
        netns: "initial",
        moduleSupport: false,
        modprobe: false,
        loadable: false,
        sysctlApplier: { kind: "systemd-sysctl", path: "/lib/systemd/systemd-sysctl" },
        kernel: "6.18.44-fc-v595",
      },
    ],
    [
      "root in a fleet host (its own netns: nf_conntrack_max 0444, timeouts writable)",
      PROBE.fleetRoot,
      {
        module: "builtin",
        max: "read-only",
        timeouts: "writable",
        hashsize: 262144,
        hashsizeWritable: true,
        netns: "other",
      },
    ],
    [
      "a non-root login in a fleet host (nothing writable, hashsize unreadable, no sysctl on PATH)",
      PROBE.fleetUnprivileged,
      {
        module: "builtin",
        max: "read-only",
        timeouts: "read-only",
        hashsize: null,
        hashsizeWritable: false,
        netns: "unknown",
        sysctlApplier: { kind: "systemd-sysctl", path: "/lib/systemd/systemd-sysctl" },
      },
    ],
    [
      "root in a systemd-nspawn container (no /sys/module at all, the tracker's sysctls there)",
      CONTAINER,
      { module: "in-use", max: "read-only", timeouts: "writable", hashsize: null, netns: "other" },
    ],
  ])("%s", (_what, raw, expected) => {
    const state = conntrackProbe.parse(raw, undefined);
    expect(state).toMatchObject(expected);
    expect(state.loaded).toBe(true);
  });

  it("refuses output that lacks a field", () => {
    expect(() => conntrackProbe.parse(PROBE.initial.replace(/^module=.*$/m, ""), undefined)).toThrow(ProbeParseError);
    expect(() => conntrackProbe.parse(PROBE.initial.replace(/^max=.*$/m, "max=maybe"), undefined)).toThrow(/max=maybe/);
  });

  it("ignores a tool path with characters a udev rule can't carry", () => {
    const state = conntrackProbe.parse(
      withFields(PROBE.initial, { systemd_sysctl: "/opt/x y/systemd-sysctl", sysctl: "/usr/sbin/sysctl" }),
      undefined,
    );
    expect(state.sysctlApplier).toEqual({ kind: "sysctl", path: "/usr/sbin/sysctl" });
  });

  it.each<[string, Record<string, string>, string]>([
    [
      "max 0444 while timeouts are writable: only a non-initial netns",
      { max: "read-only", timeouts: "writable", netns_self: "net:[4026532252]", netns_pid1: "unreadable" },
      "other",
    ],
    [
      "init_net's fixed inode (0xEFFFFFF9) on current kernels",
      { max: "absent", timeouts: "absent", netns_self: "net:[4026531833]", netns_pid1: "unreadable" },
      "initial",
    ],
    [
      "a dynamic inode equal to PID 1's (older kernels)",
      { max: "absent", timeouts: "absent", netns_self: "net:[4026531992]", netns_pid1: "net:[4026531992]" },
      "initial",
    ],
    [
      "a dynamic inode different from PID 1's",
      { max: "absent", timeouts: "absent", netns_self: "net:[4026532300]", netns_pid1: "net:[4026531992]" },
      "other",
    ],
    [
      "PID 1 unreadable, max writable",
      { max: "writable", timeouts: "writable", netns_self: "net:[4026532300]", netns_pid1: "unreadable" },
      "initial",
    ],
    [
      "PID 1 unreadable, module absent",
      { max: "absent", timeouts: "absent", netns_self: "net:[4026532300]", netns_pid1: "unreadable" },
      "unknown",
    ],
    [
      "nothing writable (not root)",
      { max: "read-only", timeouts: "read-only", netns_self: "net:[4026532300]", netns_pid1: "unreadable" },
      "unknown",
    ],
  ])("netns: %s → %s", (_what, fields, expected) => {
    expect(detectNetns(fields)).toBe(expected);
  });
});

describe("MemTotal parser", () => {
  it("reads this machine's /proc/meminfo", () => {
    expect(parseMemTotalKb(MEMINFO)).toBe(24684096);
    expect(memTotalProbe.parse(MEMINFO, undefined)).toBe(24684096);
  });

  it.each([
    ["no MemTotal line", MEMINFO.replace(/^MemTotal:.*\n/m, "")],
    ["a zero", memInfoKb(0)],
    ["empty output", ""],
  ])("refuses %s", (_what, raw) => {
    expect(() => parseMemTotalKb(raw)).toThrow(ProbeParseError);
  });
});

describe("conntrack memory bound", () => {
  it.each<[number, number, number]>([
    // max, buckets, bytes
    [1048576, 262144, 1048576 * 320 + 262144 * 8],
    [262144, 262144, 262144 * 328],
    [1024, 1024, 1024 * 328],
  ])("a full table of %i entries and %i buckets takes %i bytes", (max, buckets, bytes) => {
    expect(conntrackTableBytes(max, buckets)).toBe(bytes);
    expect(ENTRY_BYTES).toBe(320);
    expect(BUCKET_BYTES).toBe(8);
  });

  it.each<[string, number, number, number, number, boolean]>([
    // what, max, buckets, MemTotal bytes, percent, ok
    ["the default on this machine (23.5 GiB)", 1048576, 262144, 24684096 * 1024, 5, true],
    ["the default on a 4 GiB host", 1048576, 262144, 4 * GIB, 5, false],
    ["the default on a 4 GiB host at 10%", 1048576, 262144, 4 * GIB, 10, true],
    ["the default on an 8 GiB host", 1048576, 262144, 8 * GIB, 5, true],
  ])("%s: ok=%s", (_what, max, buckets, mem, percent, ok) => {
    expect(memoryBound(max, buckets, mem, percent).ok).toBe(ok);
  });

  it("the largest allowed max fits exactly, one more entry does not", () => {
    const mem = 4 * GIB;
    const largest = largestMaxWithin(mem, 5, 262144);
    expect(largest).toBe(664535);
    expect(memoryBound(largest, 262144, mem, 5).ok).toBe(true);
    expect(memoryBound(largest + 1, 262144, mem, 5).ok).toBe(false);
    expect(largestMaxWithin(1024 * 1024, 0.1, 262144)).toBe(0);
  });
});

describe("conntrack on this machine's initial netns (built-in nf_conntrack)", () => {
  const f = hostFacts(PROBE.initial);

  it("writes the four files, resizes the hash live, then sets the sysctls, in that order; no modprobe", () => {
    const p = plan({ hashsize: 131072 }, f);
    expect(summary(p)).toEqual([
      `file ${PATHS.modulesLoad}`,
      `file ${PATHS.modprobe}`,
      `file ${PATHS.sysctl}`,
      `file ${PATHS.udev}`,
      "command sh -c echo 131072 > /sys/module/nf_conntrack/parameters/hashsize",
      `sysctl ${KEYS.nf_conntrack_max}=1048576`,
      `sysctl ${KEYS.tcp_timeout_time_wait}=60`,
      `sysctl ${KEYS.tcp_timeout_established}=86400`,
    ]);
    expect(p.changes[4]).toMatchObject({
      description: "resize the conntrack hash live: 262,144 → 131,072 buckets (a sysfs module parameter, not a file)",
    });
  });

  it("needs no hashsize command when the live hash already has that size", () => {
    expect(summary(plan({}, f)).filter((c) => c.startsWith("command"))).toEqual([]);
  });

  it("checks every file, every sysctl, the module and the hashsize", () => {
    const p = plan({}, f);
    expect(
      withoutBootChecks(p.checks).map((c) =>
        c.kind === "file"
          ? c.path
          : c.kind === "sysctl"
            ? `${c.key}=${c.expected}`
            : `${c.label}: ${c.field} ${c.compare} ${c.expected}`,
      ),
    ).toEqual([
      PATHS.modulesLoad,
      PATHS.modprobe,
      PATHS.sysctl,
      PATHS.udev,
      `${KEYS.nf_conntrack_max}=1048576`,
      `${KEYS.tcp_timeout_time_wait}=60`,
      `${KEYS.tcp_timeout_established}=86400`,
      "nf_conntrack loaded: loaded equal true",
      "nf_conntrack hashsize: hashsize equal 262144",
    ]);
  });

  it("says the module is built in, that modprobe.d doesn't apply to it, and what the table costs", () => {
    const notes = plan({}, f).notes.map((n) => n.text);
    expect(notes).toEqual([
      "nf_conntrack is built into kernel 6.18.44-fc-v595: its keys exist before systemd-sysctl runs, so /etc/sysctl.d applies at boot by itself; the modules-load entry and the udev rule matter only for a kernel that ships it as a module",
      "a built-in nf_conntrack ignores /etc/modprobe.d: add nf_conntrack.hashsize=262144 to the kernel command line to keep it across reboots",
      "a full conntrack table takes 322.0 MiB, 1.34% of 23.5 GiB MemTotal (limit 5%)",
    ]);
  });

  it("refuses a max whose table exceeds the memory share, naming the numbers and the fix", () => {
    expect(planError({}, hostFacts(PROBE.initial, { meminfo: memInfoKb(4 * 1024 * 1024) }))).toBe(
      "nf_conntrack_max 1,048,576 would let a full conntrack table take 322.0 MiB (1,048,576 entries × 320 bytes + 262,144 buckets × 8 bytes), " +
        "7.86% of this host's 4.0 GiB MemTotal, above max_memory_percent 5%: set nf_conntrack_max to at most 664,535 for this host, or raise max_memory_percent",
    );
    expect(
      plan({ max_memory_percent: 10 }, hostFacts(PROBE.initial, { meminfo: memInfoKb(4 * 1024 * 1024) })).refusals,
    ).toEqual([]);
    expect(
      plan({ nf_conntrack_max: null }, hostFacts(PROBE.initial, { meminfo: memInfoKb(256 * 1024) })).refusals,
    ).toEqual([]);
  });

  it("bounds by the live hash size when hashsize is null", () => {
    const f2 = hostFacts(withFields(PROBE.initial, { hashsize: "4194304" }), { meminfo: memInfoKb(8 * 1024 * 1024) });
    // 1,250,000 entries fit in 5% of 8 GiB with 262,144 buckets, not with the host's 4,194,304
    expect(plan({ hashsize: 262144, nf_conntrack_max: 1250000 }, f2).refusals).toEqual([]);
    expect(planError({ hashsize: null, nf_conntrack_max: 1250000 }, f2)).toMatch(/4,194,304 buckets × 8 bytes/);
  });

  it("refuses when MemTotal can't be read", () => {
    const f2 = hostFacts(PROBE.initial);
    f2.probes![memTotalProbe.name] = { ok: false, error: '/proc/meminfo has no "MemTotal: N kB" line' };
    expect(planError({}, f2)).toMatch(
      /^cannot read MemTotal from \/proc\/meminfo: .*: cannot bound nf_conntrack_max by the host's memory$/,
    );
  });
});

describe("conntrack on a host whose nf_conntrack module is not loaded yet", () => {
  const f = hostFacts(MODULE_ABSENT);

  it("leaves a host that does not use nf_conntrack alone, unless load_module asks", () => {
    const p = plan({}, f);
    expect(p.changes).toEqual([]);
    expect(p.checks).toEqual([]);
    expect(p.refusals).toEqual([]);
    expect(p.notes.map((n) => n.text)).toEqual([
      "nf_conntrack is not in use on this host (neither loaded nor built into kernel 6.1.0-41-amd64): nothing tracks connections, so there is no table to size. Set load_module: true to load it and tune it anyway",
    ]);
  });

  it("writes the module option first, then loads the module, then sets the sysctls that now exist", () => {
    expect(summary(plan({ load_module: true }, f))).toEqual([
      `file ${PATHS.modulesLoad}`,
      `file ${PATHS.modprobe}`,
      `file ${PATHS.sysctl}`,
      `file ${PATHS.udev}`,
      "command modprobe nf_conntrack",
      `sysctl ${KEYS.nf_conntrack_max}=1048576`,
      `sysctl ${KEYS.tcp_timeout_time_wait}=60`,
      `sysctl ${KEYS.tcp_timeout_established}=86400`,
    ]);
    expect(
      plan({ load_module: true }, f)
        .changes.filter((c) => c.kind === "sysctl")
        .every((c) => c.kind === "sysctl" && c.before === null),
    ).toBe(true);
  });

  it("loads the module even when every value is left alone", () => {
    const p = plan(
      {
        load_module: true,
        nf_conntrack_max: null,
        hashsize: null,
        tcp_timeout_time_wait: null,
        tcp_timeout_established: null,
      },
      f,
    );
    expect(summary(p)).toEqual([`file ${PATHS.modulesLoad}`, "command modprobe nf_conntrack"]);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    [
      "a non-initial netns",
      { netns_self: "net:[4026532300]", netns_pid1: "net:[4026531992]" },
      /^nf_conntrack is not loaded, and this host is not in the initial network namespace \(a container\): a kernel module belongs to the whole machine; load it on the host/,
    ],
    [
      "a kernel without module support",
      { module_support: "no" },
      /^nf_conntrack is neither built into kernel 6\.1\.0-41-amd64 nor loadable \(no \/proc\/modules/,
    ],
    [
      "no modprobe",
      { modprobe: "no", loadable: "no" },
      /^nf_conntrack is not loaded and modprobe is not installed: install kmod/,
    ],
    [
      "a module modprobe can't find",
      { loadable: "no" },
      /^nf_conntrack is not loaded and `modprobe -n nf_conntrack` cannot find it for kernel 6\.1\.0-41-amd64: install the modules/,
    ],
  ])("refuses %s, naming why the module can't load", (_what, over, message) => {
    expect(planError({ load_module: true }, hostFacts(withFields(MODULE_ABSENT, over)))).toMatch(message);
  });
});

describe("conntrack in a fleet host (a non-initial network namespace)", () => {
  const f = hostFacts(PROBE.fleetRoot);
  const timeoutsOnly = { nf_conntrack_max: null, hashsize: null };

  it("refuses nf_conntrack_max with the read-only-namespace cause and the fix", () => {
    expect(planError({ hashsize: null }, f)).toBe(NAMESPACE_READ_ONLY);
    expect(NAMESPACE_READ_ONLY).toBe(
      "nf_conntrack_max is read-only in this network namespace (a container): set it on the host that owns the namespace, or set nf_conntrack_max: null",
    );
  });

  it("refuses hashsize: it is one value for the whole machine", () => {
    expect(planError({ nf_conntrack_max: null }, f)).toMatch(
      /^hashsize is one value for the whole machine \(\/sys\/module\/nf_conntrack\/parameters\/hashsize\) and this host is not in the initial network namespace/,
    );
  });

  it("names every cause at once", () => {
    expect(planError({}, f).split("; ")).toHaveLength(2);
  });

  it("in a container whose /sys hides the modules, the tracker's sysctls show it in use: its timeouts are tuned", () => {
    const p = plan(timeoutsOnly, hostFacts(CONTAINER));
    expect(p.refusals).toEqual([]);
    expect(summary(p)).toContain(`sysctl ${KEYS.tcp_timeout_established}=86400`);
    expect(p.changes.some((c) => c.kind === "command")).toBe(false);
  });

  it("with both left alone, sets the per-namespace timeouts, writes the files and the udev rule; no command", () => {
    const p = plan(timeoutsOnly, f);
    expect(summary(p)).toEqual([
      `file ${PATHS.modulesLoad}`,
      `file ${PATHS.sysctl}`,
      `file ${PATHS.udev}`,
      `sysctl ${KEYS.tcp_timeout_time_wait}=60`,
      `sysctl ${KEYS.tcp_timeout_established}=86400`,
    ]);
    expect(settings(fileContent(p, PATHS.sysctl))).toEqual([
      [KEYS.tcp_timeout_time_wait, "60"],
      [KEYS.tcp_timeout_established, "86400"],
    ]);
    expect(p.notes.map((n) => n.text)).toContain(
      "this host is not in the initial network namespace: nf_conntrack_max and hashsize belong to the machine and are left alone; only the per-namespace timeouts are set here",
    );
  });

  it("refuses a login that can't write the sysctls", () => {
    expect(planError(timeoutsOnly, hostFacts(PROBE.fleetUnprivileged))).toBe(
      "the net.netfilter sysctls are read-only for this login (not root, or /proc/sys mounted read-only as in many containers): set ansible_become: true or log in as root; in a container, set them on the host",
    );
  });

  it("refuses when the sysctls are hidden although the module is loaded", () => {
    expect(
      planError(timeoutsOnly, hostFacts(withFields(PROBE.fleetRoot, { max: "absent", timeouts: "absent" }))),
    ).toMatch(/^nf_conntrack is loaded but its net\.netfilter sysctls do not exist in this network namespace/);
  });

  it("refuses when the probe itself failed", () => {
    const broken = hostFacts(PROBE.fleetRoot);
    broken.probes!.conntrack = { ok: false, error: "conntrack probe printed no module= line" };
    expect(planError(timeoutsOnly, broken)).toBe(
      "cannot read nf_conntrack's state on this host: conntrack probe printed no module= line",
    );
  });
});

describe("conntrack hashsize outside a container", () => {
  it.each<[string, Record<string, string>, RegExp]>([
    [
      "hashsize unreadable (not root)",
      { hashsize: "unreadable" },
      /^cannot read \/sys\/module\/nf_conntrack\/parameters\/hashsize \(readable by root only\)/,
    ],
    [
      "hashsize not writable and different",
      { hashsize: "65536", hashsize_writable: "no" },
      /is not writable \(not root, or \/sys mounted read-only/,
    ],
  ])("%s", (_what, over, message) => {
    expect(planError({}, hostFacts(withFields(PROBE.initial, over)))).toMatch(message);
  });

  it("a read-only hashsize that already has the value is fine", () => {
    expect(plan({}, hostFacts(withFields(PROBE.initial, { hashsize_writable: "no" }))).refusals).toEqual([]);
  });
});

describe("conntrack idempotence", () => {
  it.each<[string, Partial<ConntrackParams>, Facts]>([
    ["this machine, defaults", {}, hostFacts(PROBE.initial)],
    ["this machine, a new hash size", { hashsize: 524288 }, hostFacts(PROBE.initial)],
    ["a fleet host, timeouts only", { nf_conntrack_max: null, hashsize: null }, hostFacts(PROBE.fleetRoot)],
    ["a module not loaded yet", { load_module: true }, hostFacts(MODULE_ABSENT)],
    [
      "a module not loaded yet, only timeouts",
      { load_module: true, nf_conntrack_max: null, hashsize: null },
      hostFacts(MODULE_ABSENT),
    ],
  ])("%s: a second plan after apply has zero changes and verify passes", (_what, over, before) => {
    const first = plan(over, before);
    expect(first.changes.length).toBeGreaterThan(0);
    const after = appliedFacts(first, before);
    const second = plan(over, after);
    expect(second.changes).toEqual([]);
    expect(second.checks).toEqual(first.checks);
    expect(evaluateChecks(plan(over, after, "verify").checks, after).filter((r) => !r.ok)).toEqual([]);
  });

  it("verify catches a drifted timeout, a resized hash and an edited file", () => {
    const before = hostFacts(PROBE.initial);
    const first = plan({}, before);
    const after = appliedFacts(first, before);
    after.sysctl[KEYS.tcp_timeout_established] = "432000";
    stateOf(after).hashsize = 65536;
    after.files[PATHS.udev] = `${after.files[PATHS.udev]}# edited\n`;
    const failed = evaluateChecks(plan({}, after, "verify").checks, after).filter((r) => !r.ok);
    expect(
      failed.map((r) => [
        r.check.kind === "probe" ? r.check.label : r.check.kind === "sysctl" ? r.check.key : r.check.path,
        r.actual === null ? null : r.actual.slice(0, 20),
      ]),
    ).toEqual([
      [PATHS.udev, `${after.files[PATHS.udev]}`.slice(0, 20)],
      [KEYS.tcp_timeout_established, "432000"],
      ["nf_conntrack hashsize", "65536"],
    ]);
  });

  it("removes a file left from an earlier run once its params are null, and checks it stays gone", () => {
    const before = hostFacts(PROBE.initial);
    const after = appliedFacts(plan({}, before), before);
    const p = plan(
      { hashsize: null, nf_conntrack_max: null, tcp_timeout_time_wait: null, tcp_timeout_established: null },
      after,
    );
    expect(summary(p)).toEqual([
      `command rm -f -- ${PATHS.modprobe}`,
      `command rm -f -- ${PATHS.sysctl}`,
      `command rm -f -- ${PATHS.udev}`,
    ]);
    expect(
      p.checks.filter((c) => c.kind === "file" && c.expected === null).map((c) => c.kind === "file" && c.path),
    ).toEqual([PATHS.modprobe, PATHS.sysctl, PATHS.udev]);
    const removed = structuredClone(after);
    for (const path of [PATHS.modprobe, PATHS.sysctl, PATHS.udev]) removed.files[path] = null;
    expect(
      plan(
        { hashsize: null, nf_conntrack_max: null, tcp_timeout_time_wait: null, tcp_timeout_established: null },
        removed,
      ).changes,
    ).toEqual([]);
  });
});

describe("conntrack rendered files", () => {
  const p = plan({}, hostFacts(PROBE.initial));
  const valueLines: Record<string, RegExp> = {
    [PATHS.modulesLoad]: /^nf_conntrack$/,
    [PATHS.modprobe]: /^options /,
    [PATHS.udev]: /^ACTION==/,
  };

  it.each(Object.values(PATHS))(
    "%s names the role, says it is managed, says how to undo it, and explains every value",
    (path) => {
      const content = fileContent(p, path);
      const lines = content.split("\n");
      expect(lines[0]).toBe(
        "# Managed by provision, role conntrack. Do not edit: the next `provision run` rewrites this file.",
      );
      expect(content).toMatch(/^# Undo: /m);
      expect(content.endsWith("\n")).toBe(true);
      expect(content.endsWith("\n\n")).toBe(false);
      const values = lines.filter((l) => l !== "" && !l.startsWith("#"));
      expect(values.length).toBeGreaterThan(0);
      for (const value of values) expect(lines[lines.indexOf(value) - 1], value).toMatch(/^#/);
      if (valueLines[path]) expect(values.every((l) => valueLines[path]!.test(l))).toBe(true);
      for (const line of lines.filter((l) => l.startsWith("#"))) expect(line.length, line).toBeLessThanOrEqual(110);
    },
  );

  it("the sysctl drop-in has a why before every key and the table's cost", () => {
    const content = fileContent(p, PATHS.sysctl);
    expect(settingsWithoutComment(content)).toEqual([]);
    expect(settings(content)).toEqual([
      [KEYS.nf_conntrack_max, "1048576"],
      [KEYS.tcp_timeout_time_wait, "60"],
      [KEYS.tcp_timeout_established, "86400"],
    ]);
    expect(content).toContain("# Full, this table takes about 322.0 MiB; hash chains then average 8.0 entries.");
    expect(content.replace(/\n# /g, " ")).toContain("nf_conntrack: table full, dropping packet");
  });

  it("the module option and the udev rule say exactly what they do", () => {
    expect(fileContent(p, PATHS.modprobe)).toMatch(/\noptions nf_conntrack hashsize=262144\n$/);
    expect(fileContent(p, PATHS.udev)).toMatch(
      /\nACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN\+="\/lib\/systemd\/systemd-sysctl --prefix=\/net\/netfilter"\n$/,
    );
  });

  it("without systemd-sysctl the rule reloads the role's own file with sysctl", () => {
    const f = hostFacts(withFields(PROBE.initial, { systemd_sysctl: "", sysctl: "/usr/sbin/sysctl" }));
    expect(fileContent(plan({}, f), PATHS.udev)).toMatch(
      /RUN\+="\/usr\/sbin\/sysctl -q -p \/etc\/sysctl\.d\/60-provision-conntrack\.conf"\n$/,
    );
  });

  it("without any sysctl tool there is no rule, and a note says so", () => {
    const p2 = plan({}, hostFacts(withFields(PROBE.initial, { systemd_sysctl: "", sysctl: "" })));
    expect(summary(p2)).not.toContain(`file ${PATHS.udev}`);
    expect(p2.notes.map((n) => n.text).join("\n")).toContain(
      `no systemd-sysctl or sysctl binary on this host: ${PATHS.udev} is not written`,
    );
  });

  it("leaves out what is null", () => {
    const p2 = plan({ nf_conntrack_max: null, hashsize: null, tcp_timeout_time_wait: null }, hostFacts(PROBE.initial));
    expect(summary(p2)).toEqual([
      `file ${PATHS.modulesLoad}`,
      `file ${PATHS.sysctl}`,
      `file ${PATHS.udev}`,
      `sysctl ${KEYS.tcp_timeout_established}=86400`,
    ]);
    expect(settings(fileContent(p2, PATHS.sysctl))).toEqual([[KEYS.tcp_timeout_established, "86400"]]);
  });
});

describe("conntrack facts", () => {
  it("asks for the three sysctls, its four files and both probes", () => {
    expect(conntrack.facts(paramsOf(conntrack) as unknown as ConntrackParams)).toEqual([
      { kind: "sysctl", key: KEYS.nf_conntrack_max },
      { kind: "sysctl", key: KEYS.tcp_timeout_time_wait },
      { kind: "sysctl", key: KEYS.tcp_timeout_established },
      { kind: "file", path: PATHS.modulesLoad },
      { kind: "file", path: PATHS.modprobe },
      { kind: "file", path: PATHS.sysctl },
      { kind: "file", path: PATHS.udev },
      { kind: "probe", probe: conntrackProbe },
      { kind: "probe", probe: memTotalProbe },
    ]);
  });
});

describe("conntrack validate()", () => {
  const validate = conntrack.validate!;

  it.each<
    [string, Partial<ConntrackParams>, Array<{ param: string; severity: string; problem?: RegExp; fix?: string }>]
  >([
    ["the defaults", {}, []],
    [
      "everything null",
      { nf_conntrack_max: null, hashsize: null, tcp_timeout_time_wait: null, tcp_timeout_established: null },
      [],
    ],
    ["max = 8 × hashsize", { nf_conntrack_max: 2097152, hashsize: 262144 }, []],
    [
      "hashsize above max",
      { nf_conntrack_max: 65536, hashsize: 262144 },
      [
        {
          param: "hashsize",
          severity: "warning",
          problem: /^hashsize 262,144 is above nf_conntrack_max 65,536/,
          fix: "use about nf_conntrack_max / 4, e.g. 16,384",
        },
      ],
    ],
    [
      "max above 8 × hashsize",
      { nf_conntrack_max: 4194304, hashsize: 262144 },
      [
        {
          param: "hashsize",
          severity: "warning",
          problem: /averages 32 entries per hash chain/,
          fix: "raise hashsize to at least 524,288 (nf_conntrack_max / 8), ideally nf_conntrack_max / 4",
        },
      ],
    ],
    [
      "a short established timeout",
      { tcp_timeout_established: 1800 },
      [{ param: "tcp_timeout_established", severity: "warning", problem: /idle for more than 30 min/ }],
    ],
  ])("%s", (_what, over, expected) => {
    const problems = validate(paramsOf(conntrack, over) as unknown as ConntrackParams);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(problems[i]).toMatchObject({ param: e.param, severity: e.severity, ...(e.fix ? { fix: e.fix } : {}) });
      if (e.problem) expect(problems[i]!.problem).toMatch(e.problem);
    });
  });
});

describe("conntrack schema", () => {
  function check(yaml: string): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    const file = parseYamlText(yaml, "vars.yaml", problems)!;
    validateAgainstSchema(conntrack.schema, file.data, file, [], problems);
    return problems;
  }

  it("has these defaults, and they are valid", () => {
    expect(paramsOf(conntrack)).toEqual({
      nf_conntrack_max: 1048576,
      hashsize: 262144,
      tcp_timeout_time_wait: 60,
      tcp_timeout_established: 86400,
      max_memory_percent: 5,
      load_module: false,
    });
    expect(
      validateAgainstSchema(conntrack.schema, paramsOf(conntrack), parseYamlText("{}", "d.yaml", [])!, [], []),
    ).toBe(true);
  });

  it.each([
    ["nulls", "nf_conntrack_max: null\nhashsize: ~\ntcp_timeout_time_wait: null\ntcp_timeout_established: null\n", []],
    [
      "a max too small",
      "nf_conntrack_max: 100\n",
      ["use an integer from 1024 to 67108864, or null to leave the host's value (required inside a container)"],
    ],
    [
      "a shell word for hashsize",
      "hashsize: '1; reboot'\n",
      [
        "use a multiple of 8192 from 8192 to 16777216 (about nf_conntrack_max / 4), e.g. 262144, or null to leave the host's value",
      ],
    ],
    [
      "a fractional hashsize",
      "hashsize: 8192.5\n",
      [
        "use a multiple of 8192 from 8192 to 16777216 (about nf_conntrack_max / 4), e.g. 262144, or null to leave the host's value",
        "use a multiple of 8192 from 8192 to 16777216 (about nf_conntrack_max / 4), e.g. 262144, or null to leave the host's value",
      ],
    ],
    ["a zero memory share", "max_memory_percent: 0\n", ["use a percentage above 0 and at most 50, e.g. 5"]],
    [
      "an established timeout above the jiffies limit",
      "tcp_timeout_established: 3000000\n",
      ["use seconds from 300 to 1296000, well above your keepalive interval (86400 = 1 day), or null"],
    ],
  ])("%s", (_what, yaml, fixes) => {
    expect(check(yaml as string).map((p) => p.fix)).toEqual(fixes);
  });
});

describe("conntrack hashsize schema", () => {
  it.each([
    [262144, true],
    [8192, true],
    [300000, false],
    [4096, false],
  ])(
    "hashsize %i valid: %s (the kernel rounds to whole pages of buckets, so other values never settle)",
    (hashsize, valid) => {
      const problems: ConfigProblem[] = [];
      const source = parseYamlText(`hashsize: ${hashsize}\n`, "vars.yaml", problems)!;
      expect(validateAgainstSchema(conntrack.schema, source.data, source, [], problems)).toBe(valid);
      if (!valid) expect(problems[0]!.fix).toMatch(/multiple of 8192/);
    },
  );
});
