/**
 * fd-limits: open-file limits in the kernel (fs.nr_open, fs.file-max), for PAM logins (limits.d) and
 * for systemd services (DefaultLimitNOFILE, LimitNOFILE drop-ins). A probe finds every file of the
 * role's name, and each one the params no longer want is removed. Running services keep their limit
 * until restarted: provision restarts them only with restart_services.
 */
import {
  defineRole,
  probeCheck,
  probeRequest,
  probeResult,
  refused,
  type Change,
  type Check,
  type Facts,
  type FactRequest,
  type ParamProblem,
  type PlanContext,
  type RolePlan,
} from "../src/role.js";
import type { Probe } from "../src/facts/probe.js";
import { planManagedFile, planStaleFile } from "../src/managedFile.js";
import { bootTruthChecks } from "../src/sysctl/dropin.js";
import {
  FD_FILES_PROBE,
  FD_INIT_PROBE,
  FD_KERNEL_PROBE,
  FD_LIMITS_PATHS,
  FD_LOGIN_PROBE,
  FD_SERVICE_PROBE,
  FD_USER_PROBE,
  isOwnFile,
  serviceDropinPath,
  serviceOfDropin,
  unitName,
  type InitState,
  type KernelFiles,
  type LoginState,
  type ServiceState,
  type UserState,
} from "../src/facts/fdLimits.js";

export interface FdLimitsParams {
  soft_nofile: number;
  hard_nofile: number;
  nr_open: number | null;
  file_max: number | null;
  users: string[];
  systemd_default_limit: boolean;
  systemd_default_soft_nofile: number;
  services: string[];
  restart_services: boolean;
}

const ROLE = "fd-limits";
export const SYSCTL_PATH = FD_LIMITS_PATHS.sysctl;
export const LIMITS_PATH = FD_LIMITS_PATHS.limits;
export const SYSTEMD_DEFAULT_PATH = FD_LIMITS_PATHS.systemdDefault;
export { serviceDropinPath };

/** The kernel's own ceiling for fs.nr_open on 64-bit: min(INT_MAX, SIZE_MAX/sizeof(void *)) rounded down to 64. */
const NR_OPEN_MAX = 2147483584;
const KERNEL_NR_OPEN_DEFAULT = 1048576;
const NAME_CHARS = "letters, digits, and . _ - only";

export default defineRole<FdLimitsParams>({
  name: ROLE,
  summary:
    "Raise open-file limits (kernel, logins, systemd services) so a process can hold 100k+ connections, and check what a fresh login and running services really get",
  touchesLogin: true,
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      soft_nofile: {
        type: "integer",
        minimum: 1024,
        maximum: NR_OPEN_MAX,
        default: 1048576,
        description:
          "Open files a new login (and each service in services) starts with: the soft nofile limit (RLIMIT_NOFILE), default 1024. " +
          'Every connection is a file descriptor, so at 1024 a server fails accept() with EMFILE "Too many open files" at about 1,000 clients; ' +
          "1048576 lets one process hold 100k+ connections with room for files and pipes. " +
          "Above 1024, programs that still use select() can break: FD_SETSIZE is 1024, and select() on descriptor 1024 or higher overflows its fd_set " +
          "(memory corruption or a crash); run such a program with a soft limit of 1024 (ulimit -Sn 1024 in its wrapper, or LimitNOFILE=1024:… in its unit). " +
          "Programs that close every possible descriptor at start-up also loop up to this number.",
        fix: "use an integer from 1024 up to hard_nofile",
      },
      hard_nofile: {
        type: "integer",
        minimum: 1024,
        maximum: NR_OPEN_MAX,
        default: 1048576,
        description:
          "How far a process may raise its own soft limit without privileges: the hard nofile limit (usually 4096, or 524288 under systemd 240+). " +
          "Runtimes that raise their soft limit themselves (Go, Node.js, the JVM, nginx's worker_rlimit_nofile) stop here. " +
          "It must not exceed fs.nr_open: above it pam_limits' setrlimit() fails with EPERM and the login keeps its old limits. " +
          "Nor can a login get more than the sshd running pam_limits holds when sshd lacks CAP_SYS_RESOURCE (containers): provision refuses such a value.",
        fix: "use an integer from soft_nofile up to nr_open (at most the sshd's own hard limit on hosts where sshd lacks CAP_SYS_RESOURCE)",
      },
      nr_open: {
        type: ["integer", "null"],
        minimum: 1024,
        maximum: NR_OPEN_MAX,
        default: 1048576,
        description:
          "Kernel ceiling for any process's nofile (fs.nr_open), default 1048576. It must be at least hard_nofile: a hard nofile above it makes " +
          "pam_limits' setrlimit() fail with EPERM, so logins get none of the limits and some PAM stacks refuse the session. " +
          "Raise only: provision writes the larger of this value and the host's, and never lowers it. null leaves fs.nr_open alone (hard_nofile must then fit the host's): " +
          "the role's file stops setting it and the live value stays until reboot; refused while hard_nofile is above the kernel's 1048576 and that file is what raised it.",
        fix: `use an integer from 1024 to ${NR_OPEN_MAX} that is at least hard_nofile, or null to leave the host's value`,
      },
      file_max: {
        type: ["integer", "null"],
        minimum: 8192,
        maximum: Number.MAX_SAFE_INTEGER,
        default: 2097152,
        description:
          "Open files across all processes (fs.file-max), default about 10% of RAM in KiB (roughly 200,000 on 2 GiB). At the limit every open(), " +
          'accept() and socket() fails with ENFILE "Too many open files in system" and the kernel logs "VFS: file-max limit reached". ' +
          "2097152 leaves room for a million connections; unused slots cost no memory. Raise only: provision writes the larger of this value and the host's. " +
          "null leaves fs.file-max alone; with nr_open null too, the role's sysctl file is removed (the live values stay until reboot).",
        fix: "use an integer of at least 8192, or null to leave the host's value",
      },
      users: {
        type: "array",
        default: ["*", "root"],
        uniqueItems: true,
        items: {
          type: "string",
          pattern: "^(\\*|@?[A-Za-z_][A-Za-z0-9_.-]{0,31})$",
          fix: `write a user name, @group or *; ${NAME_CHARS}, not starting with - or .`,
        },
        description:
          "Who gets soft_nofile and hard_nofile at login, in /etc/security/limits.d/60-provision-fd-limits.conf: user names, @group, or * " +
          "(every user except root: pam_limits never applies * or @group lines to root, so root is named). " +
          "It applies to PAM sessions only (ssh, login, su, sudo), and only to sessions opened after the change; services started by systemd " +
          "ignore it and take LimitNOFILE instead (see services and systemd_default_limit). An empty list writes no limits file and removes the one an earlier run wrote.",
        fix: `list user names, @group or *; ${NAME_CHARS}`,
      },
      systemd_default_limit: {
        type: "boolean",
        default: true,
        description:
          "Set DefaultLimitNOFILE=<systemd_default_soft_nofile>:<hard_nofile> for every systemd service, in /etc/systemd/system.conf.d/60-provision-fd-limits.conf " +
          "(systemd's default is 1024:524288 since v240, 1024:4096 before). Services whose unit sets LimitNOFILE keep their own. " +
          "systemd reads it at daemon-reload (v224+); running services keep their limit until restarted. false removes the file an earlier run wrote.",
        fix: "use true to write the default for every service, or false to leave systemd's default alone (an earlier run's file is removed)",
      },
      systemd_default_soft_nofile: {
        type: "integer",
        minimum: 1024,
        maximum: NR_OPEN_MAX,
        default: 1024,
        description:
          "Soft part of DefaultLimitNOFILE for services not named in services, default 1024 like systemd's own: any service might still use select(), " +
          "which cannot handle descriptors of 1024 and above. Services that need more raise their soft limit themselves up to the hard limit " +
          "(Go, Node.js, the JVM and nginx do), or are named in services.",
        fix: "use an integer from 1024 up to hard_nofile; keep 1024 unless every service on the host is select()-free",
      },
      services: {
        type: "array",
        default: [],
        uniqueItems: true,
        items: {
          type: "string",
          maxLength: 200,
          pattern: "^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9@._-]*$",
          fix: "write a systemd service name such as nginx or nginx.service: letters, digits and @ . _ - only, no .. and no /",
        },
        description:
          "systemd services that get LimitNOFILE=<soft_nofile>:<hard_nofile> in /etc/systemd/system/<name>.service.d/60-provision-fd-limits.conf, e.g. nginx or haproxy. " +
          "Without it a service gets DefaultLimitNOFILE (soft 1024: EMFILE at about 1,000 connections) whatever limits.d says. " +
          "A running service keeps its limit until restarted (see restart_services), and verify reports a running process that has less. " +
          "A service dropped from the list has its drop-in removed (then daemon-reload where systemd runs).",
        fix: "list service names such as nginx or my-gateway.service",
      },
      restart_services: {
        type: "boolean",
        default: false,
        description:
          "Restart each service in services whose running process has less than its LimitNOFILE (after its drop-in changed), right after the daemon-reload, " +
          "so the run ends with every listed service holding its limit. Off by default: a restart drops the service's open connections (100k WebSockets reconnecting at once), " +
          "so it is the operator's call; batches (rollout) then make it a rolling restart. " +
          "With false, run notes the restart as pending and does not fail on it, while verify keeps reporting the process until it is restarted.",
        fix: "use true to restart the listed services whose running process has less than its limit, or false to restart them yourself",
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    const error = (param: string, problem: string, fix: string) =>
      problems.push({ param, severity: "error", problem, fix });
    if (p.soft_nofile > p.hard_nofile) {
      error(
        "soft_nofile",
        `soft_nofile ${p.soft_nofile} is above hard_nofile ${p.hard_nofile}; pam_limits would silently cut it to the hard limit`,
        `lower soft_nofile to ${p.hard_nofile} or less, or raise hard_nofile`,
      );
    }
    if (p.nr_open !== null && p.hard_nofile > p.nr_open) {
      error(
        "hard_nofile",
        `hard_nofile ${p.hard_nofile} is above nr_open ${p.nr_open}: setrlimit() fails with EPERM above fs.nr_open, so logins would get none of the limits`,
        `raise nr_open to at least ${p.hard_nofile}, or lower hard_nofile to ${p.nr_open}`,
      );
    }
    if (p.systemd_default_limit && p.systemd_default_soft_nofile > p.hard_nofile) {
      error(
        "systemd_default_soft_nofile",
        `systemd_default_soft_nofile ${p.systemd_default_soft_nofile} is above hard_nofile ${p.hard_nofile}`,
        `use 1024, or at most ${p.hard_nofile}`,
      );
    }
    const seen = new Map<string, string>();
    for (const service of p.services) {
      const unit = unitName(service);
      const first = seen.get(unit);
      if (first !== undefined)
        error("services", `"${first}" and "${service}" are the same unit ${unit}`, `list ${unit} once`);
      seen.set(unit, service);
    }
    return problems;
  },

  facts(p) {
    const requests: FactRequest[] = [
      ...[FD_KERNEL_PROBE, FD_LOGIN_PROBE, FD_INIT_PROBE, FD_FILES_PROBE].map((probe) => probeRequest(probe)),
      { kind: "file", path: SYSCTL_PATH },
      { kind: "file", path: LIMITS_PATH },
    ];
    if (p.systemd_default_limit) requests.push({ kind: "file", path: SYSTEMD_DEFAULT_PATH });
    for (const service of p.services) {
      requests.push({ kind: "file", path: serviceDropinPath(service) });
      if (!isTemplate(service)) requests.push(probeRequest(FD_SERVICE_PROBE, service));
    }
    for (const user of namedUsers(p)) requests.push(probeRequest(FD_USER_PROBE, user));
    return requests;
  },

  plan(p, facts, ctx) {
    const read = readHost(p, facts);
    const sysctlFile = facts.files[SYSCTL_PATH] ?? null;
    const targets = kernelTargets(p, read.host.kernel, sysctlFile, ctx.purpose);
    const ceiling = loginCeiling(read.host.login);
    const cannot = [
      ...refusals(p, effectiveNrOpen(targets, read.host.kernel), ceiling, recordedValue(sysctlFile, "fs.nr_open")),
      ...readOnlyKernelRefusals(targets, read.host.kernel),
    ];
    // Planning a run refuses what would lock logins out or never apply; verify plans the checks and
    // lets them say it. Either refuses a host whose probes it could not read.
    const refuse = ctx.purpose === "plan" ? cannot : [];
    if (!read.ok) return refused([...refuse, ...read.unreadable]);
    if (refuse.length > 0) return refused(refuse);

    // Plan order is apply order: fs.nr_open is raised before any limit that needs it is written.
    const parts = [
      planKernel(targets, read.host, facts, ctx),
      planLogins(p, read.host, facts, ctx, ceiling),
      planSystemd(p, read.host, facts, ctx),
    ];
    return {
      changes: parts.flatMap((x) => x.changes),
      checks: parts.flatMap((x) => x.checks),
      notes: [...cannot.map((r) => `cannot apply: ${r}`), ...parts.flatMap((x) => x.notes)],
      refusals: [],
    };
  },
});

/** A slice of the role's plan; only plan() decides refusals. */
type Part = Omit<RolePlan, "refusals">;

const NOFILE = ["soft", "hard"] as const;

/** What the limits file and the service drop-ins hand out. */
const wantedNofile = (p: FdLimitsParams) => ({ soft: p.soft_nofile, hard: p.hard_nofile });

/** `name@.service`: one drop-in for every instance, and no process of its own to check. */
function isTemplate(service: string): boolean {
  return unitName(service).endsWith("@.service");
}

/** Users named in `users` (not `*` or `@group`): each one's new session is read through su -l. */
function namedUsers(p: FdLimitsParams): string[] {
  return p.users.filter((d) => d !== "*" && !d.startsWith("@"));
}

// ---- Reading the host

interface Host {
  kernel: KernelFiles;
  login: LoginState;
  init: InitState;
  /** The role's own files on the host, wanted or not. */
  own: string[];
  skipped: number;
  /** Templates left out: they have no process to read. */
  services: Map<string, ServiceState>;
  /** The login's own user left out. */
  users: Map<string, UserState>;
}

type HostRead = { ok: true; host: Host } | { ok: false; host: Partial<Host>; unreadable: string[] };

/** What to do when a probe's script failed on the host. */
const WHEN_UNREADABLE: Record<string, string> = {
  [FD_KERNEL_PROBE.name]: "Check that /proc is mounted and /proc/sys/fs/nr_open and file-max are readable",
  [FD_LOGIN_PROBE.name]:
    "Let the login read /proc/<pid>/status and limits of its sshd processes: mount /proc without hidepid, or log in as root or set ansible_become",
  [FD_INIT_PROBE.name]: "Let the login read /proc/1 and run systemctl show: log in as root or set ansible_become",
  [FD_SERVICE_PROBE.name]:
    "Let the login run systemctl show (where systemd does not run: pgrep, and read /proc/<pid>/limits): log in as root or set ansible_become",
  [FD_USER_PROBE.name]:
    "Check that su -l works for that user as root (its login shell, /etc/pam.d/su), or remove it from users",
  [FD_FILES_PROBE.name]:
    "Let the login list /etc/sysctl.d, /etc/security/limits.d and /etc/systemd/system: log in as root or set ansible_become",
};

/** Every probe answer the plan reads; each one that could not be read is a refusal saying what to do. */
function readHost(p: FdLimitsParams, facts: Facts): HostRead {
  const unreadable: string[] = [];
  function read<T>(probe: Probe<T>, arg?: string): T | undefined {
    const result = probeResult(facts, probe, arg);
    if (result?.ok) return result.value;
    unreadable.push(
      result === undefined
        ? `${probe.name}${arg === undefined ? "" : ` ${arg}`} was not gathered: a bug (fd-limits asks for it before planning); please report it`
        : `could not read ${probe.name}${arg === undefined ? "" : ` for ${arg}`}: ${result.error.replace(/\.$/, "")}. ${WHEN_UNREADABLE[probe.name]}`,
    );
    return undefined;
  }
  function readEach<T>(probe: Probe<T>, args: string[]): Map<string, T> {
    const values = new Map<string, T>();
    for (const arg of args) {
      const value = read(probe, arg);
      if (value !== undefined) values.set(arg, value);
    }
    return values;
  }
  const kernel = read(FD_KERNEL_PROBE);
  const login = read(FD_LOGIN_PROBE);
  const init = read(FD_INIT_PROBE);
  const files = read(FD_FILES_PROBE);
  const host: Partial<Host> = {
    kernel,
    login,
    init,
    // Only the role's own paths, whatever the probe says: these are the only paths it may remove.
    own: files?.files.filter(isOwnFile),
    skipped: files?.skipped,
    services: readEach(
      FD_SERVICE_PROBE,
      p.services.filter((s) => !isTemplate(s)),
    ),
    users: readEach(
      FD_USER_PROBE,
      namedUsers(p).filter((u) => u !== login?.user),
    ),
  };
  return unreadable.length === 0 ? { ok: true, host: host as Host } : { ok: false, host, unreadable };
}

// ---- Refusals: values this host cannot take (in verify they are notes, and shape the checks' messages)

/** The sshd that runs pam_limits, when it lacks CAP_SYS_RESOURCE: no login gets a hard nofile above its own. */
interface Ceiling {
  pid: number;
  hard: number;
}

function loginCeiling(login: LoginState | undefined): Ceiling | null {
  const sshd = login?.sshd;
  if (!sshd || sshd.capSysResource || sshd.hard === "unlimited") return null;
  return { pid: sshd.pid, hard: sshd.hard };
}

function ceilingReason(c: Ceiling): string {
  return (
    `sshd (pid ${c.pid}) holds hard nofile ${thousands(c.hard)} and lacks CAP_SYS_RESOURCE (a container or a capped parent), ` +
    `so pam_limits' setrlimit() fails for any login asking more, and the login keeps its old soft and hard limits (measured on Debian 12: the session still opens)`
  );
}

/** Whether any file of the role hands out hard_nofile: then fs.nr_open must stay at least that at boot. */
function writesHardLimit(p: FdLimitsParams): boolean {
  return p.users.length > 0 || p.services.length > 0 || p.systemd_default_limit;
}

function refusals(
  p: FdLimitsParams,
  nrOpen: bigint | null,
  ceiling: Ceiling | null,
  recordedNrOpen: bigint | null,
): string[] {
  const out: string[] = [];
  if (p.nr_open === null && recordedNrOpen !== null && writesHardLimit(p) && p.hard_nofile > KERNEL_NR_OPEN_DEFAULT) {
    out.push(
      `nr_open is null, so ${SYSCTL_PATH} would stop setting the fs.nr_open ${thousands(recordedNrOpen)} it records: from the next boot fs.nr_open is the kernel's ` +
        `${thousands(KERNEL_NR_OPEN_DEFAULT)}, below hard_nofile ${thousands(p.hard_nofile)}, and pam_limits' setrlimit() fails with EPERM (services with that LimitNOFILE fail to start). ` +
        `Keep nr_open at least ${thousands(p.hard_nofile)}, or lower hard_nofile to ${thousands(KERNEL_NR_OPEN_DEFAULT)}`,
    );
  }
  if (nrOpen !== null && BigInt(p.hard_nofile) > nrOpen) {
    out.push(
      `hard_nofile ${thousands(p.hard_nofile)} is above this host's fs.nr_open ${thousands(nrOpen)}: pam_limits' setrlimit() fails with EPERM, ` +
        `logins get none of the file's limits and some PAM stacks refuse the session. Set nr_open to at least ${thousands(p.hard_nofile)} ` +
        `(the role then raises fs.nr_open first), or lower hard_nofile to ${thousands(nrOpen)}`,
    );
  }
  if (p.users.length > 0 && ceiling !== null && p.hard_nofile > ceiling.hard) {
    out.push(
      `hard_nofile ${thousands(p.hard_nofile)} is above what a login can get on this host: ${ceilingReason(ceiling)}. ` +
        `Lower hard_nofile to ${thousands(ceiling.hard)} or less, or raise the limit sshd starts with (LimitNOFILE of ssh.service, or the container's nofile ulimit)`,
    );
  }
  return out;
}

// ---- Kernel: fs.nr_open and fs.file-max, raise only

/** A raise the host cannot take: /proc/sys/fs is read-only, as in a container, where fs.* is the machine's. */
function readOnlyKernelRefusals(targets: KernelTarget[], kernel: KernelFiles | undefined): string[] {
  if (!kernel || kernel.writable) return [];
  return targets
    .filter((t) => t.live !== null && t.target > t.live)
    .map(
      (t) =>
        `${t.key} is ${thousands(t.live!)} here, below the ${thousands(t.target)} wanted, and /proc/sys/fs is read-only (a container: fs.* belongs to the whole machine): ` +
        `raise it on the machine that runs this host, or set ${t.field}: null`,
    );
}

/** The raise-only kernel values: sysctl key, and the name of both the param and the kernel probe's field. */
const KERNEL_KEYS = [
  { key: "fs.nr_open", field: "nr_open" },
  { key: "fs.file-max", field: "file_max" },
] as const;

interface KernelTarget {
  key: string;
  field: (typeof KERNEL_KEYS)[number]["field"];
  live: bigint | null;
  target: bigint;
}

/**
 * Raise only: the value written is the largest of the param, what the role's own file recorded,
 * and (when planning a run) the host's live value. Verify leaves the live value out, so a value
 * raised by someone else since is a change the next run records, not drift.
 */
function kernelTargets(
  p: FdLimitsParams,
  kernel: KernelFiles | undefined,
  ownFile: string | null,
  purpose: PlanContext["purpose"],
): KernelTarget[] {
  return KERNEL_KEYS.flatMap(({ key, field }) => {
    const wanted = p[field];
    if (wanted === null) return [];
    const live = kernel ? BigInt(kernel[field]) : null;
    const target = maxOf([BigInt(wanted), recordedValue(ownFile, key), purpose === "plan" ? live : null]);
    return [{ key, field, live, target }];
  });
}

/** What fs.nr_open will be once this plan ran. */
function effectiveNrOpen(targets: KernelTarget[], kernel: KernelFiles | undefined): bigint | null {
  return targets.find((t) => t.key === "fs.nr_open")?.target ?? (kernel ? BigInt(kernel.nr_open) : null);
}

function maxOf(values: Array<bigint | null>): bigint {
  return values.reduce<bigint>((m, v) => (v !== null && v > m ? v : m), 0n);
}

function recordedValue(file: string | null, key: string): bigint | null {
  const m = file === null ? null : new RegExp(`^${key.replace(/\./g, "\\.")} = (\\d+)$`, "m").exec(file);
  return m ? BigInt(m[1]!) : null;
}

function planKernel(targets: KernelTarget[], host: Host, facts: Facts, ctx: PlanContext): Part {
  if (targets.length === 0) return planLeftovers(host.own.filter((path) => path === SYSCTL_PATH));
  const value = (key: string) => targets.find((t) => t.key === key)?.target.toString() ?? null;
  const content = ctx.render("sysctl.conf.hbs", {
    nrOpen: value("fs.nr_open"),
    fileMax: value("fs.file-max"),
    kernelNrOpenDefault: KERNEL_NR_OPEN_DEFAULT,
  });
  const file = planManagedFile({ path: SYSCTL_PATH, content, role: ROLE }, facts);
  const changes = [...file.changes];
  const checks = bootTruthChecks(
    SYSCTL_PATH,
    content,
    targets.map((t) => t.key),
  );
  const notes: string[] = [];
  for (const t of targets) {
    if (t.live === null || t.live < t.target) {
      changes.push({
        kind: "sysctl",
        key: t.key,
        before: t.live?.toString() ?? null,
        after: t.target.toString(),
        description: `raise ${t.key} live`,
      });
    }
    if (ctx.purpose === "verify" && t.live !== null && t.live > t.target) {
      notes.push(
        `${t.key} is ${thousands(t.live)} live, above the ${thousands(t.target)} in ${SYSCTL_PATH}: the next run records it (raise only)`,
      );
    }
    checks.push(
      probeCheck(FD_KERNEL_PROBE, {
        field: [t.field],
        expected: t.target.toString(),
        compare: "at-least",
        label: t.key,
        message: `${t.key} on the running kernel is below the ${thousands(t.target)} that ${SYSCTL_PATH} sets: something lowered it after provision ran, or another sysctl file won at boot`,
      }),
    );
  }
  checks.push(...file.checks);
  return { changes, checks, notes };
}

// ---- Logins: limits.d, and what a fresh login and su -l get

function planLogins(p: FdLimitsParams, host: Host, facts: Facts, ctx: PlanContext, ceiling: Ceiling | null): Part {
  if (p.users.length === 0) return planLeftovers(host.own.filter((path) => path === LIMITS_PATH));
  const content = ctx.render("limits.conf.hbs", {
    ...wantedNofile(p),
    entries: p.users.map((domain) => ({ domain, who: describeDomain(domain) })),
  });
  const file = planManagedFile({ path: LIMITS_PATH, content, role: ROLE }, facts);
  const checks = [...file.checks];
  const notes: string[] = [];
  if (file.changes.length > 0)
    notes.push(
      `${LIMITS_PATH} applies to PAM sessions opened from now on (ssh, login, su, sudo); sessions already open keep their limits`,
    );

  const { login } = host;
  if (login.session === null) {
    notes.push(`not an SSH session (no sshd above it): a fresh login's limits are not checked`);
  } else if (p.users.some((d) => covers(d, login))) {
    checks.push(
      ...freshLoginChecks(
        p,
        ceiling,
        FD_LOGIN_PROBE,
        undefined,
        `fresh login (${login.user})`,
        `a fresh SSH login as ${login.user}`,
      ),
    );
  } else {
    notes.push(
      `the login user ${login.user} is not matched by users${login.uid === 0 ? " (* and @group lines never apply to root)" : ""}: its fresh login is not checked`,
    );
  }

  for (const [user, state] of host.users) {
    if (!state.exists)
      notes.push(`user ${user} does not exist on this host: its lines apply once it does; not checked`);
    else if (state.nofile === null)
      notes.push(
        `checking what user ${user} gets needs root (su -l): log in as root or set ansible_become; not checked`,
      );
    else
      checks.push(
        ...freshLoginChecks(p, ceiling, FD_USER_PROBE, user, `su -l ${user}`, `a new PAM session of ${user} (su -l)`),
      );
  }
  return { changes: file.changes, checks, notes };
}

/** pam_limits never applies `*` or `@group` lines to root: root must be named. */
function covers(domain: string, login: LoginState): boolean {
  if (domain === login.user) return true;
  if (login.uid === 0) return false;
  return domain === "*" || (domain.startsWith("@") && login.groups.includes(domain.slice(1)));
}

function describeDomain(domain: string): string {
  if (domain === "*") return "every user except root (pam_limits never applies * to root)";
  if (domain.startsWith("@")) return `members of group ${domain.slice(1)} (never root)`;
  return `user ${domain}`;
}

/** That a new session (read through PAM) gets exactly the file's soft and hard nofile. */
function freshLoginChecks<T extends { nofile: unknown }>(
  p: FdLimitsParams,
  ceiling: Ceiling | null,
  probe: Probe<T>,
  arg: string | undefined,
  label: string,
  who: string,
): Check[] {
  return NOFILE.map((which) =>
    probeCheck(probe, {
      ...(arg === undefined ? {} : { arg }),
      field: ["nofile", which],
      expected: String(wantedNofile(p)[which]),
      compare: "equal",
      freshLogin: true,
      label: `${label}: ${which} nofile`,
      message: loginMismatchMessage(who, which, p, ceiling),
    }),
  );
}

function loginMismatchMessage(who: string, which: "soft" | "hard", p: FdLimitsParams, ceiling: Ceiling | null): string {
  const base = `${who} does not get the ${which} nofile ${thousands(wantedNofile(p)[which])} that ${LIMITS_PATH} sets`;
  if (ceiling !== null && p.hard_nofile > ceiling.hard) return `${base}: ${ceilingReason(ceiling)}`;
  return (
    `${base}: its parent could not raise it (no CAP_SYS_RESOURCE, e.g. a container), a more specific or later line in /etc/security/limits.conf ` +
    `or limits.d wins (grep -r nofile /etc/security), or pam_limits is missing from the PAM stack (/etc/pam.d/sshd, /etc/pam.d/su)`
  );
}

// ---- systemd: DefaultLimitNOFILE, LimitNOFILE drop-ins, and what services run with

function planSystemd(p: FdLimitsParams, host: Host, facts: Facts, ctx: PlanContext): Part {
  const files: Array<{ path: string; content: string }> = [];
  if (p.systemd_default_limit) {
    const content = ctx.render("system.conf.hbs", { soft: p.systemd_default_soft_nofile, hard: p.hard_nofile });
    files.push({ path: SYSTEMD_DEFAULT_PATH, content });
  }
  for (const service of p.services) {
    const content = ctx.render("service.conf.hbs", { unit: unitName(service), ...wantedNofile(p) });
    files.push({ path: serviceDropinPath(service), content });
  }
  const written = files.map((f) => planManagedFile({ ...f, role: ROLE }, facts));
  const wanted = new Set(files.map((f) => f.path));
  const leftovers = planLeftovers(
    host.own.filter((path) => !wanted.has(path) && (path === SYSTEMD_DEFAULT_PATH || serviceOfDropin(path) !== null)),
  );
  const changes = [...written.flatMap((w) => w.changes), ...leftovers.changes];
  const checks = [...written.flatMap((w) => w.checks), ...leftovers.checks];
  const notes = [...leftovers.notes];
  if (host.skipped > 0)
    notes.push(
      `${host.skipped} file(s) named 60-provision-fd-limits.conf in directories whose names no service can have were left alone`,
    );
  if (files.length === 0 && leftovers.changes.length === 0) return { changes, checks, notes };

  const { init } = host;
  if (!init.systemd) {
    notes.push(
      `systemd is not running here (PID 1 is ${init.pid1}): ${files.length > 0 ? "the systemd drop-ins wait for the next boot with systemd; no daemon-reload" : "no daemon-reload after the removals"}`,
    );
  } else {
    if (p.systemd_default_limit) checks.push(...defaultLimitChecks(p));
    if (changes.length > 0 || [...host.services.values()].some((s) => s.needReload)) {
      changes.push({
        kind: "command",
        argv: ["systemctl", "daemon-reload"],
        description:
          "reload systemd so it reads the LimitNOFILE drop-ins as they now are (running services keep their limit until restarted)",
      });
    }
    const cap = init.pid1Hard;
    if (init.pid1CapSysResource === false && typeof cap === "number" && p.hard_nofile > cap) {
      notes.push(
        `systemd (PID 1) holds hard nofile ${thousands(cap)} without CAP_SYS_RESOURCE: it caps every service at ${thousands(cap)}, below hard_nofile ${thousands(p.hard_nofile)}; verify reports running services that got less`,
      );
    }
  }
  for (const service of p.services) {
    const dropinChanges = changes.some((c) => c.kind === "file" && c.path === serviceDropinPath(service));
    const plan = planService(p, service, host.services.get(service), init, dropinChanges, ctx.purpose);
    changes.push(...plan.changes);
    checks.push(...plan.checks);
    notes.push(...plan.notes);
  }
  return { changes, checks, notes };
}

function defaultLimitChecks(p: FdLimitsParams): Check[] {
  const expected = { soft: p.systemd_default_soft_nofile, hard: p.hard_nofile };
  const message = `systemd's DefaultLimitNOFILE is not what ${SYSTEMD_DEFAULT_PATH} sets: a later file in /etc/systemd/system.conf.d wins, or systemd has not re-read its configuration (systemctl daemon-reload; daemon-reexec on systemd older than 224)`;
  return NOFILE.map((which) =>
    probeCheck(FD_INIT_PROBE, {
      field: ["defaultNofile", which],
      expected: String(expected[which]),
      compare: "equal",
      label: `systemd DefaultLimitNOFILE (${which})`,
      message,
    }),
  );
}

/**
 * The LimitNOFILE systemd loaded for a service, what its process holds, and its restart where
 * restart_services asks for one; no `state` for a template.
 */
function planService(
  p: FdLimitsParams,
  service: string,
  state: ServiceState | undefined,
  init: InitState,
  dropinChanges: boolean,
  purpose: PlanContext["purpose"],
): Part {
  const unit = unitName(service);
  if (!state)
    return {
      changes: [],
      checks: [],
      notes: [`${unit} is a template: its drop-in applies to every instance; instances are not checked`],
    };
  const wanted = wantedNofile(p);
  const checks: Check[] = [];
  const notes: string[] = [];
  if (init.systemd && state.loadState === "not-found") {
    notes.push(`${unit} is not installed: its drop-in applies once it is`);
  } else if (init.systemd) {
    checks.push(
      ...NOFILE.map((which) =>
        probeCheck(FD_SERVICE_PROBE, {
          arg: service,
          field: ["unitNofile", which],
          expected: String(wanted[which]),
          compare: "equal",
          label: `${unit} LimitNOFILE (${which})`,
          message: `systemd's LimitNOFILE for ${unit} is not what ${serviceDropinPath(service)} sets: a later drop-in or the unit itself wins (systemctl cat ${unit}), or systemd has not reloaded (systemctl daemon-reload)`,
        }),
      ),
    );
  }
  const running = state.process;
  if (running === null) {
    notes.push(`${service} is not running: no /proc/<pid>/limits check; its limit applies when it starts`);
    return { changes: [], checks, notes };
  }
  const below = NOFILE.some((which) => running.nofile[which] !== "unlimited" && running.nofile[which] < wanted[which]);
  const changes: Change[] = [];
  if (init.systemd && (dropinChanges || below)) {
    if (p.restart_services) {
      changes.push({
        kind: "command",
        argv: ["systemctl", "restart", unit],
        description: `restart ${unit} so its process gets LimitNOFILE ${wanted.soft}:${wanted.hard} (restart_services: true; its open connections are dropped)`,
      });
    } else {
      notes.push(
        `restart pending: ${service} (pid ${running.pid}) runs with nofile ${running.nofile.soft}:${running.nofile.hard} and keeps it until restarted (systemctl restart ${unit}, or restart_services: true); verify reports it until then`,
      );
      // Nothing run applies can change a running process, so run does not fail on it; verify does.
      if (purpose === "plan") return { changes, checks, notes };
    }
  } else if (dropinChanges) {
    notes.push(`${service} (pid ${running.pid}) is running and keeps its current limit until restarted`);
  }
  const cause = init.systemd
    ? `it started before the drop-in (restart it: systemctl restart ${unit}), or systemd could not raise the limit (PID 1 without CAP_SYS_RESOURCE, e.g. a container)`
    : `systemd does not run here, so the drop-in does not apply: whatever starts ${service} must raise its limit, and a parent without CAP_SYS_RESOURCE (e.g. a container) caps it`;
  checks.push(
    ...NOFILE.map((which) =>
      probeCheck(FD_SERVICE_PROBE, {
        arg: service,
        field: ["process", "nofile", which],
        expected: String(wanted[which]),
        compare: "at-least",
        label: `${service} running: ${which} nofile`,
        message: `${service} (pid ${running.pid}) runs with ${which} nofile ${running.nofile[which]}, below the ${thousands(wanted[which])} set for it: ${cause}`,
      }),
    ),
  );
  return { changes, checks, notes };
}

// ---- Files the params no longer want

/** Why a file is no longer wanted, what it still does while there, and what follows once it is gone. */
interface Leftover {
  why: string;
  stillDoes: string;
  then: string;
}

const FIXED_LEFTOVERS: Record<string, Leftover> = {
  [SYSCTL_PATH]: {
    why: "nr_open and file_max are both null",
    stillDoes: "the values it records are set again at every boot",
    then: "the live values stay (never lowered) until the next boot, which takes the kernel's defaults or other sysctl files",
  },
  [LIMITS_PATH]: {
    why: "users is empty",
    stillDoes: "pam_limits applies it to every new session",
    then: "PAM sessions opened from now on get the limits of limits.conf or of their parent, sessions already open keep theirs",
  },
  [SYSTEMD_DEFAULT_PATH]: {
    why: "systemd_default_limit is false",
    stillDoes: "systemd reads it again at the next daemon-reload or boot",
    then: "services started after the next daemon-reload get systemd's own DefaultLimitNOFILE, running ones keep their limit until restarted",
  },
};

function leftoverOf(path: string): Leftover | undefined {
  const unit = serviceOfDropin(path);
  if (unit === null) return FIXED_LEFTOVERS[path];
  return {
    why: `${unit} is no longer in services`,
    stillDoes: `systemd gives ${unit} its LimitNOFILE again at the next daemon-reload or boot`,
    then: `it keeps its current limit until restarted (systemctl restart ${unit}), then gets DefaultLimitNOFILE; provision restarts no service it no longer manages`,
  };
}

/** Each of these own files is no longer wanted: removed, and checked gone. */
function planLeftovers(paths: string[]): Part {
  const part: Part = { changes: [], checks: [], notes: [] };
  for (const path of paths) {
    const l = leftoverOf(path);
    if (!l) continue;
    const stale = planStaleFile({
      path,
      why: l.why,
      message: `${path} is still there though ${l.why}: ${l.stillDoes}; provision run removes it`,
    });
    part.changes.push(...stale.changes);
    part.checks.push(...stale.checks);
    part.notes.push(`${l.why}: removing ${path}; ${l.then}`);
  }
  return part;
}

// One formatter for every call: BigInt's toLocaleString builds a new one each time (~0.15 ms, every plan of every host).
const EN_US = new Intl.NumberFormat("en-US");

function thousands(n: number | bigint): string {
  return EN_US.format(n);
}
