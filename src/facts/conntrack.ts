import { defineProbe, ProbeParseError } from "./probe.js";

const NETFILTER = "/proc/sys/net/netfilter";
const MODULE_DIR = "/sys/module/nf_conntrack";
export const HASHSIZE_PATH = `${MODULE_DIR}/parameters/hashsize`;

/** How a /proc/sys key looks to the login that will write it. */
export type KeyAccess = "absent" | "writable" | "read-only";

export interface ConntrackState {
  /**
   * builtin: /sys/module/nf_conntrack without initstate; loaded: a loaded module (has initstate);
   * in-use: no /sys/module/nf_conntrack, yet its sysctls exist — a container whose /sys hides the
   * machine's modules (systemd-nspawn, many runtimes): the tracker runs, built in or loaded.
   */
  module: "builtin" | "loaded" | "in-use" | "absent";
  /** In use: loaded or built in (what verify checks after a run). */
  loaded: boolean;
  max: KeyAccess;
  /** A per-namespace key, to tell "not root / read-only /proc/sys" from "read-only because of the namespace". */
  timeouts: KeyAccess;
  hashsize: number | null;
  hashsizeWritable: boolean;
  netns: "initial" | "other" | "unknown";
  /** /proc/modules exists: the kernel can load modules at all. */
  moduleSupport: boolean;
  modprobe: boolean;
  /** `modprobe -n nf_conntrack` found the module (only asked when it is absent). */
  loadable: boolean;
  /** The binary a udev rule can run to apply sysctl.d when the module loads; null when there is none. */
  sysctlApplier: { kind: "systemd-sysctl" | "sysctl"; path: string } | null;
  kernel: string;
}

/**
 * init_net has a fixed namespace inode (PROC_NET_INIT_INO, 0xEFFFFFF9) on recent kernels; every
 * other namespace gets one from PROC_DYNAMIC_FIRST (0xF0000000) up, so a number below that is init_net.
 */
const PROC_DYNAMIC_FIRST = 0xf0000000;

/** Absolute paths of plain characters only: they end up in a udev rule and must not carry quotes or spaces. */
const SAFE_PATH = /^\/[A-Za-z0-9_./-]+$/;

const ACCESS = `access() { if [ ! -e "$1" ]; then echo absent; elif [ -w "$1" ]; then echo writable; else echo read-only; fi; }`;

/**
 * Module state, namespace, writability and tools in one go. `[ -w ]` on /proc/sys honours the
 * kernel's own mode (root included), so nf_conntrack_max shows read-only in a non-initial netns.
 */
export const conntrackProbe = defineProbe({
  name: "conntrack",
  script: () =>
    [
      ACCESS,
      `echo "max=$(access ${NETFILTER}/nf_conntrack_max)"`,
      `echo "timeouts=$(access ${NETFILTER}/nf_conntrack_tcp_timeout_established)"`,
      `if [ -d ${MODULE_DIR} ]; then if [ -e ${MODULE_DIR}/initstate ]; then echo module=loaded; else echo module=builtin; fi; else echo module=absent; fi`,
      `if [ -r ${HASHSIZE_PATH} ]; then echo "hashsize=$(cat ${HASHSIZE_PATH})"; elif [ -e ${HASHSIZE_PATH} ]; then echo hashsize=unreadable; else echo hashsize=absent; fi`,
      `if [ -w ${HASHSIZE_PATH} ]; then echo hashsize_writable=yes; else echo hashsize_writable=no; fi`,
      `echo "netns_self=$(readlink /proc/self/ns/net 2>/dev/null || echo unreadable)"`,
      `echo "netns_pid1=$(readlink /proc/1/ns/net 2>/dev/null || echo unreadable)"`,
      `if [ -e /proc/modules ]; then echo module_support=yes; else echo module_support=no; fi`,
      `if command -v modprobe >/dev/null 2>&1; then echo modprobe=yes; else echo modprobe=no; fi`,
      `if [ ! -d ${MODULE_DIR} ] && command -v modprobe >/dev/null 2>&1 && modprobe -n -q nf_conntrack >/dev/null 2>&1; then echo loadable=yes; else echo loadable=no; fi`,
      `for p in /lib/systemd/systemd-sysctl /usr/lib/systemd/systemd-sysctl; do if [ -x "$p" ]; then echo "systemd_sysctl=$p"; break; fi; done`,
      `echo "sysctl=$(command -v sysctl 2>/dev/null)"`,
      `echo "kernel=$(uname -r)"`,
    ].join("\n"),
  parse: (raw): ConntrackState => {
    const fields = keyValues(raw);
    for (const key of [
      "max",
      "timeouts",
      "module",
      "hashsize",
      "netns_self",
      "netns_pid1",
      "module_support",
      "kernel",
    ]) {
      if (fields[key] === undefined) throw new ProbeParseError(`conntrack probe printed no ${key}= line`);
    }
    return conntrackState(fields);
  },
});

/** MemTotal from /proc/meminfo, in kB (the kernel's unit there is KiB). */
export const memTotalProbe = defineProbe({
  name: "conntrack-meminfo",
  script: () => "cat /proc/meminfo",
  /** MemTotal in kB. */
  parse: (raw): number => parseMemTotalKb(raw),
});

export function parseMemTotalKb(meminfo: string): number {
  const m = /^MemTotal:\s+(\d+) kB$/m.exec(meminfo);
  if (!m) throw new ProbeParseError('/proc/meminfo has no "MemTotal: N kB" line');
  const kb = Number(m[1]);
  if (!Number.isSafeInteger(kb) || kb <= 0)
    throw new ProbeParseError(`/proc/meminfo MemTotal ${m[1]} is not a positive number`);
  return kb;
}

function keyValues(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of raw.split("\n")) {
    const m = /^([a-z_0-9]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function access(v: string | undefined, name: string): KeyAccess {
  if (v === "absent" || v === "writable" || v === "read-only") return v;
  throw new ProbeParseError(`conntrack probe: ${name}=${v ?? ""} is not absent, writable or read-only`);
}

function namespaceInode(link: string | undefined): number | null {
  const m = /^net:\[(\d+)\]$/.exec(link ?? "");
  return m ? Number(m[1]) : null;
}

/**
 * Which network namespace the login is in. Strongest first: the kernel makes nf_conntrack_max 0444
 * only outside the initial namespace (while the per-namespace timeouts stay writable); init_net's
 * fixed inode; then PID 1's namespace, when we may read it (inside a container with its own PID
 * namespace PID 1 shares ours, so "same" is weaker than "different").
 */
export function detectNetns(f: Record<string, string>): ConntrackState["netns"] {
  if (f.max === "read-only" && f.timeouts === "writable") return "other";
  const self = namespaceInode(f.netns_self);
  const pid1 = namespaceInode(f.netns_pid1);
  if (self !== null && self < PROC_DYNAMIC_FIRST) return "initial";
  if (self !== null && pid1 !== null) return self === pid1 ? "initial" : "other";
  if (f.max === "writable") return "initial";
  return "unknown";
}

/** Pure: the probe's `key=value` lines as a typed state. */
function conntrackState(f: Record<string, string>): ConntrackState {
  const module = f.module;
  if (module !== "builtin" && module !== "loaded" && module !== "absent")
    throw new ProbeParseError(`conntrack probe: module=${module ?? ""} is unexpected`);
  const hashsize = /^\d+$/.test(f.hashsize ?? "") ? Number(f.hashsize) : null;
  const systemdSysctl = f.systemd_sysctl && SAFE_PATH.test(f.systemd_sysctl) ? f.systemd_sysctl : null;
  const sysctl = f.sysctl && SAFE_PATH.test(f.sysctl) ? f.sysctl : null;
  const sysctlsExist = f.max !== "absent" || f.timeouts !== "absent";
  const state = module === "absent" && sysctlsExist ? "in-use" : module;
  return {
    module: state,
    loaded: state !== "absent",
    max: access(f.max, "max"),
    timeouts: access(f.timeouts, "timeouts"),
    hashsize,
    hashsizeWritable: f.hashsize_writable === "yes",
    netns: detectNetns(f),
    moduleSupport: f.module_support === "yes",
    modprobe: f.modprobe === "yes",
    loadable: f.loadable === "yes",
    sysctlApplier: systemdSysctl
      ? { kind: "systemd-sysctl", path: systemdSysctl }
      : sysctl
        ? { kind: "sysctl", path: sysctl }
        : null,
    kernel: f.kernel ?? "",
  };
}
