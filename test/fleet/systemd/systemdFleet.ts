import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { cleanUpOnExit, fleetExists, newFleetPrefix, processGroupOf, stopCleaningUpOnExit } from "../fleet.js";
import { reserveSubnet, writeFleetRecord } from "../registry.js";
import { allOrThrow, runChecked, type CommandResult } from "../shell.js";
import { names, teardownFleetSync } from "../teardown.js";
import { subnetBase } from "../topology.js";
import { clientFilesIn, createClientKey, writeClientFiles, type ClientFiles } from "./clientFiles.js";
import {
  machineCgroupDir,
  MAX_MACHINE_NAME_LENGTH,
  MAX_SYSTEMD_HOSTS,
  systemdFleetPrefixesOnMachine,
  systemdNames,
} from "./containers.js";
import { createHostImage } from "./hostImage.js";
import {
  bootContainer,
  execInContainer,
  powerOffContainer,
  type BootReport,
  type ContainerSpec,
  type ExecOptions,
} from "./nspawnHost.js";
import { checkSystemdFleetPrerequisites, prepareNspawnRuntime } from "./prerequisites.js";
import { DEBIAN_SUITES, ensureRootfs, type DebianSuite, type Rootfs } from "./rootfs.js";

// A fleet of real systemd hosts: Debian containers booted by systemd-nspawn on a bridge of their own, each with its own
// disk (an overlay of one cached rootfs), host keys and address. Stop and start of a host is a real reboot.

export type { BootReport, DebianSuite, ExecOptions };

export interface SystemdFleetHost {
  name: string;
  address: string;
  /** The nspawn machine name; its bridge port is "vb-<machine>". */
  machine: string;
  /** The host's own directory: overlay upper and work dirs, the merged root it boots from, its console log. */
  machineDir: string;
  /** The merged root filesystem (the host's "/" seen from this machine). */
  rootDir: string;
  consoleLogFile: string;
  /** The latest boot: at start, then after each reboot. */
  lastBoot: BootReport;
}

export interface SystemdFleet extends ClientFiles {
  prefix: string;
  suite: DebianSuite;
  /** Every file of the fleet; a tmpfs, removed on stop. */
  dir: string;
  /** The hosts' /24; the bridge in this machine's network namespace holds its .1. */
  subnet: string;
  bridge: string;
  rootfs: Rootfs;
  hosts: SystemdFleetHost[];
  /**
   * Runs a shell command as root inside a running host (all namespaces of its PID 1), never through SSH.
   * Never throws on a non-zero exit; a command still running after timeoutMs (default 60 s) reports 124.
   */
  exec(host: string, script: string, options?: ExecOptions): Promise<CommandResult>;
  /**
   * Powers the hosts off cleanly and boots them again, in parallel; resolves once each one's systemd finished startup
   * (running or degraded: see the reports' failedUnits) and its sshd accepts connections.
   */
  reboot(hosts: string | readonly string[]): Promise<BootReport[]>;
  /** Idempotent; removes every container, mount, cgroup, bridge, subnet claim and the fleet's dir. */
  stop(): Promise<void>;
}

export interface StartSystemdFleetOptions {
  /** h1..h<hosts>, at most 99. */
  hosts: number;
  /** Debian release the hosts run; default bookworm. */
  suite?: DebianSuite;
  prefix?: string;
  dir?: string;
  /** Leave the fleet running when this process exits (used by the CLI); remove it with `cli.js down PREFIX`. */
  keepAfterExit?: boolean;
}

/** The first boot of a cold machine builds the rootfs (about a minute) before any host starts. */
export async function startSystemdFleet(opts: StartSystemdFleetOptions): Promise<SystemdFleet> {
  const prefix = opts.prefix ?? newFleetPrefix();
  const dir = resolve(opts.dir ?? names.defaultDir(prefix));
  const suite = opts.suite ?? "bookworm";
  assertCanStart(opts, prefix, dir, suite);
  // Before anything is claimed: a failed build leaves nothing behind to clean up.
  const rootfs = await ensureRootfs(suite);
  await prepareNspawnRuntime();
  cleanUpOnExit(prefix, dir);
  try {
    const fleet = await createFleet(opts, prefix, dir, rootfs);
    if (opts.keepAfterExit) stopCleaningUpOnExit(prefix);
    return fleet;
  } catch (error) {
    teardownFleetSync(prefix, dir);
    stopCleaningUpOnExit(prefix);
    throw error;
  }
}

function assertCanStart(opts: StartSystemdFleetOptions, prefix: string, dir: string, suite: DebianSuite): void {
  const problems = checkSystemdFleetPrerequisites();
  if (problems.length > 0) throw new Error(`cannot start a systemd fleet:\n- ${problems.join("\n- ")}`);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_SYSTEMD_HOSTS) {
    throw new Error(`hosts must be an integer in 1..${MAX_SYSTEMD_HOSTS}, got ${opts.hosts}`);
  }
  if (!DEBIAN_SUITES.includes(suite)) throw new Error(`suite must be one of ${DEBIAN_SUITES.join(", ")}, got ${suite}`);
  const longestMachine = systemdNames.machine(prefix, opts.hosts);
  if (!/^[a-z][0-9a-z]*$/.test(prefix) || longestMachine.length > MAX_MACHINE_NAME_LENGTH) {
    throw new Error(
      `prefix '${prefix}' must be lowercase alphanumeric and short enough for machine name '${longestMachine}' to fit ` +
        `${MAX_MACHINE_NAME_LENGTH} chars (nspawn's bridge port 'vb-<machine>' must fit 15)`,
    );
  }
  if (fleetExists(prefix) || systemdFleetPrefixesOnMachine().includes(prefix)) {
    throw new Error(`a fleet with prefix ${prefix} already exists`);
  }
  // The whole dir is deleted on stop, so it must be ours alone.
  if (!isAbsolute(dir) || dir === "/" || (existsSync(dir) && readdirSync(dir).length > 0)) {
    throw new Error(`fleet dir ${dir} must be an absolute path to a missing or empty directory`);
  }
}

interface HostPlan {
  name: string;
  address: string;
  container: ContainerSpec;
  machineDir: string;
}

async function createFleet(
  opts: StartSystemdFleetOptions,
  prefix: string,
  dir: string,
  rootfs: Rootfs,
): Promise<SystemdFleet> {
  const subnet = reserveSubnet(prefix);
  writeFleetRecord({
    prefix,
    dir,
    ownerPid: process.pid,
    ownerGroup: processGroupOf(process.pid),
    keepAfterExit: opts.keepAfterExit ?? false,
  });
  // Memory-backed: the hosts' overlay upper dirs are their disks, and teardown frees them by unmounting.
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  await runChecked("mount", ["-t", "tmpfs", "-o", "mode=0755", `provision-fleet-${prefix}`, dir]);
  const files = clientFilesIn(dir);
  const clientPublicKey = readFileSync(await createClientKey(files, `provision-fleet-${prefix}`), "utf8");
  const bridge = names.bridge(prefix);
  await createBridge(bridge, subnet);

  const plans = Array.from({ length: opts.hosts }, (_, i) => planHost(prefix, dir, subnet, bridge, i + 1));
  const images = await allOrThrow(
    plans.map((plan) =>
      createHostImage({
        name: plan.name,
        addressWithPrefix: `${plan.address}/24`,
        rootfsDir: rootfs.dir,
        hostDir: plan.machineDir,
        clientPublicKey,
      }),
    ),
  );
  const boots = await allOrThrow(plans.map((plan) => bootContainer(plan.container)));
  writeClientFiles(
    files,
    plans.map((plan, i) => ({ name: plan.name, address: plan.address, hostPublicKeys: images[i]!.hostPublicKeys })),
  );
  const hosts = plans.map((plan, i) => hostOf(plan, boots[i]!));
  return fleetHandle({ prefix, suite: rootfs.suite, dir, subnet, bridge, rootfs, hosts, ...files }, plans);
}

function planHost(prefix: string, dir: string, subnet: string, bridge: string, index: number): HostPlan {
  const name = `h${index}`;
  const machine = systemdNames.machine(prefix, index);
  const machineDir = join(dir, name);
  // .1 is the bridge's.
  const address = `${subnetBase(subnet)}.${index + 1}`;
  return {
    name,
    address,
    machineDir,
    container: {
      prefix,
      name,
      machine,
      rootDir: join(machineDir, "root"),
      bridge,
      cgroupDir: machineCgroupDir(prefix, machine),
      logFile: join(machineDir, "console.log"),
      address,
    },
  };
}

async function createBridge(bridge: string, subnet: string): Promise<void> {
  const commands = [
    `link add ${bridge} type bridge`,
    `addr add ${subnetBase(subnet)}.1/24 dev ${bridge}`,
    `link set ${bridge} up`,
  ];
  await runChecked("ip", ["-batch", "-"], { input: commands.join("\n") + "\n" });
}

function hostOf(plan: HostPlan, boot: BootReport): SystemdFleetHost {
  return {
    name: plan.name,
    address: plan.address,
    machine: plan.container.machine,
    machineDir: plan.machineDir,
    rootDir: plan.container.rootDir,
    consoleLogFile: plan.container.logFile,
    lastBoot: boot,
  };
}

type FleetState = Omit<SystemdFleet, "exec" | "reboot" | "stop">;

function fleetHandle(state: FleetState, plans: readonly HostPlan[]): SystemdFleet {
  let stopped = false;
  const planOf = (nameOrAddress: string) => {
    const plan = plans.find((candidate) => candidate.name === nameOrAddress || candidate.address === nameOrAddress);
    if (!plan)
      throw new Error(`no systemd fleet host '${nameOrAddress}' (have ${plans.map((p) => p.name).join(", ")})`);
    return plan;
  };
  return {
    ...state,
    exec: (host, script, options) => execInContainer(planOf(host).container, script, options),
    async reboot(hosts) {
      const chosen = (typeof hosts === "string" ? [hosts] : [...hosts]).map(planOf);
      return allOrThrow(
        chosen.map(async (plan) => {
          await powerOffContainer(plan.container);
          const boot = await bootContainer(plan.container);
          state.hosts.find((host) => host.name === plan.name)!.lastBoot = boot;
          return boot;
        }),
      );
    },
    async stop() {
      if (stopped) return;
      const leftovers = teardownFleetSync(state.prefix, state.dir);
      stopCleaningUpOnExit(state.prefix);
      if (leftovers.length > 0)
        throw new Error(`systemd fleet ${state.prefix} not fully stopped: ${leftovers.join(", ")}`);
      stopped = true;
    },
  };
}
