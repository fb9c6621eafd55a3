import { sysctlDropinPath } from "../sysctl/dropin.js";
import { shQuote } from "../transport/shell.js";
import { defineProbe, ProbeParseError, type Probe } from "./probe.js";

/**
 * Probes of the fd-limits role. Each prints `key=value` lines; the parsers keep those lines and
 * require the fields the role reads. Every command that could read stdin gets </dev/null: the
 * gather script itself arrives on stdin and must not be eaten.
 */

// /proc is read with the shell's own `read`: every gather of every host runs these, and on a
// small VM each awk or cat costs about a millisecond of CPU.

/** systemd runs the host: PID 1 is systemd, or systemd's runtime directory exists. */
const SYSTEMD_RUNNING = `{ { pid1_comm=; read -r pid1_comm 2>/dev/null </proc/1/comm; [ "$pid1_comm" = systemd ]; } || [ -d /run/systemd/system ]; }`;

/** `Max open files  <soft>  <hard>  files` of /proc/<pid>/limits as two fields. */
const NOFILE_OF = `nofile_of() { while read -r w1 w2 w3 soft hard _; do [ "$w1 $w2 $w3" = "Max open files" ] && { echo "$2soft=$soft"; echo "$2hard=$hard"; }; done 2>/dev/null <"/proc/$1/limits"; return 0; }`;
/** The first word after `<key>:` in /proc/<pid>/status (e.g. PPid, the real Uid, CapEff). */
const STATUS_FIELD = `status_field() { while read -r k v _; do [ "$k" = "$2:" ] && { echo "$v"; return 0; }; done 2>/dev/null <"/proc/$1/status"; return 0; }`;

export function parseKeyValues(raw: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of raw.split("\n")) {
    const m = /^([a-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!;
  }
  return fields;
}

function requireFields(probe: string, fields: Record<string, string>, names: string[], raw: string): Record<string, string> {
  const missing = names.filter((n) => fields[n] === undefined || fields[n] === "");
  if (missing.length > 0) {
    throw new ProbeParseError(`${probe}: no ${missing.join(", ")} in its output ${JSON.stringify(raw.trim().slice(0, 300))}`);
  }
  return fields;
}

const LIMIT_VALUE = /^(\d+|unlimited)$/;

function requireLimits(probe: string, fields: Record<string, string>, names: string[]): void {
  for (const n of names) {
    if (fields[n] !== undefined && !LIMIT_VALUE.test(fields[n]!)) throw new ProbeParseError(`${probe}: ${n} is ${JSON.stringify(fields[n])}, not a number`);
  }
}

/** fs.nr_open and fs.file-max, read for the raise-only targets and the at-least checks. */
export const FD_KERNEL_PROBE: Probe = defineProbe({
  name: "fd-limits-kernel",
  // cat, not `read`: dash reads a byte at a time, and a /proc/sys value answers only the first read.
  command: () => `printf 'nr_open=%s\\nfile_max=%s\\n' "$(cat /proc/sys/fs/nr_open)" "$(cat /proc/sys/fs/file-max)"`,
  parse(raw) {
    const f = requireFields("fd-limits-kernel", parseKeyValues(raw), ["nr_open", "file_max"], raw);
    requireLimits("fd-limits-kernel", f, ["nr_open", "file_max"]);
    return { nr_open: f.nr_open!, file_max: f.file_max! };
  },
});

/**
 * The SSH login this script runs in: the nearest sshd ancestor is the session process
 * ("sshd: user@notty"), which holds exactly what pam_limits gave the login — even when the script
 * runs under sudo, which restores or changes its own limits. The topmost sshd ancestor is the
 * listener: pam_limits runs in its children, so without CAP_SYS_RESOURCE no login can get a hard
 * limit above the listener's.
 */
export const FD_LOGIN_PROBE: Probe = defineProbe({
  name: "fd-limits-login",
  command: () =>
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
    const f = parseKeyValues(raw);
    const base = ["euid", "session", "user", "uid", "soft", "hard"];
    requireFields("fd-limits-login", f, f.session === "none" ? base : [...base, "sshd", "sshd_hard", "sshd_cap_eff"], raw);
    requireLimits("fd-limits-login", f, ["soft", "hard", "sshd_hard"]);
    if (f.sshd_cap_eff !== undefined && !/^[0-9a-f]{1,16}$/.test(f.sshd_cap_eff)) {
      throw new ProbeParseError(`fd-limits-login: sshd_cap_eff ${JSON.stringify(f.sshd_cap_eff)} is not a capability mask`);
    }
    const fields: Record<string, string> = {};
    for (const k of [...base, "groups", "sshd", "sshd_hard"]) if (f[k] !== undefined) fields[k] = f[k]!;
    if (f.sshd_cap_eff !== undefined) fields.sshd_cap_sys_resource = hasCapSysResource(f.sshd_cap_eff) ? "yes" : "no";
    return fields;
  },
});

const CAP_SYS_RESOURCE_BIT = 24n;

/** Bit 24 of a /proc/<pid>/status CapEff mask: may raise a hard limit and exceed it. */
export function hasCapSysResource(capEffHex: string): boolean {
  return ((BigInt(`0x${capEffHex}`) >> CAP_SYS_RESOURCE_BIT) & 1n) === 1n;
}

/** PID 1: whether systemd runs the host, and (where it does) the DefaultLimitNOFILE it loaded. */
export const FD_INIT_PROBE: Probe = defineProbe({
  name: "fd-limits-init",
  command: () =>
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
    if (f.systemd !== "yes" && f.systemd !== "no") throw new ProbeParseError(`fd-limits-init: systemd=${JSON.stringify(f.systemd)}`);
    requireLimits("fd-limits-init", f, ["pid1_hard", "default_hard", "default_soft"]);
    const fields: Record<string, string> = { systemd: f.systemd, pid1: f.pid1 || "(unknown)" };
    for (const k of ["pid1_hard", "default_hard", "default_soft"]) if (f[k]) fields[k] = f[k]!;
    if (f.pid1_cap_eff && /^[0-9a-f]{1,16}$/.test(f.pid1_cap_eff)) fields.pid1_cap_sys_resource = hasCapSysResource(f.pid1_cap_eff) ? "yes" : "no";
    return fields;
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
export const FD_SERVICE_PROBE: Probe = defineProbe({
  name: "fd-limits-service",
  command(arg) {
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
    const f = parseKeyValues(raw);
    requireFields("fd-limits-service", f, f.running === "yes" ? ["via", "running", "pid", "soft", "hard"] : ["via", "running"], raw);
    requireLimits("fd-limits-service", f, ["soft", "hard", "unit_soft", "unit_hard"]);
    const fields: Record<string, string> = {};
    for (const k of ["via", "running", "pid", "soft", "hard", "unit_soft", "unit_hard", "need_reload", "load_state"]) if (f[k]) fields[k] = f[k]!;
    if (fields.running === "no") delete fields.pid;
    return fields;
  },
});

/**
 * What a new PAM session of a named user gets: `su -l` goes through pam_limits like a login.
 * Only root can su without a password; otherwise only whether the user exists is reported.
 */
export const FD_USER_PROBE: Probe = defineProbe({
  name: "fd-limits-user",
  command(arg) {
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
  parse(raw): Record<string, string> {
    const f = requireFields("fd-limits-user", parseKeyValues(raw), ["exists"], raw);
    if (f.exists === "no") return { exists: "no" };
    requireFields("fd-limits-user", f, f.checked === "yes" ? ["checked", "soft", "hard"] : ["checked"], raw);
    requireLimits("fd-limits-user", f, ["soft", "hard"]);
    return f.checked === "yes" ? { exists: "yes", checked: "yes", soft: f.soft!, hard: f.hard! } : { exists: "yes", checked: "no" };
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
const SERVICE_DROPIN_PATH = new RegExp(`^${SERVICE_UNITS_DIR}/([A-Za-z0-9][A-Za-z0-9@._-]*\\.service)\\.d/${FD_LIMITS_FILE_NAME.replace(/\./g, "\\.")}$`);

/** The unit a path is the role's drop-in for, or null when the path is not one. */
export function serviceOfDropin(path: string): string | null {
  return SERVICE_DROPIN_PATH.exec(path)?.[1] ?? null;
}

/** Exactly one of the role's own files: the only paths the role may ever remove. */
export function isOwnFile(path: string): boolean {
  return Object.values(FD_LIMITS_PATHS).includes(path as never) || serviceOfDropin(path) !== null;
}

const NONE = "(none)";

/** The comma list of the files-probe's `files` field (which never holds a comma: see isOwnFile). */
export function ownFilesOf(field: string): string[] {
  return field === NONE ? [] : field.split(",");
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

export const FD_FILES_PROBE: Probe = defineProbe({
  name: "fd-limits-files",
  command: () => ownFilesCommand(),
  parse(raw) {
    const lines = raw.split("\n");
    if (!lines.includes("done=yes")) throw new ProbeParseError(`fd-limits-files: the listing did not finish: ${JSON.stringify(raw.trim().slice(0, 300))}`);
    const files = new Set<string>();
    let skipped = 0;
    for (const line of lines) {
      if (line === "skipped=1") skipped++;
      if (!line.startsWith("file=")) continue;
      const path = line.slice("file=".length);
      if (isOwnFile(path)) files.add(path);
      else skipped++;
    }
    return { files: [...files].sort().join(",") || NONE, skipped: String(skipped) };
  },
});

export const FD_LIMITS_PROBES: Probe[] = [FD_KERNEL_PROBE, FD_LOGIN_PROBE, FD_INIT_PROBE, FD_SERVICE_PROBE, FD_USER_PROBE, FD_FILES_PROBE];
