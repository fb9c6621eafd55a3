import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { isAbsolute, join, resolve } from "node:path";
import {
  createHostCertificateAuthorities,
  createUserCertificate,
  signHostKey,
  type HostCertificateAuthorities,
  type HostCertificatePolicy,
  type HostCertificateSpec,
  type UserCertificate,
} from "./certificates.js";
import { buildTemplate, prepareHostFs } from "./hostfs.js";
import { systemdContainersRunning, systemdFleetPrefixesOnMachine } from "./systemd/containers.js";
import {
  listRecordedPrefixes,
  prefixesOwningSubnets,
  readFleetRecord,
  reserveSubnet,
  writeFleetRecord,
} from "./registry.js";
import {
  allOrThrow,
  isProcessRunning,
  mapWithConcurrency,
  runChecked,
  runCommand,
  sleep,
  SYSTEM_ENV,
  type CommandResult,
} from "./shell.js";
import {
  DEFAULT_FLEET_DIR_PREFIX,
  DEFAULT_FLEET_PARENT_DIR,
  fleetDirOf,
  fleetInterfaceNames,
  fleetNetnsNames,
  isProcessInNetns,
  names,
  pidsInNetns,
  teardownFleetSync,
} from "./teardown.js";
import {
  createNetwork,
  MAX_HOSTS_PER_NETWORK,
  planTopology,
  validateSegments,
  type HostSpec,
  type SegmentOptions,
  type Topology,
} from "./topology.js";

export type { HostCertificatePolicy, HostCertificateSpec, SegmentOptions };

export interface FleetHost {
  name: string;
  address: string;
  netns: string;
  etcDir: string;
  sshdPid: number;
  /** Set on a host hidden in a segment: that segment's number (see Fleet.segments). */
  segment?: number;
  /** Set on a host hidden in a segment: the bastion it is reached through. */
  via?: string;
}

export interface FleetSegment {
  /** 1-based, in the order of StartFleetOptions.segments. */
  number: number;
  /** The segment's own /24; the bastion holds its .1, the hosts .2 and up. The controller cannot reach it. */
  subnet: string;
  /** Name of the bastion host. */
  via: string;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Fleet {
  prefix: string;
  dir: string;
  /** The /24 of the directly reachable hosts. */
  subnet: string;
  /** Every host: the directly reachable ones (h1..h<hosts>) first, then each segment's in order. */
  hosts: FleetHost[];
  segments: FleetSegment[];
  /** ed25519 private key (no passphrase) authorized for root, deploy and deployw on every host. */
  clientKeyFile: string;
  /** One line per host, hidden ones included: "<address> ssh-ed25519 <key>". */
  knownHostsFile: string;
  /** Ansible YAML inventory of the directly reachable hosts only: all.children.fleet.hosts.<name>.ansible_host. */
  inventoryFile: string;
  /**
   * OpenSSH client config: `ssh -F <file> <address>` logs into any host as root, a hidden one through its bastions.
   * Jump hosts get only `-F` from the command line (never `-o` or `-i`), so this is how they learn key and known_hosts.
   */
  sshConfigFile: string;
  /** With hostCertificates: the fleet host CA's public key. */
  hostCaPublicKeyFile?: string;
  /** With hostCertificates: only "@cert-authority <every fleet /24> <fleet host CA>", no plain host keys. */
  certKnownHostsFile?: string;
  /** With userCertificates: the CA every host's sshd trusts (TrustedUserCAKeys). */
  userCaPublicKeyFile?: string;
  /** With userCertificates: a key in no authorized_keys; its `<file>-cert.pub` is valid for root, deploy and deployw. */
  userCertKeyFile?: string;
  /** Password of user `deployw`, whose sudo asks for it. */
  sudoPassword: string;
  /**
   * Runs a shell command as root inside a host (its net, mount and uts namespaces).
   * Never throws on a non-zero exit; a command still running after timeoutMs (default 60 s) is killed and reports 124.
   */
  exec(host: string, script: string, options?: ExecOptions): Promise<CommandResult>;
  /** The hosts hidden in segment `segment` (1-based). */
  hostsBehind(segment: number): FleetHost[];
  /** The bastions to pass through to reach a host, outermost first (the order of `ssh -J`); empty for a reachable host. */
  jumpHostsOf(host: string): FleetHost[];
  /** Idempotent; kills every process of every host and removes netns, interfaces, routes, subnet claims and dir. */
  stop(): Promise<void>;
}

export interface StartFleetOptions {
  /** Directly reachable hosts, h1..h<hosts>. */
  hosts: number;
  /** Private networks behind bastions; their hosts continue the numbering (h<hosts+1>, …). */
  segments?: SegmentOptions[];
  /** Which hosts present a host certificate, and what kind; null for a host without one. */
  hostCertificates?: HostCertificatePolicy;
  /** Every host trusts a fleet user CA, and the fleet gets a client key that only its certificate lets in. */
  userCertificates?: boolean;
  prefix?: string;
  dir?: string;
  /** Leave the fleet running when this process exits (used by the CLI); remove it with `cli.js down PREFIX`. */
  keepAfterExit?: boolean;
}

export const MAX_HOSTS = MAX_HOSTS_PER_NETWORK;
const MAX_INTERFACE_NAME_LENGTH = 15;
const STARTUP_CONCURRENCY = 16;
const SSHD_READY_TIMEOUT_MS = 10_000;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const SSHD_BINARY = "/usr/sbin/sshd";
const REQUIRED_COMMANDS = [
  "ip",
  "sudo",
  "unshare",
  "nsenter",
  "ssh-keygen",
  "useradd",
  "chpasswd",
  "visudo",
  "cp",
  "hostname",
  "mount",
];
/** Fixed width (pid base36 padded to 5, since pid_max <= 2^22) so names can be parsed back without a separator. */
const PID_DIGITS = 5;
const RANDOM_DIGITS = 3;
const STANDARD_PREFIX_LENGTH = "pv".length + PID_DIGITS + RANDOM_DIGITS;
const STANDARD_PREFIX = /^pv[0-9a-z]{8}$/;

export function checkFleetPrerequisites(): string[] {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push("must run as root (creates network namespaces, bridges and mounts)");
  if (process.platform !== "linux") problems.push("needs Linux (network and mount namespaces)");
  if (!isExecutable(SSHD_BINARY)) problems.push(`${SSHD_BINARY} not found: install openssh-server`);
  for (const command of REQUIRED_COMMANDS) {
    if (!findInPath(command)) problems.push(`command '${command}' not found in ${SYSTEM_ENV.PATH}`);
  }
  return problems;
}

export async function startFleet(opts: StartFleetOptions): Promise<Fleet> {
  const prefix = opts.prefix ?? newFleetPrefix();
  const dir = resolve(opts.dir ?? names.defaultDir(prefix));
  assertCanStart(opts, prefix, dir);
  cleanUpOnExit(prefix, dir);
  try {
    const fleet = await createFleet(opts, prefix, dir);
    if (opts.keepAfterExit) stopCleaningUpOnExit(prefix);
    return fleet;
  } catch (error) {
    teardownFleetSync(prefix, dir);
    stopCleaningUpOnExit(prefix);
    throw error;
  }
}

/** Fleets whose creator is gone (what a run failed to remove); a CLI-kept fleet counts as alive while any of its processes runs. */
export function staleFleetPrefixes(): string[] {
  return discoverFleetPrefixes().filter(isStale);
}

/** The process group its creator belonged to, where the fleet's record says (see FleetRecord.ownerGroup). */
export function ownerGroupOf(prefix: string): number | undefined {
  return readFleetRecord(prefix)?.ownerGroup;
}

export function processGroupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}

export async function cleanupStaleFleets(): Promise<string[]> {
  const stale = staleFleetPrefixes();
  for (const prefix of stale) teardownFleetSync(prefix);
  return stale;
}

/** Stops a fleet known only by its prefix (e.g. one kept running by the CLI); returns what could not be removed. */
export function stopFleetByPrefix(prefix: string): string[] {
  return teardownFleetSync(prefix, fleetDirOf(prefix));
}

export function fleetExists(prefix: string): boolean {
  return (
    readFleetRecord(prefix) !== undefined ||
    fleetNetnsNames(prefix).length > 0 ||
    fleetInterfaceNames(prefix).length > 0 ||
    existsSync(fleetDirOf(prefix))
  );
}

export function newFleetPrefix(): string {
  return `pv${process.pid.toString(36).padStart(PID_DIGITS, "0")}${randomBase36(RANDOM_DIGITS)}`;
}

function randomBase36(length: number): string {
  return Array.from(randomBytes(length), (byte) => (byte % 36).toString(36)).join("");
}

function ownerPidOfStandardPrefix(prefix: string): number | undefined {
  return STANDARD_PREFIX.test(prefix) ? parseInt(prefix.slice(2, 2 + PID_DIGITS), 36) : undefined;
}

function assertCanStart(opts: StartFleetOptions, prefix: string, dir: string): void {
  const problems = checkFleetPrerequisites();
  if (problems.length > 0) throw new Error(`cannot start a fleet:\n- ${problems.join("\n- ")}`);
  const hostCount = opts.hosts;
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > MAX_HOSTS) {
    throw new Error(`hosts must be an integer in 1..${MAX_HOSTS}, got ${hostCount}`);
  }
  validateSegments(hostCount, opts.segments ?? []);
  if (!/^[a-z][0-9a-z]*$/.test(prefix) || names.veth(prefix, hostCount).length > MAX_INTERFACE_NAME_LENGTH) {
    throw new Error(
      `prefix '${prefix}' must be lowercase alphanumeric and short enough for '${names.veth(prefix, hostCount)}' to fit ${MAX_INTERFACE_NAME_LENGTH} chars`,
    );
  }
  if (fleetExists(prefix)) throw new Error(`a fleet with prefix ${prefix} already exists`);
  // The whole dir is deleted on stop, so it must be ours alone.
  if (!isAbsolute(dir) || dir === "/" || (existsSync(dir) && readdirSync(dir).length > 0)) {
    throw new Error(`fleet dir ${dir} must be an absolute path to a missing or empty directory`);
  }
}

interface FleetFiles {
  clientKeyFile: string;
  knownHostsFile: string;
  inventoryFile: string;
  sshConfigFile: string;
}

interface FleetCertificates {
  host?: HostCertificateAuthorities;
  user?: UserCertificate;
}

/** What every host's startup shares. */
interface HostSetup {
  templateDir: string;
  certificates: FleetCertificates;
  certificateFor: (spec: HostSpec) => HostCertificateSpec | null;
}

async function createFleet(opts: StartFleetOptions, prefix: string, dir: string): Promise<Fleet> {
  const topology = planTopology(prefix, dir, opts.hosts, opts.segments ?? [], () => reserveSubnet(prefix));
  writeFleetRecord({
    prefix,
    dir,
    ownerPid: process.pid,
    ownerGroup: processGroupOf(process.pid),
    keepAfterExit: opts.keepAfterExit ?? false,
  });
  await mountMemoryBackedDir(dir, prefix);
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const files: FleetFiles = {
    clientKeyFile: join(dir, "client_ed25519"),
    knownHostsFile: join(dir, "known_hosts"),
    inventoryFile: join(dir, "inventory.yml"),
    sshConfigFile: join(dir, "ssh_config"),
  };
  const sudoPassword = randomBytes(18).toString("base64url");
  const [, certificates] = await allOrThrow([
    runChecked("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `provision-fleet-${prefix}`,
      "-f",
      files.clientKeyFile,
    ]),
    createCertificates(opts, prefix, dir, topology),
  ] as const);
  const templateDir = join(dir, "template");
  const userCaPublicKey = certificates.user && readFileSync(certificates.user.userCaPublicKeyFile, "utf8");
  await buildTemplate(templateDir, readFileSync(`${files.clientKeyFile}.pub`, "utf8"), sudoPassword, userCaPublicKey);

  await createNetwork(prefix, topology);
  const setup: HostSetup = { templateDir, certificates, certificateFor: certificatePolicy(opts, certificates) };
  const started = await mapWithConcurrency(topology.hosts, STARTUP_CONCURRENCY, (spec) => startHost(spec, setup));
  rmSync(templateDir, { recursive: true, force: true });

  writeFileSync(files.knownHostsFile, started.map(({ host, publicKey }) => `${host.address} ${publicKey}\n`).join(""));
  const hosts = started.map(({ host }) => host);
  writeFileSync(files.inventoryFile, inventoryYaml(hosts.filter(isDirectlyReachable), files.clientKeyFile));
  writeFileSync(files.sshConfigFile, sshClientConfig(hosts, files));
  mkdirSync(join(dir, "group_vars"), { recursive: true });
  writeFileSync(join(dir, "group_vars", "fleet.yaml"), FLEET_GROUP_VARS);
  return fleetHandle({
    prefix,
    dir,
    subnet: topology.subnet,
    hosts,
    segments: fleetSegments(topology),
    sudoPassword,
    ...files,
    ...certificateFiles(certificates),
  });
}

async function createCertificates(
  opts: StartFleetOptions,
  prefix: string,
  dir: string,
  topology: Topology,
): Promise<FleetCertificates> {
  const subnets = [topology.subnet, ...topology.segments.map((segment) => segment.subnet)];
  const [host, user] = await allOrThrow([
    opts.hostCertificates ? createHostCertificateAuthorities(dir, prefix, subnets) : undefined,
    opts.userCertificates ? createUserCertificate(dir, prefix) : undefined,
  ] as const);
  return { host, user };
}

function certificatePolicy(
  opts: StartFleetOptions,
  certificates: FleetCertificates,
): (spec: HostSpec) => HostCertificateSpec | null {
  const policy = opts.hostCertificates;
  if (!policy || !certificates.host) return () => null;
  return (spec) => policy({ name: spec.name, address: spec.address });
}

function certificateFiles({ host, user }: FleetCertificates): Partial<Fleet> {
  return {
    ...(host && { hostCaPublicKeyFile: host.hostCaPublicKeyFile, certKnownHostsFile: host.certKnownHostsFile }),
    ...(user && { userCaPublicKeyFile: user.userCaPublicKeyFile, userCertKeyFile: user.userCertKeyFile }),
  };
}

function fleetSegments(topology: Topology): FleetSegment[] {
  return topology.segments.map(({ number, subnet, via }) => ({ number, subnet, via }));
}

function isDirectlyReachable(host: { via?: string }): boolean {
  return host.via === undefined;
}

/**
 * Each host copies a whole /etc (~1200 entries, most of them symlinks); on a disk that costs about a second per host,
 * on tmpfs a few milliseconds. Teardown unmounts it, which also frees the memory.
 */
async function mountMemoryBackedDir(dir: string, prefix: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  await runChecked("mount", ["-t", "tmpfs", "-o", "mode=0755", `provision-fleet-${prefix}`, dir]);
}

async function startHost(spec: HostSpec, setup: HostSetup): Promise<{ host: FleetHost; publicKey: string }> {
  const certificate = setup.certificateFor(spec);
  const features = { hostCertificate: certificate !== null, trustedUserCa: setup.certificates.user !== undefined };
  const { publicKey, hostPublicKeyFile } = await prepareHostFs(
    setup.templateDir,
    spec.hostDir,
    spec.name,
    spec.address,
    features,
  );
  if (certificate && setup.certificates.host)
    await signHostKey(setup.certificates.host, hostPublicKeyFile, spec, certificate);
  const logFile = join(spec.hostDir, "sshd.log");
  const sshdPid = launchSshd(spec, logFile);
  await waitForSshd(spec, sshdPid, logFile);
  return { host: fleetHostOf(spec, sshdPid), publicKey };
}

function fleetHostOf(spec: HostSpec, sshdPid: number): FleetHost {
  const host: FleetHost = {
    name: spec.name,
    address: spec.address,
    netns: spec.netns,
    etcDir: join(spec.hostDir, "etc"),
    sshdPid,
  };
  return spec.via === undefined ? host : { ...host, segment: spec.segment, via: spec.via };
}

// Runs in the host's netns and a fresh mount+uts namespace; every step execs, so the spawned pid ends up being sshd's.
const HOST_BOOT_SCRIPT = `
set -e
ip addr add "$1/24" dev eth0
ip link set eth0 up
ip link set lo up
for dir in etc home root; do mount --bind "$2/$dir" "/$dir"; done
hostname "$3"
exec ${SSHD_BINARY} -D -e
`;

function launchSshd(spec: HostSpec, logFile: string): number {
  const log = openSync(logFile, "a");
  try {
    // detached = setsid: sshd must not die with our terminal or process group (the CLI exits and leaves it running).
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        spec.netns,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "-c",
        HOST_BOOT_SCRIPT,
        "sh",
        spec.address,
        spec.hostDir,
        spec.name,
      ],
      { detached: true, stdio: ["ignore", log, log], env: SYSTEM_ENV, cwd: "/" },
    );
    child.on("error", () => {});
    child.unref();
    if (child.pid === undefined) throw new Error(`could not spawn sshd for ${spec.name}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

async function waitForSshd(spec: HostSpec, pid: number, logFile: string): Promise<void> {
  const deadline = Date.now() + SSHD_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isProcessRunning(pid)) throw sshdFailure(spec, "sshd exited during startup", logFile);
    // The controller cannot probe a hidden host; its listening socket already queues connections.
    if (!isDirectlyReachable(spec) && logSaysListening(logFile)) return assertIsSshd(spec, pid, logFile);
    // Probing before sshd listens costs a full SYN retransmit (1 s) when the address is not up yet, so ask the log first.
    const probePort = logSaysListening(logFile) ? await connectAndClose(spec.address, 22, 1_000) : undefined;
    if (probePort !== undefined) {
      // sshd logs the probe's connection from a child process a few ms after we close it; a test
      // that compares the log before and after its own step must not see those lines arrive late.
      await waitForProbeLogged(spec, probePort, logFile, deadline);
      return assertIsSshd(spec, pid, logFile);
    }
    await sleep(25);
  }
  throw sshdFailure(spec, `sshd did not accept connections within ${SSHD_READY_TIMEOUT_MS} ms`, logFile);
}

async function waitForProbeLogged(spec: HostSpec, port: number, logFile: string, deadline: number): Promise<void> {
  const closed = new RegExp(`Connection (closed|reset) by \\S+ port ${port}\\b`);
  while (!closed.test(readFileSync(logFile, "utf8"))) {
    if (Date.now() > deadline)
      throw sshdFailure(spec, `sshd never logged the end of the readiness probe from port ${port}`, logFile);
    await sleep(5);
  }
}

function logSaysListening(logFile: string): boolean {
  return readFileSync(logFile, "utf8").includes("Server listening on");
}

function assertIsSshd(spec: HostSpec, pid: number, logFile: string): void {
  const command = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  if (command !== "sshd") throw sshdFailure(spec, `expected pid ${pid} to be sshd, found ${command}`, logFile);
}

function sshdFailure(spec: HostSpec, reason: string, logFile: string): Error {
  const log = existsSync(logFile) ? readFileSync(logFile, "utf8").trim() : "(no log)";
  return new Error(
    `fleet host ${spec.name} (${spec.address}, netns ${spec.netns}): ${reason}\n--- sshd log ---\n${log}`,
  );
}

/** Connects and closes at once; the local port of an accepted connection, or undefined. */
function connectAndClose(host: string, port: number, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host, port });
    const finish = (localPort: number | undefined) => {
      socket.destroy();
      resolvePromise(localPort);
    };
    socket.setTimeout(timeoutMs, () => finish(undefined));
    socket.once("connect", () => finish(socket.localPort));
    socket.once("error", () => finish(undefined));
  });
}

/**
 * What this sandbox can't take, said the way a user would say it for their own containers: the
 * site playbook's 100k defaults, minus what a network namespace without CAP_SYS_RESOURCE refuses.
 */
const FLEET_GROUP_VARS = `# Fleet hosts are network namespaces on one machine, like containers:
# - every process's hard nofile is capped at 20000 and nothing has CAP_SYS_RESOURCE,
#   so a higher nofile could never take effect for a login (fd-limits refuses it);
fd_limits:
  soft_nofile: 16384
  hard_nofile: 20000
# - nf_conntrack_max and the hash size belong to the machine (read-only in a namespace);
conntrack:
  nf_conntrack_max: null
  hashsize: null
# - net.core.netdev_max_backlog exists only in the machine's own namespace.
syn_backlog:
  netdev_max_backlog: null
`;

function inventoryYaml(hosts: FleetHost[], clientKeyFile: string): string {
  const lines = [
    "all:",
    "  vars:",
    "    ansible_user: root",
    `    ansible_ssh_private_key_file: ${yamlScalar(clientKeyFile)}`,
    "  children:",
    "    fleet:",
    "      hosts:",
    ...hosts.flatMap((host) => [`        ${host.name}:`, `          ansible_host: ${host.address}`]),
  ];
  return lines.join("\n") + "\n";
}

function sshClientConfig(hosts: FleetHost[], files: FleetFiles): string {
  const addressOf = (name: string) => findHost(hosts, name).address;
  // One hop per hidden host: the jump ssh reads this same file, so a chain unrolls by itself.
  const jumps = hosts.flatMap((host) =>
    host.via === undefined ? [] : [`Host ${host.address}`, `  ProxyJump root@${addressOf(host.via)}`],
  );
  return [...jumps, sshClientDefaults(files)].join("\n");
}

/** `Host *`: root with the fleet's key, and only the fleet's known_hosts trusted. */
export function sshClientDefaults(files: { clientKeyFile: string; knownHostsFile: string }): string {
  return [
    "Host *",
    "  User root",
    `  IdentityFile ${files.clientKeyFile}`,
    "  IdentitiesOnly yes",
    `  UserKnownHostsFile ${files.knownHostsFile}`,
    "  StrictHostKeyChecking yes",
    "  BatchMode yes",
    "  ConnectTimeout 10",
    "",
  ].join("\n");
}

function yamlScalar(value: string): string {
  return /^[\w./-]+$/.test(value) ? value : JSON.stringify(value);
}

type FleetState = Omit<Fleet, "exec" | "stop" | "hostsBehind" | "jumpHostsOf">;

function fleetHandle(state: FleetState): Fleet {
  let stopped = false;
  return {
    ...state,
    exec: (host, script, options) => execInHost(findHost(state.hosts, host), script, options),
    hostsBehind: (segment) => state.hosts.filter((host) => host.segment === segment),
    jumpHostsOf: (host) => jumpHostsOf(state.hosts, findHost(state.hosts, host)),
    async stop() {
      if (stopped) return;
      const leftovers = teardownFleetSync(state.prefix, state.dir);
      stopCleaningUpOnExit(state.prefix);
      if (leftovers.length > 0) throw new Error(`fleet ${state.prefix} not fully stopped: ${leftovers.join(", ")}`);
      stopped = true;
    },
  };
}

function findHost(hosts: FleetHost[], nameOrAddress: string): FleetHost {
  const host = hosts.find((candidate) => candidate.name === nameOrAddress || candidate.address === nameOrAddress);
  if (!host) throw new Error(`no fleet host '${nameOrAddress}' (have ${hosts.map((h) => h.name).join(", ")})`);
  return host;
}

function jumpHostsOf(hosts: FleetHost[], host: FleetHost): FleetHost[] {
  const chain: FleetHost[] = [];
  for (let bastion = host.via; bastion !== undefined; bastion = chain[0]!.via) chain.unshift(findHost(hosts, bastion));
  return chain;
}

async function execInHost(host: FleetHost, script: string, options: ExecOptions = {}): Promise<CommandResult> {
  // Guards against pid reuse: entering a recycled pid's namespaces would run the script on the machine itself.
  if (!isProcessInNetns(host.sshdPid, host.netns)) {
    return { stdout: "", stderr: `fleet host ${host.name} is not running (sshd pid ${host.sshdPid} gone)`, code: 255 };
  }
  return runCommand("nsenter", ["-t", String(host.sshdPid), "-n", "-m", "-u", "--", "/bin/sh", "-c", script], {
    input: options.input ?? "",
    env: { HOME: "/root", USER: "root", LOGNAME: "root" },
    timeoutMs: options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
  });
}

function discoverFleetPrefixes(): string[] {
  const fromNames = [
    ...fleetNetnsNamesOnMachine().map((name) => name.replace(/-h\d+$/, "")),
    ...interfaceNamesOnMachine().map((name) => name.slice(0, STANDARD_PREFIX_LENGTH)),
    ...listDirSafe(DEFAULT_FLEET_PARENT_DIR)
      .filter((name) => name.startsWith(DEFAULT_FLEET_DIR_PREFIX))
      .map((name) => name.slice(DEFAULT_FLEET_DIR_PREFIX.length)),
  ].filter((prefix) => STANDARD_PREFIX.test(prefix));
  return [
    ...new Set([
      ...listRecordedPrefixes(),
      ...prefixesOwningSubnets(),
      ...fromNames,
      ...systemdFleetPrefixesOnMachine(),
    ]),
  ];
}

function fleetNetnsNamesOnMachine(): string[] {
  return listDirSafe("/run/netns").filter((name) => /^pv[0-9a-z]{8}-h\d+$/.test(name));
}

function interfaceNamesOnMachine(): string[] {
  return listDirSafe("/sys/class/net").filter((name) => /^pv[0-9a-z]{8}(b|v\d+)$/.test(name));
}

function isStale(prefix: string): boolean {
  const record = readFleetRecord(prefix);
  const owner = record?.ownerPid ?? ownerPidOfStandardPrefix(prefix);
  if (owner !== undefined && isProcessRunning(owner)) return false;
  if (record?.keepAfterExit && (pidsInNetns(fleetNetnsNames(prefix)).length > 0 || systemdContainersRunning(prefix)))
    return false;
  return true;
}

// Exit cleanup: fleets of this process are removed even when a run is interrupted or forgets stop().

const fleetsToRemoveOnExit = new Map<string, string>();
const CLEANUP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export function cleanUpOnExit(prefix: string, dir: string): void {
  if (fleetsToRemoveOnExit.size === 0) installExitHooks();
  fleetsToRemoveOnExit.set(prefix, dir);
}

export function stopCleaningUpOnExit(prefix: string): void {
  fleetsToRemoveOnExit.delete(prefix);
  if (fleetsToRemoveOnExit.size === 0) uninstallExitHooks();
}

function installExitHooks(): void {
  process.on("exit", removeFleetsOfThisProcess);
  for (const signal of CLEANUP_SIGNALS) process.on(signal, removeFleetsThenDie);
}

function uninstallExitHooks(): void {
  process.off("exit", removeFleetsOfThisProcess);
  for (const signal of CLEANUP_SIGNALS) process.off(signal, removeFleetsThenDie);
}

function removeFleetsOfThisProcess(): void {
  for (const [prefix, dir] of fleetsToRemoveOnExit) {
    try {
      teardownFleetSync(prefix, dir);
    } catch {
      // Best effort: keep going with the other fleets.
    }
  }
  fleetsToRemoveOnExit.clear();
}

function removeFleetsThenDie(signal: NodeJS.Signals): void {
  removeFleetsOfThisProcess();
  uninstallExitHooks();
  // Our listener suppressed the default action; re-raise unless someone else handles the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findInPath(command: string): string | undefined {
  return (SYSTEM_ENV.PATH ?? "")
    .split(":")
    .map((dir) => join(dir, command))
    .find(isExecutable);
}

function listDirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
