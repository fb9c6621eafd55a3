import { sysctlDropinPath } from "../sysctl/dropin.js";
import { shQuote } from "../transport/shell.js";
import { defineProbe, ProbeParseError } from "./probe.js";

/**
 * Probes of the fd-limits role. Each script prints `key=value` lines; each parser turns them into a
 * typed value and refuses output without the lines the role reads. Every command that could read
 * stdin gets </dev/null: the gather script itself arrives on stdin and must not be eaten.
 */

// /proc is read with the shell's own `read`: every gather of every host runs these, and on a
// small VM each awk or cat costs about a millisecond of CPU.

/** systemd runs the host: PID 1 is systemd, or systemd's runtime directory exists. */
const SYSTEMD_RUNNING = `{ { pid1_comm=; read -r pid1_comm 2>/dev/null </proc/1/comm; [ "$pid1_comm" = systemd ]; } || [ -d /run/systemd/system ]; }`;

/** `Max open files  <soft>  <hard>  files` of /proc/<pid>/limits as two fields. */
const NOFILE_OF = `nofile_of() { while read -r w1 w2 w3 soft hard _; do [ "$w1 $w2 $w3" = "Max open files" ] && { echo "$2soft=$soft"; echo "$2hard=$hard"; }; done 2>/dev/null <"/proc/$1/limits"; return 0; }`;
/** The first word after `<key>:` in /proc/<pid>/status (e.g. PPid, the real Uid, CapEff). */
const STATUS_FIELD = `status_field() { while read -r k v _; do [ "$k" = "$2:" ] && { echo "$v"; return 0; }; done 2>/dev/null <"/proc/$1/status"; return 0; }`;

/** An rlimit as /proc/<pid>/limits, ulimit and systemctl show print it: a number, or RLIM_INFINITY. */
export type Limit = number | "unlimited";

export interface Nofile {
  soft: Limit;
  hard: Limit;
}

type Fields = Record<string, string>;

export function parseKeyValues(raw: string): Fields {
  const fields: Fields = {};
  for (const line of raw.split("\n")) {
    const m = /^([a-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!;
  }
  return fields;
}

function requireFields(probe: string, fields: Fields, names: string[], raw: string): Fields {
  const missing = names.filter((n) => fields[n] === undefined || fields[n] === "");
  if (missing.length > 0) {
    throw new ProbeParseError(
      `${probe}: no ${missing.join(", ")} in its output ${JSON.stringify(raw.trim().slice(0, 300))}`,
    );
  }
  return fields;
}

function notANumber(probe: string, name: string, value: string): ProbeParseError {
  return new ProbeParseError(`${probe}: ${name} is ${JSON.stringify(value)}, not a number`);
}

/** A limit the script printed, or undefined when it printed no such line. */
function limitField(probe: string, f: Fields, name: string): Limit | undefined {
  const v = f[name];
  if (v === undefined) return undefined;
  if (!/^(\d+|unlimited)$/.test(v)) throw notANumber(probe, name, v);
  return v === "unlimited" ? v : Number(v);
}

/** A field requireFields already found: a count (pid, uid, nr_open). */
function countField(probe: string, f: Fields, name: string): number {
  const v = f[name]!;
  if (!/^\d+$/.test(v)) throw notANumber(probe, name, v);
  return Number(v);
}

/** `<prefix>soft` and `<prefix>hard`, each where the script printed it. */
function nofileFields(probe: string, f: Fields, prefix = ""): Partial<Nofile> {
  const soft = limitField(probe, f, `${prefix}soft`);
  const hard = limitField(probe, f, `${prefix}hard`);
  return { ...(soft === undefined ? {} : { soft }), ...(hard === undefined ? {} : { hard }) };
}

/** fs.nr_open and fs.file-max, read for the raise-only targets and the at-least checks. */
export interface KernelFiles {
  /** At most 2,147,483,584 (the kernel's own ceiling on 64-bit). */
  nr_open: number;
  /** Decimal digits: up to LONG_MAX, beyond what a number holds exactly. */
  file_max: string;
}

export const FD_KERNEL_PROBE = defineProbe<KernelFiles>({
  name: "fd-limits-kernel",
  // cat, not `read`: dash reads a byte at a time, and a /proc/sys value answers only the first read.
  script: () => `printf 'nr_open=%s\\nfile_max=%s\\n' "$(cat /proc/sys/fs/nr_open)" "$(cat /proc/sys/fs/file-max)"`,
  parse(raw) {
    const f = requireFields("fd-limits-kernel", parseKeyValues(raw), ["nr_open", "file_max"], raw);
    const nrOpen = countField("fd-limits-kernel", f, "nr_open");
    if (!/^\d+$/.test(f.file_max!)) throw notANumber("fd-limits-kernel", "file_max", f.file_max!);
    return { nr_open: nrOpen, file_max: f.file_max! };
  },
});

/**
 * The SSH login this script runs in: the nearest sshd ancestor is the session process
 * ("sshd: user@notty"), which holds exactly what pam_limits gave the login — even when the script
 * runs under sudo, which restores or changes its own limits. The topmost sshd ancestor is the
 * listener: pam_limits runs in its children, so without CAP_SYS_RESOURCE no login can get a hard
 * limit above the listener's.
 */
export interface LoginState {
  /** Who the script runs as (0 under sudo). */
  euid: number;
  /** The login's user, uid and groups (`id -Gn`): whom pam_limits' lines apply to. */
  user: string;
  uid: number;
  groups: string[];
  /** What the login holds: its sshd session process's limits, or the script's own outside SSH. */
  nofile: Nofile;
  /** The sshd session process above the script; null when no sshd is above it. */
  session: number | null;
  /** The sshd listener that runs pam_limits for every login; null when no sshd is above the script. */
  sshd: { pid: number; hard: Limit; capSysResource: boolean } | null;
}

export const FD_LOGIN_PROBE = defineProbe<LoginState>({
  name: "fd-limits-login",
  script: () =>
    [
      NOFILE_OF,
      STATUS_FIELD,
      `is_sshd() { comm=; read -r comm 2>/dev/null <"/proc/$1/comm"; case "$comm" in sshd|sshd-session) return 0;; esac; return 1; }`,
      `echo "euid=$(id -u)"`,
      `p=$$; session=`,
      `while [ -n "$p" ] && [ "$p" -gt 1 ]; do if is_sshd "$p"; then session=$p; break; fi; p=$(status_field "$p" PPid); done`,
      `if [ -z "$session" ]; then echo session=none; echo "user=$(id -un)"; echo "uid=$(id -u)"; nofile_of $$ ""; exit 0; fi`,
      `listener=$session`,
      `while :; do pp=$(status_field "$listener" PPid); if [ -n "$pp" ] && [ "$pp" -gt 1 ] && is_sshd "$pp"; then listener=$pp; else break; fi; done`,
      `uid=$(status_field "$session" Uid)`,
      `user=$(getent passwd "$uid" </dev/null 2>/dev/null | cut -d: -f1); [ -n "$user" ] || user=$(id -nu "$uid" </dev/null 2>/dev/null)`,
      `echo "session=$session"; echo "uid=$uid"; echo "user=$user"`,
      `echo "groups=$(id -Gn "$user" </dev/null 2>/dev/null | tr ' ' ',')"`,
      `nofile_of "$session" ""`,
      `echo "sshd=$listener"`,
      `nofile_of "$listener" sshd_`,
      `echo "sshd_cap_eff=$(status_field "$listener" CapEff)"`,
    ].join("\n"),
  parse(raw) {
    const P = "fd-limits-login";
    const f = parseKeyValues(raw);
    const base = ["euid", "session", "user", "uid", "soft", "hard"];
    const ssh = f.session !== "none";
    requireFields(P, f, ssh ? [...base, "sshd", "sshd_hard", "sshd_cap_eff"] : base, raw);
    const nofile = nofileFields(P, f) as Nofile;
    const sshdHard = limitField(P, f, "sshd_hard");
    if (f.sshd_cap_eff !== undefined && !/^[0-9a-f]{1,16}$/.test(f.sshd_cap_eff)) {
      throw new ProbeParseError(`${P}: sshd_cap_eff ${JSON.stringify(f.sshd_cap_eff)} is not a capability mask`);
    }
    return {
      euid: countField(P, f, "euid"),
      user: f.user!,
      uid: countField(P, f, "uid"),
      groups: (f.groups ?? "").split(",").filter(Boolean),
      nofile,
      session: ssh ? countField(P, f, "session") : null,
      sshd: ssh
        ? { pid: countField(P, f, "sshd"), hard: sshdHard!, capSysResource: hasCapSysResource(f.sshd_cap_eff!) }
        : null,
    };
  },
});

const CAP_SYS_RESOURCE_BIT = 24n;

/** Bit 24 of a /proc/<pid>/status CapEff mask: may raise a hard limit and exceed it. */
export function hasCapSysResource(capEffHex: string): boolean {
  return ((BigInt(`0x${capEffHex}`) >> CAP_SYS_RESOURCE_BIT) & 1n) === 1n;
}

/** PID 1: whether systemd runs the host, and (where it does) the DefaultLimitNOFILE it loaded. */
export interface InitState {
  systemd: boolean;
  /** PID 1's command name, "(unknown)" when unreadable. */
  pid1: string;
  pid1Hard: Limit | null;
  /** Whether PID 1 may raise a hard limit; null when its CapEff was unreadable. */
  pid1CapSysResource: boolean | null;
  /** DefaultLimitNOFILE systemd loaded (where it runs), each part where systemctl printed it. */
  defaultNofile: Partial<Nofile>;
}

export const FD_INIT_PROBE = defineProbe<InitState>({
  name: "fd-limits-init",
  script: () =>
    [
      STATUS_FIELD,
      `pid1=; read -r pid1 2>/dev/null </proc/1/comm; echo "pid1=$pid1"`,
      `if ${SYSTEMD_RUNNING}; then echo systemd=yes; else echo systemd=no; fi`,
      `while read -r w1 w2 w3 _ hard _; do [ "$w1 $w2 $w3" = "Max open files" ] && echo "pid1_hard=$hard"; done 2>/dev/null </proc/1/limits`,
      `cap=$(status_field 1 CapEff); if [ -n "$cap" ]; then echo "pid1_cap_eff=$cap"; fi`,
      `if ${SYSTEMD_RUNNING}; then systemctl show -p DefaultLimitNOFILE -p DefaultLimitNOFILESoft </dev/null 2>/dev/null | sed -n 's/^DefaultLimitNOFILE=/default_hard=/p; s/^DefaultLimitNOFILESoft=/default_soft=/p'; fi`,
    ].join("\n"),
  parse(raw) {
    const f = requireFields("fd-limits-init", parseKeyValues(raw), ["systemd"], raw);
    if (f.systemd !== "yes" && f.systemd !== "no")
      throw new ProbeParseError(`fd-limits-init: systemd=${JSON.stringify(f.systemd)}`);
    const pid1Hard = limitField("fd-limits-init", f, "pid1_hard") ?? null;
    const cap = f.pid1_cap_eff && /^[0-9a-f]{1,16}$/.test(f.pid1_cap_eff) ? f.pid1_cap_eff : null;
    return {
      systemd: f.systemd === "yes",
      pid1: f.pid1 || "(unknown)",
      pid1Hard,
      pid1CapSysResource: cap === null ? null : hasCapSysResource(cap),
      defaultNofile: nofileFields("fd-limits-init", f, "default_"),
    };
  },
});

/** `nginx` → `nginx.service`; a name already ending in `.service` is kept. */
export function unitName(service: string): string {
  return service.endsWith(".service") ? service : `${service}.service`;
}

/**
 * What `pgrep -x` matches for a service where systemd does not run: the process name (comm) is the
 * unit name without `.service` or an instance, cut to the kernel's 15 characters; null for a template.
 */
export function processName(service: string): string | null {
  const base = unitName(service).slice(0, -".service".length);
  const name = base.split("@")[0]!;
  if (base.endsWith("@") || name === "") return null;
  return name.slice(0, 15);
}

/**
 * One named service: where systemd runs, the LimitNOFILE it loaded for the unit and its MainPID;
 * elsewhere the lowest-numbered live process with the service's name. A running process's /proc/<pid>/limits is
 * what it really got.
 */
export interface ServiceState {
  via: "systemd" | "pgrep";
  /** systemd's LoadState of the unit ("not-found": no unit file); null without systemd. */
  loadState: string | null;
  needReload: boolean;
  /** The LimitNOFILE systemd loaded for the unit, each part where systemctl printed it. */
  unitNofile: Partial<Nofile>;
  /** The running process (MainPID, or the lowest live match of pgrep) and what it holds; null when none runs. */
  process: { pid: number; nofile: Nofile } | null;
}

export const FD_SERVICE_PROBE = defineProbe<ServiceState>({
  name: "fd-limits-service",
  script(arg) {
    if (arg === undefined) throw new Error("fd-limits-service needs a service name");
    const unit = shQuote(unitName(arg));
    const comm = processName(arg);
    // The lowest-numbered live match: pgrep -o would also pick a zombie, whose limits mean nothing.
    const pgrep =
      comm === null
        ? "pid="
        : `pid=; for c in $(pgrep -x ${shQuote(comm.replace(/\./g, "\\."))} </dev/null 2>/dev/null); do case "$(sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null | cut -c1)" in Z|X|"") ;; *) pid=$c; break;; esac; done`;
    return [
      NOFILE_OF,
      `if ${SYSTEMD_RUNNING}; then`,
      `  echo via=systemd`,
      `  props=$(systemctl show -p MainPID -p LimitNOFILE -p LimitNOFILESoft -p NeedDaemonReload -p LoadState ${unit} </dev/null 2>/dev/null)`,
      `  printf '%s\\n' "$props" | sed -n 's/^LimitNOFILE=/unit_hard=/p; s/^LimitNOFILESoft=/unit_soft=/p; s/^NeedDaemonReload=/need_reload=/p; s/^LoadState=/load_state=/p'`,
      `  pid=$(printf '%s\\n' "$props" | sed -n 's/^MainPID=//p')`,
      `else`,
      `  echo via=pgrep`,
      `  ${pgrep}`,
      `fi`,
      `if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/limits" ]; then echo running=yes; echo "pid=$pid"; nofile_of "$pid" ""; else echo running=no; fi`,
    ].join("\n");
  },
  parse(raw) {
    const P = "fd-limits-service";
    const f = parseKeyValues(raw);
    const running = f.running === "yes";
    requireFields(P, f, running ? ["via", "running", "pid", "soft", "hard"] : ["via", "running"], raw);
    if (f.via !== "systemd" && f.via !== "pgrep") throw new ProbeParseError(`${P}: via=${JSON.stringify(f.via)}`);
    const nofile = nofileFields(P, f) as Nofile;
    return {
      via: f.via,
      loadState: f.load_state || null,
      needReload: f.need_reload === "yes",
      unitNofile: nofileFields(P, f, "unit_"),
      process: running ? { pid: countField(P, f, "pid"), nofile } : null,
    };
  },
});

/**
 * What a new PAM session of a named user gets: `su -l` goes through pam_limits like a login.
 * Only root can su without a password; otherwise only whether the user exists is reported.
 */
export interface UserState {
  exists: boolean;
  /** What `su -l` gave the new session; null when not read (no such user, or the probe is not root). */
  nofile: Nofile | null;
}

export const FD_USER_PROBE = defineProbe<UserState>({
  name: "fd-limits-user",
  script(arg) {
    if (arg === undefined) throw new Error("fd-limits-user needs a user name");
    return [
      `u=${shQuote(arg)}`,
      `if ! id -u "$u" </dev/null >/dev/null 2>&1; then echo exists=no; exit 0; fi`,
      `echo exists=yes`,
      `if [ "$(id -u)" != 0 ]; then echo checked=no; exit 0; fi`,
      `echo checked=yes`,
      `out=$(su -s /bin/sh -l "$u" -c 'echo soft=$(ulimit -Sn); echo hard=$(ulimit -Hn)' </dev/null 2>&1); rc=$?`,
      `if [ $rc -ne 0 ]; then echo "su -l $u failed (exit $rc): $out"; exit 1; fi`,
      `printf '%s\\n' "$out"`,
    ].join("\n");
  },
  parse(raw) {
    const f = requireFields("fd-limits-user", parseKeyValues(raw), ["exists"], raw);
    if (f.exists === "no") return { exists: false, nofile: null };
    requireFields("fd-limits-user", f, f.checked === "yes" ? ["checked", "soft", "hard"] : ["checked"], raw);
    const nofile = nofileFields("fd-limits-user", f) as Nofile;
    return { exists: true, nofile: f.checked === "yes" ? nofile : null };
  },
});

/** The one name every file of the role has: only a file with exactly this name is ever removed. */
export const FD_LIMITS_FILE_NAME = "60-provision-fd-limits.conf";
export const FD_LIMITS_PATHS = {
  sysctl: sysctlDropinPath("fd-limits"),
  limits: `/etc/security/limits.d/${FD_LIMITS_FILE_NAME}`,
  systemdDefault: `/etc/systemd/system.conf.d/${FD_LIMITS_FILE_NAME}`,
} as const;
const SERVICE_UNITS_DIR = "/etc/systemd/system";

export function serviceDropinPath(service: string): string {
  return `${SERVICE_UNITS_DIR}/${unitName(service)}.d/${FD_LIMITS_FILE_NAME}`;
}

/**
 * A drop-in directory the role can have written: one path component (so never `.` or `..`) of the
 * characters a service name may have, ending in `.service.d`. Services are the only unit type the
 * role writes drop-ins for.
 */
const SERVICE_DROPIN_PATH = new RegExp(
  `^${SERVICE_UNITS_DIR}/([A-Za-z0-9][A-Za-z0-9@._-]*\\.service)\\.d/${FD_LIMITS_FILE_NAME.replace(/\./g, "\\.")}$`,
);

/** The unit a path is the role's drop-in for, or null when the path is not one. */
export function serviceOfDropin(path: string): string | null {
  return SERVICE_DROPIN_PATH.exec(path)?.[1] ?? null;
}

/** Exactly one of the role's own files: the only paths the role may ever remove. */
export function isOwnFile(path: string): boolean {
  return Object.values(FD_LIMITS_PATHS).includes(path as never) || serviceOfDropin(path) !== null;
}

/**
 * Which of the role's own files exist: the fixed ones, and its drop-in in every service's `.d`
 * directory, whether or not the service is still in `services`, so files no longer wanted are found.
 * Directories with characters no service name has are counted, never listed.
 */
export function ownFilesCommand(root = ""): string {
  const fixed = Object.values(FD_LIMITS_PATHS).map((p) => shQuote(root + p));
  return [
    `for f in ${fixed.join(" ")} ${shQuote(root + SERVICE_UNITS_DIR)}/*.service.d/${FD_LIMITS_FILE_NAME}; do`,
    `  [ -e "$f" ] || [ -L "$f" ] || continue`,
    `  d=\${f%/*}; d=\${d##*/}`,
    `  case "$d" in *[!A-Za-z0-9@._-]*) echo skipped=1; continue;; esac`,
    `  printf 'file=%s\\n' "$f"`,
    `done`,
    `echo done=yes`,
  ].join("\n");
}

export interface OwnFiles {
  /** The role's own files on the host, in path order (only paths isOwnFile accepts). */
  files: string[];
  /** Files of that name found where the role never writes (counted, never listed). */
  skipped: number;
}

export const FD_FILES_PROBE = defineProbe<OwnFiles>({
  name: "fd-limits-files",
  script: () => ownFilesCommand(),
  parse(raw) {
    const lines = raw.split("\n");
    if (!lines.includes("done=yes"))
      throw new ProbeParseError(
        `fd-limits-files: the listing did not finish: ${JSON.stringify(raw.trim().slice(0, 300))}`,
      );
    const files = new Set<string>();
    let skipped = 0;
    for (const line of lines) {
      if (line === "skipped=1") skipped++;
      if (!line.startsWith("file=")) continue;
      const path = line.slice("file=".length);
      if (isOwnFile(path)) files.add(path);
      else skipped++;
    }
    return { files: [...files].sort(), skipped };
  },
});
