import { sysctlDropinPath } from "../sysctl/dropin.js";
import { shQuote } from "../transport/shell.js";
import { defineProbe, ProbeParseError } from "./probe.js";

// Probes of the fd-limits role, each printing `key=value` lines. Every command that could read stdin
// gets </dev/null: the gather script itself arrives on stdin. /proc is read with the shell's own
// `read`: every gather of every host runs these, and each awk or cat costs a small VM about 1 ms of CPU.

/** PID 1 is systemd, or systemd's runtime directory exists. */
const SYSTEMD_RUNNING = `{ { pid1_comm=; read -r pid1_comm 2>/dev/null </proc/1/comm; [ "$pid1_comm" = systemd ]; } || [ -d /run/systemd/system ]; }`;
/** `nofile_of <pid> <prefix>`: `<prefix>soft=` and `<prefix>hard=` of /proc/<pid>/limits. */
const NOFILE_OF = `nofile_of() { while read -r w1 w2 w3 soft hard _; do [ "$w1 $w2 $w3" = "Max open files" ] && { echo "$2soft=$soft"; echo "$2hard=$hard"; }; done 2>/dev/null <"/proc/$1/limits"; return 0; }`;
/** `status_field <pid> <key>`: the first word after `<key>:` in /proc/<pid>/status (e.g. PPid, Uid, CapEff). */
const STATUS_FIELD = `status_field() { while read -r k v _; do [ "$k" = "$2:" ] && { echo "$v"; return 0; }; done 2>/dev/null <"/proc/$1/status"; return 0; }`;

/** An rlimit as /proc/<pid>/limits, ulimit and systemctl show print it. */
export type Limit = number | "unlimited";

export interface Nofile {
  soft: Limit;
  hard: Limit;
}

export function parseKeyValues(raw: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of raw.split("\n")) {
    const m = /^([a-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!;
  }
  return fields;
}

const CAP_EFF_MASK = /^[0-9a-f]{1,16}$/;

/** A probe's output, read field by field; each refusal names the probe, the field and its value. */
function fieldsOf(probe: string, raw: string) {
  const printed = parseKeyValues(raw);
  /** The field where printed, if `pattern` matches it. */
  const matching = (name: string, pattern: RegExp, what = "a number"): string | undefined => {
    const value = printed[name];
    if (value !== undefined && !pattern.test(value)) {
      throw new ProbeParseError(`${probe}: ${name} is ${JSON.stringify(value)}, not ${what}`);
    }
    return value;
  };
  const limit = (name: string): Limit | undefined => {
    const value = matching(name, /^(\d+|unlimited)$/);
    return value === undefined || value === "unlimited" ? value : Number(value);
  };
  return {
    printed,
    matching,
    limit,
    /** Refuses output without a non-empty value for each name. */
    require(...names: string[]): void {
      const missing = names.filter((name) => !printed[name]);
      if (missing.length > 0) {
        throw new ProbeParseError(
          `${probe}: no ${missing.join(", ")} in its output ${JSON.stringify(raw.trim().slice(0, 300))}`,
        );
      }
    },
    /** Only for a required field. */
    count: (name: string) => Number(matching(name, /^\d+$/)),
    /** `<prefix>soft` and `<prefix>hard`, each where printed. */
    nofile(prefix = ""): Partial<Nofile> {
      const soft = limit(`${prefix}soft`);
      const hard = limit(`${prefix}hard`);
      return { ...(soft === undefined ? {} : { soft }), ...(hard === undefined ? {} : { hard }) };
    },
  };
}

/** fs.nr_open and fs.file-max. */
export interface KernelFiles {
  /** At most 2,147,483,584 (the kernel's own ceiling on 64-bit). */
  nr_open: number;
  /** Decimal digits: up to LONG_MAX, more than a number holds exactly. */
  file_max: string;
  /** /proc/sys/fs takes writes: false where it is mounted read-only (a container: fs.* is the machine's). */
  writable: boolean;
}

export const FD_KERNEL_PROBE = defineProbe<KernelFiles>({
  name: "fd-limits-kernel",
  // cat, not `read`: dash reads a byte at a time, and a /proc/sys value answers only the first read.
  script: () =>
    `printf 'nr_open=%s\\nfile_max=%s\\n' "$(cat /proc/sys/fs/nr_open)" "$(cat /proc/sys/fs/file-max)"; ` +
    `if [ -w /proc/sys/fs/file-max ]; then echo fs_writable=yes; else echo fs_writable=no; fi`,
  parse(raw) {
    const f = fieldsOf("fd-limits-kernel", raw);
    f.require("nr_open", "file_max", "fs_writable");
    return {
      nr_open: f.count("nr_open"),
      file_max: f.matching("file_max", /^\d+$/)!,
      writable: f.matching("fs_writable", /^(yes|no)$/, "yes or no") === "yes",
    };
  },
});

/**
 * The SSH login the script runs in. Its nearest sshd ancestor, the session process ("sshd:
 * user@notty"), holds exactly what pam_limits gave the login, even under sudo, which changes its own
 * limits. The topmost one is the listener: pam_limits runs in its children, so without
 * CAP_SYS_RESOURCE no login gets a hard limit above the listener's.
 */
export interface LoginState {
  /** 0 under sudo. */
  euid: number;
  /** The login's user, uid and groups: whom pam_limits' lines apply to. */
  user: string;
  uid: number;
  groups: string[];
  /** The session process's limits; the script's own outside SSH. */
  nofile: Nofile;
  /** The session process and the listener; both null when no sshd is above the script. */
  session: number | null;
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
    const f = fieldsOf("fd-limits-login", raw);
    const ssh = f.printed.session !== "none";
    f.require("euid", "session", "user", "uid", "soft", "hard", ...(ssh ? ["sshd", "sshd_hard", "sshd_cap_eff"] : []));
    const nofile = f.nofile() as Nofile;
    const sshdHard = f.limit("sshd_hard");
    const capEff = f.matching("sshd_cap_eff", CAP_EFF_MASK, "a capability mask");
    return {
      euid: f.count("euid"),
      user: f.printed.user!,
      uid: f.count("uid"),
      groups: (f.printed.groups ?? "").split(",").filter(Boolean),
      nofile,
      session: ssh ? f.count("session") : null,
      sshd: ssh ? { pid: f.count("sshd"), hard: sshdHard!, capSysResource: hasCapSysResource(capEff!) } : null,
    };
  },
});

/** CAP_SYS_RESOURCE, bit 24 of a CapEff mask: may raise a hard limit and exceed it. */
export function hasCapSysResource(capEffHex: string): boolean {
  return ((BigInt(`0x${capEffHex}`) >> 24n) & 1n) === 1n;
}

/** PID 1, and the DefaultLimitNOFILE systemd loaded where it runs. */
export interface InitState {
  systemd: boolean;
  /** Its command name, "(unknown)" when unreadable. */
  pid1: string;
  pid1Hard: Limit | null;
  /** null when its CapEff was unreadable. */
  pid1CapSysResource: boolean | null;
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
    const f = fieldsOf("fd-limits-init", raw);
    f.require("systemd");
    const systemd = f.matching("systemd", /^(yes|no)$/, "yes or no");
    const cap = f.printed.pid1_cap_eff;
    return {
      systemd: systemd === "yes",
      pid1: f.printed.pid1 || "(unknown)",
      pid1Hard: f.limit("pid1_hard") ?? null,
      pid1CapSysResource: cap && CAP_EFF_MASK.test(cap) ? hasCapSysResource(cap) : null,
      defaultNofile: f.nofile("default_"),
    };
  },
});

/** `nginx` → `nginx.service`; a name already ending in `.service` is kept. */
export function unitName(service: string): string {
  return service.endsWith(".service") ? service : `${service}.service`;
}

/** What `pgrep -x` matches without systemd: the name without `.service` or instance, in comm's 15 characters. */
export function processName(service: string): string | null {
  const base = unitName(service).slice(0, -".service".length);
  const name = base.split("@")[0]!;
  if (base.endsWith("@") || name === "") return null; // a template
  return name.slice(0, 15);
}

/**
 * One service: under systemd, the LimitNOFILE it loaded for the unit and its MainPID; elsewhere the
 * lowest-numbered live process of its name. /proc/<pid>/limits is what the process really got.
 */
export interface ServiceState {
  via: "systemd" | "pgrep";
  /** "not-found": no unit file; null without systemd. */
  loadState: string | null;
  needReload: boolean;
  unitNofile: Partial<Nofile>;
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
    const f = fieldsOf("fd-limits-service", raw);
    const running = f.printed.running === "yes";
    f.require("via", "running", ...(running ? ["pid", "soft", "hard"] : []));
    const via = f.matching("via", /^(systemd|pgrep)$/, "systemd or pgrep") as ServiceState["via"];
    const nofile = f.nofile() as Nofile;
    return {
      via,
      loadState: f.printed.load_state || null,
      needReload: f.printed.need_reload === "yes",
      unitNofile: f.nofile("unit_"),
      process: running ? { pid: f.count("pid"), nofile } : null,
    };
  },
});

/** What a new PAM session of a user gets: `su -l` goes through pam_limits like a login. */
export interface UserState {
  exists: boolean;
  /** null when not read: only root can su without a password. */
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
    const f = fieldsOf("fd-limits-user", raw);
    f.require("exists");
    if (f.printed.exists === "no") return { exists: false, nofile: null };
    const checked = f.printed.checked === "yes";
    f.require("checked", ...(checked ? ["soft", "hard"] : []));
    const nofile = f.nofile() as Nofile;
    return { exists: true, nofile: checked ? nofile : null };
  },
});

/** The name of every file of the role: only a file of exactly this name is ever removed. */
const FD_LIMITS_FILE_NAME = "60-provision-fd-limits.conf";
export const FD_LIMITS_PATHS = {
  sysctl: sysctlDropinPath("fd-limits"),
  limits: `/etc/security/limits.d/${FD_LIMITS_FILE_NAME}`,
  systemdDefault: `/etc/systemd/system.conf.d/${FD_LIMITS_FILE_NAME}`,
} as const;
const SERVICE_UNITS_DIR = "/etc/systemd/system";

export function serviceDropinPath(service: string): string {
  return `${SERVICE_UNITS_DIR}/${unitName(service)}.d/${FD_LIMITS_FILE_NAME}`;
}

/** The role's drop-in of a service, in one directory (never `.` or `..`) of the characters a service name has. */
const SERVICE_DROPIN_PATH = new RegExp(
  `^${SERVICE_UNITS_DIR}/([A-Za-z0-9][A-Za-z0-9@._-]*\\.service)\\.d/${FD_LIMITS_FILE_NAME.replace(/\./g, "\\.")}$`,
);

export function serviceOfDropin(path: string): string | null {
  return SERVICE_DROPIN_PATH.exec(path)?.[1] ?? null;
}

/** The only paths the role may ever remove. */
export function isOwnFile(path: string): boolean {
  return Object.values(FD_LIMITS_PATHS).includes(path as never) || serviceOfDropin(path) !== null;
}

/**
 * Lists the role's own files, including drop-ins of services no longer in `services`. Directories
 * with characters no service name has are counted, never listed.
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
  /** In path order; only paths isOwnFile accepts. */
  files: string[];
  /** Files of the role's name where it never writes. */
  skipped: number;
}

export const FD_FILES_PROBE = defineProbe<OwnFiles>({
  name: "fd-limits-files",
  script: () => ownFilesCommand(),
  parse(raw) {
    const lines = raw.split("\n");
    if (!lines.includes("done=yes")) {
      throw new ProbeParseError(
        `fd-limits-files: the listing did not finish: ${JSON.stringify(raw.trim().slice(0, 300))}`,
      );
    }
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
