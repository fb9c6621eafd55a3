import { readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { createInterface } from "node:readline";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { applySettings } from "./config/applySettings.js";
import { formatProblem, sortProblems, type ConfigProblem } from "./config/errors.js";
import { USED_VARS } from "./inventory/usedVars.js";
import { closest } from "./config/suggest.js";
import { explainHosts, explainRoles } from "./explain.js";
import { lintHosts } from "./lint.js";
import { findRole, ROLES } from "./roles.js";
import { Session, type SessionOptions } from "./session.js";
import { hasErrors, loadConfig } from "./load.js";
import {
  plainStyle,
  renderPlan,
  renderRollback,
  renderRunResult,
  renderVerify,
  ttyStyle,
  type Format,
  type Style,
} from "./output/format.js";
import { choosePlaybook } from "./playbookChoice.js";
import { graph, hostJson, listJson } from "./inventory/ansibleView.js";
import { loadInventory } from "./inventory/load.js";
import type { ResolvedHost } from "./resolve.js";
import { prepareConnector, type ConnectorOptions, type SshClientChoice } from "./transport/connector.js";
import { LoggingTransport } from "./transport/logging.js";
import type { Transport } from "./transport/types.js";
import type { Facts } from "./role.js";
import type { HostReport } from "./report.js";
import { toJson } from "./output/json.js";
import { Progress } from "./output/progress.js";
import type { RolloutPolicy } from "./rollout/policy.js";
import {
  hostsToResume,
  newRecordId,
  readRecord,
  RecordError,
  recordFor,
  STATE_DIR,
  writeRecord,
  writeRecordTo,
} from "./rollout/record.js";
import { rollout, type RolloutResult } from "./rollout/run.js";
import { layoutHosts, layoutRollout, type RolloutLayout } from "./rollout/layout.js";
import { describeShard, parseShard, ShardError, type ShardSpec } from "./rollout/shard.js";
import { checkBudgets, mergeRecords, notReadyForStage, type RecordFile } from "./rollout/merge.js";
import { renderRecord, renderVerdict } from "./output/recordReport.js";
import { loadCapacityHosts } from "./capacity/hosts.js";
import { capacityJson, renderCapacityText } from "./capacity/report.js";
import { runCapacityProbe } from "./capacity/run.js";
import { plural } from "./output/words.js";
import { foldHosts } from "./output/hostList.js";
import { PACKAGE_VERSION } from "./installRoot.js";
import { selectRoles, splitTags } from "./roleSelection.js";
import { DEFAULT_PLAYBOOK } from "./installRoot.js";
import {
  BUNDLED_PLAYBOOK,
  PlanFileError,
  readPlanFile,
  reportsOf,
  savedPlanFor,
  writePlanFile,
  type SavedPlan,
} from "./savedPlan/planFile.js";
import { ageWarning, configDigest, playbookDigest, refusal, staleReasons } from "./savedPlan/compare.js";
import { renderSavedPlanHeader, savedPlanDetails } from "./savedPlan/show.js";
import { fullOutputCommand, GITHUB_COMMENT_CHARS } from "./output/markdown.js";
import { EXIT_CRITICAL, readStatus, statusExitCode } from "./status/read.js";
import { renderStatus, statusJson } from "./status/render.js";
import { statusMetrics } from "./status/prometheus.js";
import { thresholdsFrom, ThresholdError } from "./status/thresholds.js";
import { watchStatus } from "./status/watch.js";
import { WALL_IDS } from "./status/walls.js";
import { writeAtomically } from "./writeAtomically.js";

/** The only place that parses argv, prints, and exits. */

interface RunOptions {
  batches?: string;
  maxFailPerBatch?: string;
  maxFailTotal?: string;
  pause?: string;
  allowPlanDrift?: boolean;
  resume?: string | true;
  /** A plan saved by `plan -o`, applied as reviewed. */
  plan?: string;
  stateDir: string;
  shard?: string;
  shardBy: string;
  stage?: number;
  after?: string;
}

interface CommonOptions {
  inventory: string[];
  /** false with --no-color. */
  color: boolean;
  tags: string[];
  skipTags: string[];
  listHosts: boolean;
  playbook?: string;
  limit?: string;
  forks: number;
  knownHosts: string[];
  acceptNewHostKeys: boolean;
  connectTimeout: number;
  commandTimeout: number;
  sshConfig?: string;
  sshClient: SshClientChoice;
  askBecomePass: boolean;
  json: boolean;
  verbose: boolean;
  format: Format;
  yes?: boolean;
}

const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_CHANGES = 2;

function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
    return n;
  };
}

const collect = (v: string, prev: string[]) => [...prev, v];
const PLAYBOOK_HELP =
  "playbook: which roles apply to which groups (default: ./provision.yaml, else ./playbooks/site.yaml when it is provision's, else the bundled one)";
const INVENTORY_HELP =
  "inventory source, as Ansible's -i: a YAML or INI file, ansible-inventory --list JSON (- for stdin), a directory of sources, or 'host1,host2,' (repeatable)";

/** How hosts are reached and trusted: the same options for every command that connects. */
function withConnection(cmd: Command): Command {
  return cmd
    .option(
      "--known-hosts <file>",
      "known_hosts file to trust (repeatable; new keys are recorded in the first)",
      collect,
      [] as string[],
    )
    .option(
      "--accept-new-host-keys",
      "record keys of hosts not yet in known_hosts (a changed key is still refused)",
      false,
    )
    .option("--connect-timeout <seconds>", "SSH connect and handshake timeout", positiveInt("--connect-timeout"), 10)
    .option(
      "--ssh-config <file>",
      "ssh_config file to read instead of ~/.ssh/config and /etc/ssh/ssh_config, as ssh -F",
    )
    .addOption(SSH_CLIENT_OPTION)
    .option(
      "-u, --user <name>",
      "login user of hosts whose inventory sets no ansible_user (beats ssh_config's User)",
      (v) => {
        if (!USED_VARS.user.check(v).ok)
          throw new InvalidArgumentError(`--user: ${JSON.stringify(v)} is not a login name`);
        return v;
      },
    )
    .option("--private-key <file>", "private key of hosts whose inventory sets no ansible_ssh_private_key_file")
    .option("-K, --ask-become-pass", "prompt for the sudo password (or set PROVISION_BECOME_PASSWORD)", false);
}

function withInventory(cmd: Command): Command {
  return cmd
    .argument("[inventory...]", "inventory sources (the same as -i)")
    .option("-i, --inventory <source>", INVENTORY_HELP, collect, [] as string[]);
}

/** Positional sources first, then each -i, in order: later sources override earlier ones, as in Ansible. */
function inventorySources(positional: string[], opts: { inventory: string[] }): string[] | null {
  const sources = [...positional, ...opts.inventory];
  if (sources.length === 0) {
    process.stderr.write(
      "no inventory given: pass -i FILE (a YAML or INI inventory, a directory of them, or - for ansible-inventory --list JSON on stdin), or set inventory in provision.cfg or ansible.cfg.\n",
    );
    return null;
  }
  if (sources.filter((s) => s === "-").length > 1) {
    process.stderr.write("-i - (stdin) can be given only once.\n");
    return null;
  }
  return sources;
}

/** -p, else the project's own playbook; a passed-over Ansible playbook is named, never used silently. */
function playbookFor(opts: { playbook?: string }): string {
  if (opts.playbook !== undefined) return opts.playbook;
  const choice = choosePlaybook(process.cwd(), (name) => findRole(name) !== undefined);
  if (choice.notice) process.stderr.write(`note: ${choice.notice}\n`);
  return choice.file;
}

const SSH_CLIENT_OPTION = new Option(
  "--ssh-client <client>",
  "ssh2 (in-process), openssh (the ssh command, with a master connection per host), or auto: ssh2 unless a host needs what only OpenSSH does (user certificates, FIDO/PKCS#11 keys)",
)
  .choices(["auto", "ssh2", "openssh"])
  .default("auto");

/** What reaching hosts needs, from the command line and the environment. */
function connectorOptions(
  opts: {
    knownHosts: string[];
    acceptNewHostKeys: boolean;
    connectTimeout: number;
    sshConfig?: string;
    sshClient: SshClientChoice;
    user?: string;
    privateKey?: string;
  },
  commandTimeoutMs: number,
  becomePassword: string | undefined,
): ConnectorOptions {
  return {
    // Without --known-hosts, the files ssh_config names (by default ~/.ssh/known_hosts first).
    knownHostsFiles: opts.knownHosts,
    acceptNewHostKeys: opts.acceptNewHostKeys,
    connectTimeoutMs: opts.connectTimeout * 1000,
    commandTimeoutMs,
    becomePassword,
    keyPassphrase: process.env.PROVISION_KEY_PASSPHRASE,
    sshConfigFile: opts.sshConfig,
    sshClient: opts.sshClient,
    defaultUser: opts.user,
    defaultPrivateKeyFile: opts.privateKey === undefined ? undefined : resolvePath(opts.privateKey),
  };
}

function withCommonOptions(cmd: Command): Command {
  return withConnection(withInventory(cmd))
    .option("-p, --playbook <file>", PLAYBOOK_HELP)
    .option("-l, --limit <pattern>", "only these hosts (Ansible patterns: host, group, !exclude, &intersect, a,b)")
    .option("-f, --forks <n>", "hosts handled at once", positiveInt("--forks"), 50)
    .option("--command-timeout <seconds>", "timeout of each remote step", positiveInt("--command-timeout"), 120)
    .option("--json", "print machine-readable JSON instead of text", false)
    .option("-v, --verbose", "log every connection and remote step on stderr", false)
    .option("--state-dir <dir>", "where run records are kept", STATE_DIR)
    .addOption(new Option("--format <format>", "text output style").choices(["text", "markdown"]).default("text"))
    .option("--no-color", "no colours, even on a terminal (as NO_COLOR=1)")
    .option(
      "-t, --tags <roles>",
      "only these roles (comma-separated or repeated; a role's name is its tag)",
      collect,
      [] as string[],
    )
    .option("--skip-tags <roles>", "all roles but these (comma-separated or repeated)", collect, [] as string[])
    .option("--list-hosts", "list the hosts (and their roles) this would contact, then exit without connecting", false);
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name("provision")
    .description("Tune Linux hosts for 10k-100k+ concurrent TCP connections, over SSH: plan, run, verify.")
    .version(PACKAGE_VERSION, "-V, --version", "print provision's version")
    .option(
      "--config <file>",
      "provision's config file (default: ./provision.cfg; ansible.cfg is read as Ansible finds it)",
    )
    .showHelpAfterError()
    .exitOverride();
  let exitCode = EXIT_OK;
  // Options not given take their value from provision.cfg, else ansible.cfg (src/config/applySettings.ts).
  program.hook("preAction", (_program, action) => {
    const ok = applySettings(action, program.opts<{ config?: string }>().config, (line) =>
      process.stderr.write(`${line}\n`),
    );
    if (!ok) throw new CommanderError(EXIT_ERROR, "provision.config", "the configuration has errors");
  });

  withCommonOptions(program.command("plan"))
    .description("show what run would change on each host (exit 0: nothing, 2: changes, 1: errors)")
    .option(
      "-o, --out <file>",
      "also save the plan (with the facts it rests on) for `provision run --plan FILE` to apply as reviewed",
    )
    .action(async (inventory: string[], opts: CommonOptions & { out?: string }) => {
      exitCode = await planCommand(inventory, opts);
    });
  withCommonOptions(program.command("run"))
    .description("apply the plan to every host, then verify it by reading every value back")
    .option("-y, --yes", "apply without asking for confirmation", false)
    .option("--batches <list>", "batch sizes, e.g. 1,10%,50%,100% (the last repeats); overrides the playbook's rollout")
    .option("--max-fail-per-batch <n|pct>", "failed hosts tolerated per batch; more stops the run (default 0)")
    .option("--max-fail-total <n|pct>", "failed hosts tolerated in the whole run; more stops it (default 0)")
    .option("--pause <seconds|prompt>", "wait between batches: seconds, or Enter on a terminal")
    .option("--allow-plan-drift", "go on when a batch's fresh plan differs from the one shown", false)
    .option(
      "--resume [record]",
      "retry only the hosts that failed or were not reached in a run record (default: the latest)",
    )
    .option(
      "--plan <file>",
      "apply a plan saved by `plan -o` exactly as reviewed: a host whose facts changed since is refused with the difference",
    )
    .option(
      "--shard <K/N>",
      "run only part K of N of the selected hosts (one job of a CI matrix or Kubernetes Indexed Job); `records merge` joins the parts",
    )
    .option(
      "--shard-by <how>",
      "name: by a hash of each host's name (stable as hosts come and go); group:G1,…,GN: part K is group GK",
      "name",
    )
    .option(
      "--stage <k>",
      "run only batch K of the rollout (one stage of a pipeline; a `records merge --check` gate between stages)",
      positiveInt("--stage"),
    )
    .option(
      "--after <record>",
      "with --stage K: the merged record of the gate after stage K-1; refuse to start unless that gate passed and the hosts, their config and the policy are still the same",
    )
    .action(async (inventory: string[], opts: CommonOptions & RunOptions) => {
      exitCode = await runCommand(inventory, opts);
    });
  program
    .command("records")
    .description("run records: `records merge` joins the records of a sharded or staged run")
    .command("merge")
    .description(
      "merge the run records of every shard (and stage) into one record and one report; --check: exit 1 when a failure budget is exceeded (the gate between stages)",
    )
    .argument("<records...>", "run records (JSON) written by `run --shard`/`--stage`, from every job")
    .option(
      "--check",
      "apply the batch and total failure budgets: exit 0 when the next stage may start, 1 when not",
      false,
    )
    .option(
      "--stage <k>",
      "the gate after stage K: every shard's record of stages 1..K must be there (none later)",
      positiveInt("--stage"),
    )
    .option("--final", "the last stage's gate: also fail when the rollout has batches no stage ran", false)
    .option("-o, --out <file>", "write the merged record here (default: the state directory, where --resume finds it)")
    .option("--state-dir <dir>", "where run records are kept", STATE_DIR)
    .option("--json", "print the merged record and the verdict as JSON", false)
    .option("--no-color", "no colours, even on a terminal (as NO_COLOR=1)")
    .action((files: string[], opts: MergeOptions) => {
      exitCode = mergeCommand(files, opts);
    });
  program
    .command("show")
    .description("print a plan saved by `plan -o`: who made it when, from what, and every change")
    .argument("<file>", "the saved plan")
    .option("--json", "print the plan as `plan --json` does, with the saved plan's details", false)
    .addOption(new Option("--format <format>", "text output style").choices(["text", "markdown"]).default("text"))
    .option("--no-color", "no colours, even on a terminal (as NO_COLOR=1)")
    .action((file: string, opts: { json: boolean; format: Format; color: boolean }) => {
      exitCode = showCommand(file, opts);
    });
  withCommonOptions(program.command("verify"))
    .description("read every managed value back and report drift (exit 1 on any mismatch)")
    .action(async (inventory: string[], opts: CommonOptions) => {
      exitCode = await verifyCommand(inventory, opts);
    });

  withConnection(withInventory(program.command("status")))
    .description(
      `how close each host is to each wall right now (read-only, one round trip per host; exit 0 ok or warn, ${EXIT_CRITICAL}: a wall over the critical threshold, 1: a host could not be read)`,
    )
    .option("-p, --playbook <file>", PLAYBOOK_HELP)
    .option("-l, --limit <pattern>", "only these hosts (Ansible patterns: host, group, !exclude, &intersect, a,b)")
    .option("-f, --forks <n>", "hosts read at once", positiveInt("--forks"), 50)
    .option("--command-timeout <seconds>", "timeout of the remote read", positiveInt("--command-timeout"), 120)
    .option(
      "--window <seconds>",
      "how long drop counters (ListenOverflows, conntrack drop, …) are sampled: their increase, not their total since boot",
      decimalSeconds("--window", 0.2, 60),
      1,
    )
    .option(
      "--warn <percent>",
      `warn at this % of a wall (default 70); WALL=PERCENT for one wall (repeatable; walls: ${WALL_IDS.join(", ")})`,
      collect,
      [] as string[],
    )
    .option(
      "--critical <percent>",
      "critical at this % (default 90); WALL=PERCENT for one wall",
      collect,
      [] as string[],
    )
    .option("--json", "print machine-readable JSON instead of text", false)
    .addOption(
      new Option("--format <format>", "text, or prometheus: node_exporter's textfile collector format")
        .choices(["text", "prometheus"])
        .default("text"),
    )
    .option("-o, --out <file>", "write the output to FILE atomically (for a textfile collector's directory)")
    .option("--watch <seconds>", "redraw every SECONDS on a terminal until Ctrl-C", decimalSeconds("--watch", 1, 3600))
    .option("-v, --verbose", "log every connection and remote step on stderr", false)
    .option("--no-color", "no colours, even on a terminal (as NO_COLOR=1)")
    .action(async (inventory: string[], opts: StatusOptions) => {
      exitCode = await statusCommand(inventory, opts);
    });
  withCommonOptions(program.command("rollback"))
    .description(
      "restore each host's original values and files from its snapshot, then verify them (running it twice is harmless)",
    )
    .option("-y, --yes", "roll back without asking for confirmation", false)
    .action(async (inventory: string[], opts: CommonOptions) => {
      exitCode = await rollbackCommand(inventory, opts);
    });
  program
    .command("explain")
    .description(
      "each role's params with their default and why; with --inventory, each host's values and where they came from",
    )
    .argument("[role]", "only this role")
    .option(
      "-i, --inventory <source>",
      `show the values resolved for the hosts of this inventory; ${INVENTORY_HELP}`,
      collect,
      [] as string[],
    )
    .option("-l, --limit <pattern>", "only these hosts (with --inventory)")
    .option("-p, --playbook <file>", PLAYBOOK_HELP)
    .action((role: string | undefined, opts: { inventory: string[]; limit?: string; playbook?: string }) => {
      exitCode = explainCommand(role, opts);
    });
  withConnection(withInventory(program.command("probe")))
    .description(
      "open as many concurrent TCP connections as possible from one host to one ip:port on another, hold them, and report the wall that stopped them and the settings that explain it",
    )
    .requiredOption("--client <host>", "inventory host that opens the connections")
    .requiredOption("--server <host>", "inventory host that accepts them, at the address provision reaches it by")
    .option("--max <n>", "stop at this many connections", wholeNumber("--max", 1, 1_000_000), 120_000)
    .option("--port <port>", "free TCP port the server's helper listens on", wholeNumber("--port", 1, 65535), 5201)
    .option("--duration <seconds>", "how long the open connections are held", wholeNumber("--duration", 0, 300), 20)
    .option("--json", "print machine-readable JSON instead of text", false)
    .action(async (inventory: string[], opts: ProbeOptions) => {
      exitCode = await probeCommand(inventory, opts);
    });
  withInventory(program.command("lint"))
    .description("validate inventory and playbook and check cross-role rules, without connecting (exit 1 on errors)")
    .option("-l, --limit <pattern>", "only these hosts")
    .option("-p, --playbook <file>", PLAYBOOK_HELP)
    .action((inventory: string[], opts: { inventory: string[]; limit?: string; playbook?: string }) => {
      exitCode = lintCommand(inventory, opts);
    });
  withInventory(program.command("inventory"))
    .description(
      "show the inventory as provision reads it, in ansible-inventory's formats (compare with ansible-inventory -i … --list)",
    )
    .option("--list", "every group with its hosts and children, and every host's merged vars (JSON)", false)
    .option("--host <host>", "one host's merged vars (JSON)")
    .option("--graph [group]", "the group tree from all (or from GROUP)")
    .option(
      "--playbook-dir <dir>",
      "also read group_vars/ and host_vars/ beside this playbook directory, as ansible-inventory --playbook-dir does",
    )
    .action((inventory: string[], opts: InventoryOptions) => {
      exitCode = inventoryCommand(inventory, opts);
    });
  // Generated from `program` as registered above, so it completes every command and option there is.
  program
    .command("completion")
    .description("print the shell completion script for provision (see README, Install)")
    .addArgument(program.createArgument("<shell>", "the shell: bash or zsh").choices(["bash", "zsh"]))
    .action(async (shell: "bash" | "zsh") => {
      const { completionScript } = await import("./output/completion.js");
      process.stdout.write(completionScript(program, shell));
    });

  if (argv.length <= 2) {
    process.stderr.write(program.helpInformation());
    return EXIT_ERROR;
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help")
      return EXIT_OK;
    if (typeof e.exitCode === "number") return EXIT_ERROR;
    throw err;
  }
  return exitCode;
}

/** --list-hosts: what would be contacted, and which roles each gets; nothing connects. */
function listHosts(hosts: ResolvedHost[]): string {
  const lines = hosts.map((h) => `  ${h.name}\t${h.roles.map((r) => r.role.name).join(", ") || "(no roles)"}`);
  return `hosts (${hosts.length}):\n${lines.join("\n")}\n`;
}

function style(opts: { color: boolean }): Style {
  return opts.color && process.stdout.isTTY && !process.env.NO_COLOR ? ttyStyle : plainStyle;
}

interface Prepared {
  /** The playbook used: -p, or the one choosePlaybook found. */
  playbook: string;
  hosts: ResolvedHost[];
  session: Session;
  policy: RolloutPolicy;
  progress: Progress | undefined;
}

async function prepare(
  inventory: string[],
  opts: CommonOptions & Partial<RunOptions>,
  setup: {
    /** Only these hosts (`run --resume`). */
    restrictTo?: string[];
    withProgress?: boolean;
    /** Which of the selected hosts this run contacts (a shard's part of a stage); may be none. */
    narrow?: (selected: ResolvedHost[], policy: RolloutPolicy) => ResolvedHost[];
    session?: SessionOptions;
  } = {},
): Promise<Prepared | number> {
  const { restrictTo, withProgress = false, narrow } = setup;
  const sources = inventorySources(inventory, opts);
  if (!sources) return EXIT_ERROR;
  const playbook = playbookFor(opts);
  const loaded = loadConfig(sources, playbook, opts.limit, opts);
  const { problems, policy } = loaded;
  for (const p of problems) process.stderr.write(`${formatProblem(p)}\n`);
  if (hasErrors(problems)) {
    const n = problems.filter((p) => p.severity === "error").length;
    process.stderr.write(`${plural(n, "error")} in the configuration; nothing was sent to any host.\n`);
    return EXIT_ERROR;
  }
  const selected = selectRoles(
    restrictTo ? loaded.hosts.filter((h) => restrictTo.includes(h.name)) : loaded.hosts,
    ROLES.map((r) => r.name),
    { tags: splitTags(opts.tags), skipTags: splitTags(opts.skipTags) },
  );
  for (const problem of selected.problems) process.stderr.write(`${problem}\n`);
  if (selected.problems.length > 0) return EXIT_ERROR;
  if (selected.hosts.length === 0) {
    process.stderr.write("no hosts matched the playbook (and --limit); nothing to do.\n");
    return EXIT_ERROR;
  }
  let hosts = selected.hosts;
  if (narrow) {
    try {
      hosts = narrow(hosts, policy);
    } catch (err) {
      if (!(err instanceof ShardError)) throw err;
      process.stderr.write(`${err.message}\nnothing was sent to any host.\n`);
      return EXIT_ERROR;
    }
  }
  if (opts.listHosts) {
    process.stdout.write(listHosts(hosts));
    return EXIT_OK;
  }
  let password: string | undefined;
  try {
    password = await becomePassword(opts, hosts);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  const connector = await prepareConnector(hosts, connectorOptions(opts, opts.commandTimeout * 1000, password));
  if (connector.notice) process.stderr.write(`note: ${connector.notice}\n`);
  const progress = withProgress
    ? new Progress(hosts.length, (t) => process.stderr.write(t), process.stderr.isTTY === true)
    : undefined;
  const log = (line: string) => process.stderr.write(`[${new Date().toISOString()}] ${line}\n`);
  const connect = async (host: ResolvedHost): Promise<Transport> => {
    if (!opts.verbose) return connector.connect(host);
    const started = Date.now();
    log(`${host.name}: connecting (${connector.describe(host)})`);
    try {
      const t = await connector.connect(host);
      log(`${host.name}: connected (${t.remoteAddress || "local"}) in ${Date.now() - started} ms`);
      return new LoggingTransport(t, log);
    } catch (err) {
      log(`${host.name}: connect failed in ${Date.now() - started} ms: ${(err as Error).message}`);
      throw err;
    }
  };
  const session = new Session(connect, opts.forks, progress ?? {}, () => connector.close(), {
    keepConnections: keptConnections(opts.forks),
    ...setup.session,
  });
  return { hosts, session, policy, progress, playbook };
}

async function becomePassword(opts: CommonOptions, hosts: ResolvedHost[]): Promise<string | undefined> {
  if (!hosts.some((h) => h.become)) return undefined;
  if (opts.askBecomePass) return askHidden("BECOME password: ");
  const fromEnv = process.env.PROVISION_BECOME_PASSWORD;
  return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
}

/**
 * Connections left open between a host's plan and its apply: past this many, a host's connection
 * closes after its plan and reopens for its apply (one more handshake). Tied to --forks, so a
 * controller's memory follows how many hosts it works on at once, not how many there are.
 */
function keptConnections(forks: number): number {
  return forks * CONNECTIONS_KEPT_PER_FORK;
}
const CONNECTIONS_KEPT_PER_FORK = 4;

/** Prepares the hosts and a session, runs `command` with them, and always closes the session. */
async function withSession(
  inventory: string[],
  opts: CommonOptions,
  command: (prepared: Prepared) => Promise<number>,
  session: SessionOptions = {},
): Promise<number> {
  // A status line on a terminal only: in CI the report that follows says it all.
  const prepared = await prepare(inventory, opts, { withProgress: process.stderr.isTTY === true, session });
  if (typeof prepared === "number") return prepared;
  try {
    return await command(prepared);
  } finally {
    await prepared.session.close();
  }
}

function planCommand(inventory: string[], opts: CommonOptions & { out?: string }): Promise<number> {
  return withSession(
    inventory,
    opts,
    async ({ session, hosts, playbook, progress }) => {
      const reports = await session.plan(hosts);
      progress?.finish();
      if (opts.json) process.stdout.write(`${toJson("plan", reports)}\n`);
      else
        process.stdout.write(
          renderPlan(reports, opts.format, opts.format === "text" ? style(opts) : plainStyle, {
            fullOutput: fullOutputCommand(process.argv.slice(2)),
          }),
        );
      const failed = reports.filter((r) => r.error).length;
      if (opts.out !== undefined) {
        if (failed > 0) {
          process.stderr.write(
            `not saved to ${opts.out}: ${plural(failed, "host")} could not be planned, and a saved plan must cover every host it names. Fix them, or leave them out with --limit.\n`,
          );
          return EXIT_ERROR;
        }
        const saved = savedPlanFor(
          reports,
          hosts,
          (host) => session.factsOf(host),
          {
            inventory: [...inventory, ...opts.inventory],
            playbook: resolvePath(playbook) === DEFAULT_PLAYBOOK ? BUNDLED_PLAYBOOK : playbook,
            limit: opts.limit,
            tags: splitTags(opts.tags),
            skipTags: splitTags(opts.skipTags),
          },
          { provision: PACKAGE_VERSION, at: new Date(), playbookBytes: readFileSync(playbook) },
        );
        writePlanFile(opts.out, saved);
        const changed = saved.hosts.filter((h) => h.status === "changed").length;
        process.stderr.write(
          `plan saved to ${opts.out} (${plural(saved.hosts.length, "host")}, ${changed} to change); after review, apply exactly it with: provision run --plan ${opts.out}\n`,
        );
      }
      if (failed > 0) return EXIT_ERROR;
      return reports.some((r) => r.status === "changed") ? EXIT_CHANGES : EXIT_OK;
    },
    { keepFacts: opts.out !== undefined ? "all" : "none" },
  );
}

function showCommand(file: string, opts: { json: boolean; format: Format; color: boolean }): number {
  let saved: SavedPlan;
  try {
    saved = readPlanFile(file);
  } catch (err) {
    if (!(err instanceof PlanFileError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_ERROR;
  }
  const reports = reportsOf(saved);
  if (opts.json) {
    process.stdout.write(`${toJson("plan", reports, { savedPlan: { file, ...savedPlanDetails(saved) } })}\n`);
  } else {
    const header = renderSavedPlanHeader(file, saved, opts.format);
    process.stdout.write(header);
    process.stdout.write(
      renderPlan(reports, opts.format, opts.format === "text" ? style(opts) : plainStyle, {
        fullOutput: fullOutputCommand(process.argv.slice(2)),
        maxChars: GITHUB_COMMENT_CHARS - header.length,
      }),
    );
  }
  return EXIT_OK;
}

async function runCommand(inventory: string[], opts: CommonOptions & RunOptions): Promise<number> {
  let shard: ShardSpec | undefined;
  try {
    shard = shardOf(opts);
  } catch (err) {
    if (!(err instanceof ShardError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_ERROR;
  }
  let restrictTo: string[] | undefined;
  let reviewed: SavedPlan | undefined;
  if (opts.plan !== undefined) {
    const loaded = loadReviewedPlan(opts.plan, opts);
    if (typeof loaded === "number") return loaded;
    reviewed = loaded;
    // The plan fixes what is selected; the inventory may be given again (e.g. from another checkout path).
    if (inventory.length === 0 && opts.inventory.length === 0) inventory = reviewed.inventory;
    opts = {
      ...opts,
      limit: reviewed.limit ?? undefined,
      tags: reviewed.tags,
      skipTags: reviewed.skipTags,
      playbook: reviewed.playbook === BUNDLED_PLAYBOOK ? DEFAULT_PLAYBOOK : reviewed.playbook,
    };
  } else if (opts.resume !== undefined) {
    try {
      const { file, record } = readRecord(opts.stateDir, opts.resume === true ? undefined : opts.resume);
      restrictTo = hostsToResume(record);
      process.stderr.write(
        `resuming ${file}: ${plural(restrictTo.length, "host")} failed or were not reached${restrictTo.length > 0 ? ` (${foldHosts(restrictTo)})` : ""}\n`,
      );
      if (restrictTo.length === 0) return EXIT_OK;
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return EXIT_ERROR;
    }
  }
  let previous: RecordFile | undefined;
  if (opts.after !== undefined) {
    if (opts.stage === undefined || opts.stage < 2) {
      process.stderr.write("--after names the record of the gate before a stage: it needs --stage 2 or later\n");
      return EXIT_ERROR;
    }
    try {
      previous = readRecord(opts.stateDir, opts.after);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return EXIT_ERROR;
    }
  }
  let layout: RolloutLayout<ResolvedHost> | undefined;
  const narrow = (selected: ResolvedHost[], policy: RolloutPolicy) => {
    layout = layoutRollout(selected, policy, {
      ...(shard ? { shard } : {}),
      ...(opts.stage ? { stage: opts.stage } : {}),
      configOf: configDigest,
    });
    // Each shard would go through the batches at its own pace, each spending the whole batch's
    // budget: with more than one batch, the stages (and the gates between them) keep them in step.
    if (shard && opts.stage === undefined && layout.batchCount > 1)
      throw new ShardError(
        `--shard with a rollout of ${layout.batchCount} batches needs --stage K: one pipeline stage per batch, with records merge --check between them (or --batches 100% for a single stage)`,
      );
    if (previous) {
      const reasons = notReadyForStage(previous.record, opts.stage!, {
        selection: layout.selected,
        policy,
        batchCount: layout.batchCount,
      });
      if (reasons.length > 0)
        throw new ShardError(
          `stage ${opts.stage} must not start after ${previous.file}:\n${reasons.map((r) => `  - ${r}`).join("\n")}`,
        );
    }
    return layoutHosts(layout);
  };
  // Only a reviewed run explains a refusal from the facts its batch's plan was made from.
  const sessionOptions: SessionOptions = { keepFacts: opts.plan !== undefined ? "until-done" : "none" };
  const prepared = await prepare(inventory, opts, { restrictTo, withProgress: true, narrow, session: sessionOptions });
  if (typeof prepared === "number") return prepared;
  const { hosts, session, policy, progress, playbook } = prepared;
  if (layout!.shard || layout!.stage !== undefined) process.stderr.write(`${describePart(layout!, hosts.length)}\n`);
  // A single stage of a pipeline has no pause to wait at.
  if (
    policy.pause === "prompt" &&
    !process.stdin.isTTY &&
    layout!.batches.filter((b) => b.hosts.length > 0).length > 1
  ) {
    process.stderr.write(
      'rollout pause: "prompt" needs a terminal to press Enter on; use seconds (--pause 30) in CI.\n',
    );
    await session.close();
    return EXIT_ERROR;
  }
  const startedAt = new Date();
  try {
    if (reviewed && !reviewedPlanStillApplies(opts.plan!, reviewed, hosts, playbook)) return EXIT_ERROR;
    const planned = reviewed ? reportsOf(reviewed) : await session.plan(hosts);
    progress?.finish();
    if (!opts.json) {
      if (reviewed) process.stdout.write(renderSavedPlanHeader(opts.plan!, reviewed, opts.format));
      if (hosts.length > 0) process.stdout.write(renderPlan(planned, opts.format, style(opts)));
    }
    const pending = planned.filter((r) => r.status === "changed").length;
    if (
      pending > 0 &&
      !opts.yes &&
      !(await confirmed(`Apply these changes to ${plural(pending, "host")}?`, "apply", "not applied."))
    )
      return EXIT_ERROR;
    const recordMeta = {
      id: newRecordId(startedAt),
      startedAt,
      inventory: [...inventory, ...opts.inventory],
      playbook,
      limit: opts.limit,
      plan: opts.plan,
      policy,
      layout: layout!,
    };
    // After each batch, so a controller killed mid-run leaves a record that --resume can take.
    const checkpoint = (sofar: RolloutResult) => {
      const last = sofar.batches.at(-1)!;
      const why = `the run ended before it finished (the last checkpoint was after batch ${last.index} of ${layout!.batchCount})`;
      writeRecord(opts.stateDir, recordFor({ ...sofar, stopped: why }, recordMeta));
    };
    // Without a confirmation prompt nobody waited on the plan: the first batch applies it without re-reading.
    const result = await rollout(
      session,
      hosts,
      planned,
      policy,
      progress?.hooks(pauseBetweenBatches) ?? { pause: pauseBetweenBatches },
      {
        ...(reviewed
          ? { reviewed: { explain: (fresh: HostReport) => whyRefused(reviewed, fresh, session.factsOf(fresh.host)) } }
          : { shownIsFresh: pending === 0 || opts.yes }),
        layout: layout!,
        checkpoint,
      },
    );
    progress?.finish();
    const incomplete = result.reports.some((r) => r.status !== "changed" && r.status !== "unchanged");
    const recordFile = writeRecord(opts.stateDir, recordFor(result, recordMeta));
    if (opts.json)
      process.stdout.write(
        `${toJson("run", result.reports, { stopped: result.stopped ?? null, record: recordFile, ...partJson(layout!) })}\n`,
      );
    else {
      if (hosts.length === 0)
        process.stdout.write(
          "No host of the selection is in this part of the rollout: nothing was contacted. Its record still counts, so a merge sees every shard.\n",
        );
      else process.stdout.write(`\n${renderRunResult(result.reports, style(opts))}`);
      if (result.stopped) process.stdout.write(`STOPPED: ${result.stopped}\n`);
      if (result.drift) process.stdout.write(`\nThe plan now:\n${renderPlan(result.drift, opts.format, style(opts))}`);
      const resumeHint = incomplete ? " (provision run --resume retries what failed or was not reached)" : "";
      process.stdout.write(`record: ${recordFile}${resumeHint}\n`);
    }
    return result.stopped || incomplete ? EXIT_ERROR : EXIT_OK;
  } finally {
    await session.close();
  }
}

/** --shard and --shard-by as a spec (undefined when not sharded); --stage and --shard don't combine with --resume or --plan. */
function shardOf(opts: RunOptions): ShardSpec | undefined {
  const problems: string[] = [];
  const parted = opts.shard !== undefined || opts.stage !== undefined;
  if (parted && opts.resume !== undefined)
    problems.push(
      "--resume retries one record's hosts; with shards, merge the records (provision records merge) and resume the merged one without --shard/--stage",
    );
  if (parted && opts.plan !== undefined)
    problems.push("--plan applies one saved plan to all its hosts; --shard and --stage don't combine with it yet");
  if (opts.shard === undefined && opts.shardBy !== "name")
    problems.push(`--shard-by ${opts.shardBy} needs --shard K/N`);
  let spec: ShardSpec | undefined;
  try {
    if (opts.shard !== undefined) spec = parseShard(opts.shard, opts.shardBy);
  } catch (err) {
    if (!(err instanceof ShardError)) throw err;
    problems.push(err.message);
  }
  if (problems.length > 0) throw new ShardError(problems.join("\n"));
  return spec;
}

/** "shard 2/3: 34 of 100 selected hosts; stage 2 of 3 (batch 2: 40 hosts, 13 in this shard)". */
function describePart(layout: RolloutLayout<ResolvedHost>, mine: number): string {
  const shard = layout.shard ? `shard ${describeShard(layout.shard)}: ` : "";
  if (layout.stage === undefined) return `${shard}${mine} of ${plural(layout.selected.hosts, "selected host")}`;
  const batch = layout.batches[0];
  if (!batch)
    return `${shard}stage ${layout.stage}: the rollout has ${plural(layout.batchCount, "batch", "batches")} of ${plural(layout.selected.hosts, "host")}; nothing to do`;
  return `${shard}stage ${layout.stage} of ${layout.batchCount}: batch ${batch.index} has ${plural(batch.size, "host")}${layout.shard ? `, ${mine} in this shard` : ""}`;
}

function partJson(layout: RolloutLayout<ResolvedHost>): Record<string, unknown> {
  return {
    ...(layout.shard ? { shard: { index: layout.shard.index, count: layout.shard.count } } : {}),
    ...(layout.stage !== undefined ? { stage: layout.stage } : {}),
  };
}

interface MergeOptions {
  check: boolean;
  stage?: number;
  final: boolean;
  out?: string;
  stateDir: string;
  json: boolean;
  color: boolean;
}

/** `records merge`: one record and one report out of the shards' records; with --check, the gate's exit code. */
function mergeCommand(files: string[], opts: MergeOptions): number {
  const inputs: RecordFile[] = [];
  const unreadable: string[] = [];
  for (const file of files) {
    try {
      inputs.push(readRecord(opts.stateDir, file));
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      unreadable.push(err.message);
    }
  }
  if (unreadable.length > 0) {
    process.stderr.write(
      `${unreadable.join("\n")}\nnot merged: every job's record must be there (a pattern that matched nothing is passed as it is written: did the jobs write and upload their records?)\n`,
    );
    return EXIT_ERROR;
  }
  const merged = mergeRecords(inputs, new Date(), opts.stage);
  for (const note of merged.notes) process.stderr.write(`note: ${note}\n`);
  if (merged.problems.length > 0) {
    process.stderr.write(`${merged.problems.map((p) => `error: ${p}`).join("\n")}\nnot merged.\n`);
    return EXIT_ERROR;
  }
  const out = opts.out ?? undefined;
  const file = out === undefined ? writeRecord(opts.stateDir, merged.record) : writeRecordTo(out, merged.record);
  const verdict = checkBudgets(merged.record, { final: opts.final });
  if (opts.json) process.stdout.write(`${JSON.stringify({ record: merged.record, file, verdict }, null, 2)}\n`);
  else {
    const st = style(opts);
    process.stdout.write(renderRecord(merged.record, st));
    process.stdout.write(renderVerdict(verdict, st));
    process.stdout.write(`record: ${file} (merged from ${plural(inputs.length, "record")})\n`);
  }
  return opts.check && !verdict.pass ? EXIT_ERROR : EXIT_OK;
}

/** The saved plan, or an exit code when it can't be read or other flags would change what it selects. */
function loadReviewedPlan(file: string, opts: CommonOptions & RunOptions): SavedPlan | number {
  const conflicts = [
    opts.resume !== undefined && "--resume",
    opts.limit !== undefined && "--limit",
    opts.tags.length > 0 && "--tags",
    opts.skipTags.length > 0 && "--skip-tags",
    opts.playbook !== undefined && "--playbook",
    opts.allowPlanDrift && "--allow-plan-drift",
  ].filter((c): c is string => typeof c === "string");
  if (conflicts.length > 0) {
    process.stderr.write(
      `run --plan applies the saved plan's hosts and roles exactly; ${conflicts.join(", ")} would change them. Leave ${conflicts.length > 1 ? "them" : "it"} out, or make a new plan with ${conflicts.length > 1 ? "them" : "it"}.\n`,
    );
    return EXIT_ERROR;
  }
  try {
    const saved = readPlanFile(file);
    const warning = ageWarning(saved.createdAt, new Date());
    if (warning) process.stderr.write(`warning: ${warning}\n`);
    return saved;
  } catch (err) {
    if (!(err instanceof PlanFileError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_ERROR;
  }
}

/** False (after saying every reason) when the version, playbook or the hosts' configuration differ from the plan's. */
function reviewedPlanStillApplies(file: string, saved: SavedPlan, hosts: ResolvedHost[], playbook: string): boolean {
  const reasons = staleReasons(file, saved, {
    provision: PACKAGE_VERSION,
    playbookDigest: playbookDigest(readFileSync(playbook)),
    hosts: hosts.map((h) => ({ name: h.name, configDigest: configDigest(h) })),
  });
  if (reasons.length === 0) return true;
  process.stderr.write(
    `${file} no longer describes what run would do, so nothing was sent to any host:\n${reasons.map((r) => `  - ${r}\n`).join("")}Make a new plan (provision plan … -o ${file}) and have it reviewed.\n`,
  );
  return false;
}

/** Why a host of a reviewed plan is refused at run: how its plan and facts moved since review. */
function whyRefused(saved: SavedPlan, fresh: HostReport, now: Facts | undefined): string {
  const then = saved.hosts.find((h) => h.host === fresh.host)!;
  return refusal(saved.plans[then.plan]!.changes, fresh.plan?.changes ?? [], then.facts, now ?? then.facts);
}

function rollbackCommand(inventory: string[], opts: CommonOptions): Promise<number> {
  return withSession(inventory, opts, async ({ session, hosts, progress }) => {
    const question = `Restore the original values of ${plural(hosts.length, "host")} from their snapshots?`;
    if (!opts.yes && !(await confirmed(question, "roll back", "not rolled back."))) return EXIT_ERROR;
    const reports = await session.rollback(hosts);
    progress?.finish();
    if (opts.json) process.stdout.write(`${toJson("rollback", reports)}\n`);
    else process.stdout.write(renderRollback(reports, style(opts)));
    return reports.some((r) => r.error) ? EXIT_ERROR : EXIT_OK;
  });
}

/** Resolves false when the user stops the rollout at the pause. */
async function pauseBetweenBatches(pause: RolloutPolicy["pause"]): Promise<boolean> {
  if (pause === "prompt") return ask("Next batch: press Enter to go on (Ctrl-C stops) ", () => true);
  if (pause > 0) {
    process.stderr.write(`pausing ${pause} s before the next batch\n`);
    await new Promise((r) => setTimeout(r, pause * 1000));
  }
  return true;
}

interface StatusOptions extends Omit<CommonOptions, "format" | "tags" | "skipTags" | "listHosts"> {
  window: number;
  warn: string[];
  critical: string[];
  format: "text" | "prometheus";
  out?: string;
  watch?: number;
}

function decimalSeconds(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a number of seconds from ${min} to ${max}`);
    return n;
  };
}

async function statusCommand(inventory: string[], opts: StatusOptions): Promise<number> {
  let thresholds;
  try {
    thresholds = thresholdsFrom(opts.warn, opts.critical);
  } catch (err) {
    if (!(err instanceof ThresholdError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_ERROR;
  }
  if (opts.watch !== undefined && (opts.json || opts.format !== "text" || opts.out !== undefined)) {
    process.stderr.write(
      "--watch redraws a terminal view; for metrics over time run status --format prometheus -o FILE from a timer instead.\n",
    );
    return EXIT_ERROR;
  }
  if (opts.watch !== undefined && !process.stdout.isTTY) {
    process.stderr.write("--watch needs a terminal on stdout; without one, run status in a loop or from a timer.\n");
    return EXIT_ERROR;
  }
  const common = { ...opts, format: "text" as const, tags: [], skipTags: [], listHosts: false };
  return withSession(inventory, common, async ({ session, hosts, progress }) => {
    const read = async () => {
      const statuses = await readStatus(session, hosts, opts.window, thresholds);
      progress?.finish();
      return statuses;
    };
    if (opts.watch !== undefined) {
      const stop = new AbortController();
      const onInterrupt = () => stop.abort();
      process.once("SIGINT", onInterrupt);
      try {
        const last = await watchStatus({
          read,
          render: (statuses) => renderStatus(statuses, style(opts)),
          everySeconds: opts.watch,
          write: (text) => process.stdout.write(text),
          stop: stop.signal,
        });
        return last ? statusExitCode(last) : EXIT_ERROR;
      } finally {
        process.removeListener("SIGINT", onInterrupt);
      }
    }
    const statuses = await read();
    const text = opts.json
      ? `${statusJson(statuses, thresholds)}\n`
      : opts.format === "prometheus"
        ? statusMetrics(statuses, new Date())
        : renderStatus(statuses, style(opts));
    if (opts.out === undefined) process.stdout.write(text);
    else {
      writeAtomically(opts.out, text);
      process.stderr.write(`status of ${plural(statuses.length, "host")} written to ${opts.out}\n`);
    }
    return statusExitCode(statuses);
  });
}

function verifyCommand(inventory: string[], opts: CommonOptions): Promise<number> {
  return withSession(inventory, opts, async ({ session, hosts, progress }) => {
    const reports = await session.verify(hosts);
    progress?.finish();
    if (opts.json) process.stdout.write(`${toJson("verify", reports)}\n`);
    else
      process.stdout.write(
        renderVerify(reports, opts.format, opts.format === "text" ? style(opts) : plainStyle, {
          fullOutput: fullOutputCommand(process.argv.slice(2)),
        }),
      );
    return reports.every((r) => r.status === "unchanged") ? EXIT_OK : EXIT_ERROR;
  });
}

function explainCommand(
  role: string | undefined,
  opts: { inventory: string[]; limit?: string; playbook?: string },
): number {
  if (role !== undefined && !findRole(role)) {
    const guess = closest(
      role,
      ROLES.map((r) => r.name),
    );
    process.stderr.write(
      `unknown role "${role}". ${guess ? `Did you mean "${guess}"?` : `Roles: ${ROLES.map((r) => r.name).join(", ")}.`}\n`,
    );
    return EXIT_ERROR;
  }
  if (opts.inventory.length === 0) {
    process.stdout.write(explainRoles(role ? [findRole(role)!] : ROLES));
    return EXIT_OK;
  }
  const { hosts, problems } = loadConfig(opts.inventory, playbookFor(opts), opts.limit);
  for (const p of problems) process.stderr.write(`${formatProblem(p)}\n`);
  if (hasErrors(problems)) return EXIT_ERROR;
  process.stdout.write(explainHosts(hosts, role, process.cwd()));
  return EXIT_OK;
}

interface ProbeOptions {
  inventory: string[];
  client: string;
  server: string;
  max: number;
  port: number;
  duration: number;
  json: boolean;
  knownHosts: string[];
  acceptNewHostKeys: boolean;
  connectTimeout: number;
  sshConfig?: string;
  sshClient: SshClientChoice;
  askBecomePass: boolean;
}

function wholeNumber(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

async function probeCommand(inventory: string[], opts: ProbeOptions): Promise<number> {
  const sources = inventorySources(inventory, opts);
  if (!sources) return EXIT_ERROR;
  const { client, server, problems } = loadCapacityHosts(sources, opts.client, opts.server);
  for (const p of problems) process.stderr.write(`${formatProblem(p)}\n`);
  if (!client || !server || hasErrors(problems)) return EXIT_ERROR;
  const local = [client, server].find((h) => h.connection.kind === "local");
  if (local) {
    process.stderr.write(
      `probe: ${local.name} has ansible_connection: local; the probe reaches both hosts over SSH. Give it an SSH address (ansible_host) for the probe.\n`,
    );
    return EXIT_ERROR;
  }
  let password: string | undefined;
  try {
    password = [client, server].some((h) => h.become)
      ? opts.askBecomePass
        ? await askHidden("BECOME password: ")
        : process.env.PROVISION_BECOME_PASSWORD || undefined
      : undefined;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  const connector = await prepareConnector([client, server], connectorOptions(opts, 60_000, password));
  if (connector.notice) process.stderr.write(`note: ${connector.notice}\n`);
  try {
    const report = await runCapacityProbe(
      client,
      server,
      { bound: opts.max, port: opts.port, holdSeconds: opts.duration },
      connector,
    );
    process.stdout.write(opts.json ? `${capacityJson(report)}\n` : renderCapacityText(report));
    return report.cleanup.ok ? EXIT_OK : EXIT_ERROR;
  } catch (err) {
    process.stderr.write(`probe: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_ERROR;
  } finally {
    await connector.close();
  }
}

function lintCommand(inventory: string[], opts: { inventory: string[]; limit?: string; playbook?: string }): number {
  const sources = inventorySources(inventory, opts);
  if (!sources) return EXIT_ERROR;
  const { hosts, problems } = loadConfig(sources, playbookFor(opts), opts.limit);
  const all = sortProblems([...problems, ...(hasErrors(problems) ? [] : lintHosts(hosts))]);
  for (const p of all) process.stderr.write(`${formatProblem(p)}\n`);
  const errors = all.filter((p) => p.severity === "error").length;
  const warnings = all.length - errors;
  process.stdout.write(
    `Lint: ${plural(hosts.length, "host")}, ${plural(errors, "error")}, ${plural(warnings, "warning")}; nothing was sent to any host.\n`,
  );
  return errors > 0 ? EXIT_ERROR : EXIT_OK;
}

interface InventoryOptions {
  inventory: string[];
  list: boolean;
  host?: string;
  graph?: string | true;
  playbookDir?: string;
}

function inventoryCommand(inventory: string[], opts: InventoryOptions): number {
  const sources = inventorySources(inventory, opts);
  if (!sources) return EXIT_ERROR;
  const modes = [opts.list, opts.host !== undefined, opts.graph !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    process.stderr.write("provision inventory needs exactly one of --list, --host HOST, --graph [GROUP].\n");
    return EXIT_ERROR;
  }
  const problems: ConfigProblem[] = [];
  const loaded = loadInventory(sources, problems, { playbookDir: opts.playbookDir });
  for (const p of sortProblems(problems)) process.stderr.write(`${formatProblem(p)}\n`);
  if (!loaded || hasErrors(problems)) return EXIT_ERROR;
  for (const file of loaded.encryptedVarsFiles) {
    process.stderr.write(
      `note: ${file} is vault-encrypted and provision never decrypts, so its vars are not shown (ansible-inventory with --vault-password-file shows them)\n`,
    );
  }
  if (opts.list) {
    process.stdout.write(`${listJson(loaded)}\n`);
    return EXIT_OK;
  }
  if (opts.host !== undefined) {
    const out = hostJson(loaded, opts.host);
    if (out === null) {
      const guess = closest(
        opts.host,
        loaded.hosts.map((h) => h.name),
      );
      process.stderr.write(
        `host ${JSON.stringify(opts.host)} is not in the inventory.${guess ? ` Did you mean "${guess}"?` : ""}\n`,
      );
      return EXIT_ERROR;
    }
    process.stdout.write(`${out}\n`);
    return EXIT_OK;
  }
  const start = opts.graph === true || opts.graph === undefined ? "all" : opts.graph;
  const out = graph(loaded, start);
  if (out === null) {
    process.stderr.write(`group ${JSON.stringify(start)} is not in the inventory.\n`);
    return EXIT_ERROR;
  }
  process.stdout.write(`${out}\n`);
  return EXIT_OK;
}

/** A yes from the terminal before changing hosts; without a terminal, --yes is the only way on. */
async function confirmed(question: string, action: string, declined: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    process.stderr.write(
      `refusing to ${action} without confirmation: stdin is not a terminal. Pass --yes to ${action}.\n`,
    );
    return false;
  }
  if (await ask(`${question} [y/N] `, (answer) => /^y(es)?$/i.test(answer.trim()))) return true;
  process.stderr.write(`${declined}\n`);
  return false;
}

/**
 * Whether the line typed answers `accepts`. Ctrl-C and Ctrl-D answer "no" (readline swallows SIGINT,
 * and the open SSH sockets would keep us alive).
 */
function ask(question: string, accepts: (answer: string) => boolean): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) => {
    let answered = false;
    const finish = (yes: boolean) => {
      if (answered) return;
      answered = true;
      rl.close();
      resolve(yes);
    };
    rl.on("SIGINT", () => {
      process.stderr.write("\n");
      finish(false);
    });
    rl.on("close", () => finish(false));
    rl.question(question, (answer) => finish(accepts(answer)));
  });
}

/** Reads a line from the terminal without echoing it. */
function askHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new Error("--ask-become-pass needs a terminal; set PROVISION_BECOME_PASSWORD instead");
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    let answered = false;
    process.stderr.write(question);
    out._writeToOutput = () => undefined;
    const cancel = () => {
      if (answered) return;
      answered = true;
      rl.close();
      process.stderr.write("\n");
      reject(new Error("no become password given; nothing was sent to any host"));
    };
    rl.on("SIGINT", cancel);
    rl.on("close", cancel);
    rl.question("", (answer) => {
      answered = true;
      rl.close();
      process.stderr.write("\n");
      resolve(answer);
    });
  });
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `provision: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = EXIT_ERROR;
  },
);
