import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completionScript, describeCommand, valuesFor, type Values } from "../../src/output/completion.js";
import { PROJECT_ROOT } from "../../src/installRoot.js";

/**
 * `provision completion bash|zsh`: the scripts are generated from the commander program, so they
 * are checked against a fixture program (every kind of option and argument) and against the real
 * CLI's own --help, and run in real shells: bash's completion function is called with
 * COMP_WORDS/COMP_CWORD as readline would, zsh's through a pseudo-terminal and the Tab key.
 */

const BIN = join(PROJECT_ROOT, "bin", "provision.js");
const TIMEOUT_MS = 60_000;
/** A test that starts several processes (node, a shell on a pseudo-terminal): generous on a busy machine. */
const SLOW_TEST_MS = 300_000;
const hasZsh = spawnSync("zsh", ["-c", "true"]).status === 0;

const collect = (v: string, prev: string[]) => [...prev, v];

/** A program with each kind of thing a completion must know: aliases, choices, files, dirs, optional values, nesting, hidden parts. */
function fixtureProgram(): Command {
  const program = new Command().name("tool").description("a tool").version("1.0.0", "-V, --version", "its version");
  program
    .command("deploy")
    .alias("d")
    .description("deploy it: 'quoted' [brackets] \\ back")
    .argument("[inventory...]", "inventory sources")
    .option("-i, --inventory <source>", "an inventory [repeatable]", collect, [] as string[])
    .addOption(new Option("--format <format>", "output style").choices(["text", "markdown"]).default("text"))
    .option("-n, --dry-run", "change nothing")
    .option("--resume [record]", "a run record")
    .option("--state-dir <dir>", "where records go")
    .option("-l, --limit <pattern>", "only these hosts")
    .option("--no-color", "plain output")
    .addOption(new Option("--secret <x>", "not shown").hideHelp())
    .action(() => undefined);
  program
    .command("show")
    .argument("<file>", "a saved plan")
    .action(() => undefined);
  program
    .command("explain")
    .argument("[role]", "a role")
    .action(() => undefined);
  const cache = program.command("cache").description("cache commands");
  cache
    .command("clear")
    .option("--all", "everything")
    .action(() => undefined);
  cache
    .command("list")
    .option("--json", "as JSON")
    .action(() => undefined);
  program.command("internal", { hidden: true }).action(() => undefined);
  return program;
}

function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Loads a completion script into bash as a user's shell does, checks `complete -p`, then calls
 * the registered function once per line of words (the last word is the one being completed).
 */
function bashComplete(
  load: string,
  command: string,
  lines: string[][],
  cwd: string,
): { registration: string; replies: string[][] } {
  const driver = [
    load,
    `complete -p ${command} || exit 3`,
    `fn=$(complete -p ${command} | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')`,
    `try() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}; COMPREPLY=(); "$fn"; printf '%s\\n' "\${COMPREPLY[@]}"; printf '\\036\\n'; }`,
    ...lines.map((words) => `try ${words.map(quote).join(" ")}`),
  ].join("\n");
  const out = execFileSync("bash", ["--norc", "--noprofile", "-c", driver], {
    cwd,
    encoding: "utf8",
    timeout: TIMEOUT_MS,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, LANG: "C" },
  });
  const [registration = "", ...rest] = out.split("\n");
  const replies = rest
    .join("\n")
    .split("\x1e\n")
    .slice(0, lines.length)
    .map((block) => block.split("\n").filter((w) => w !== ""));
  return { registration, replies };
}

/**
 * Types each line into an interactive zsh (through zpty, a pseudo-terminal) followed by Tab, and
 * returns the command line as completion left it. Only unambiguous completions change the line.
 */
function zshComplete(setup: string, lines: string[], cwd: string): string[] {
  const out = join(cwd, "zsh-lines.out");
  const driver = [
    "zmodload zsh/zpty",
    `: > ${quote(out)}`,
    "zpty z zsh -f -i",
    `zpty -w z ${quote(
      `PS1=''; ${setup}; dump() { print -r -- "[$BUFFER]" >> ${quote(out)}; BUFFER=''; }; zle -N dump; bindkey '^X' dump`,
    )}`,
    // One line at a time: keys typed ahead while a completion runs would be lost.
    ...lines.map(
      (line, i) =>
        `zpty -w -n z ${quote(line)}$'\\t\\x18'; for t in {1..600}; do (( $(wc -l < ${quote(out)}) > ${i} )) && break; sleep 0.1; done`,
    ),
    "zpty -d z",
    `cat ${quote(out)}`,
  ].join("\n");
  const result = execFileSync("zsh", ["-f", "-c", driver], {
    cwd,
    encoding: "utf8",
    timeout: TIMEOUT_MS + 30_000,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, LANG: "C", TERM: "xterm" },
  });
  return result
    .split("\n")
    .filter((l) => l.startsWith("["))
    .map((l) => l.slice(1, -1));
}

/** The built CLI, as a user runs it. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    timeout: TIMEOUT_MS,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NO_COLOR: "1" },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Commands and options as `--help` lists them: what completion must offer. */
function helpSection(help: string, title: string): string[] {
  const start = help.indexOf(`\n${title}:\n`);
  if (start < 0) return [];
  const body = help.slice(start + title.length + 3).split("\n\n")[0] ?? "";
  return body.split("\n").filter((l) => /^ {2}\S/.test(l));
}

describe("valuesFor: what a value completes to", () => {
  it.each<[string, string[] | undefined, Values]>([
    ["format", ["text", "markdown"], { kind: "choices", choices: ["text", "markdown"] }],
    ["file", undefined, { kind: "files" }],
    ["source", undefined, { kind: "files" }],
    ["inventory", undefined, { kind: "files" }],
    ["record", undefined, { kind: "files" }],
    ["dir", undefined, { kind: "dirs" }],
    ["state-dir", undefined, { kind: "dirs" }],
    ["command", undefined, { kind: "commands" }],
    ["pattern", undefined, { kind: "none" }],
    ["seconds", undefined, { kind: "none" }],
    ["host", undefined, { kind: "none" }],
    ["n|pct", undefined, { kind: "none" }],
    ["client", [], { kind: "none" }],
  ])("%s (choices %j) → %j", (name, choices, expected) => {
    expect(valuesFor(name, choices)).toEqual(expected);
  });
});

describe("describeCommand: the program as data", () => {
  const spec = describeCommand(fixtureProgram(), []);
  const deploy = spec.commands.find((c) => c.name === "deploy")!;
  const option = (long: string) => deploy.options.find((o) => o.long === long);

  it("lists visible commands (with the implicit help command), never hidden ones", () => {
    expect(spec.commands.map((c) => c.name)).toEqual(["deploy", "show", "explain", "cache", "help"]);
    expect(spec.commands.find((c) => c.name === "cache")!.commands.map((c) => c.name)).toEqual([
      "clear",
      "list",
      "help",
    ]);
    expect(deploy.aliases).toEqual(["d"]);
  });

  it.each<[string, Record<string, unknown> | undefined]>([
    [
      "--inventory",
      { short: "-i", value: "required", valueName: "source", repeatable: true, values: { kind: "files" } },
    ],
    ["--format", { value: "required", repeatable: false, values: { kind: "choices", choices: ["text", "markdown"] } }],
    ["--dry-run", { short: "-n", value: "none", repeatable: false, values: { kind: "none" } }],
    ["--resume", { value: "optional", valueName: "record", values: { kind: "files" } }],
    ["--state-dir", { value: "required", values: { kind: "dirs" } }],
    ["--limit", { short: "-l", value: "required", values: { kind: "none" } }],
    ["--no-color", { value: "none" }],
    ["--help", { short: "-h", value: "none" }],
    ["--secret", undefined],
  ])("option %s", (long, expected) => {
    if (expected === undefined) expect(option(long)).toBeUndefined();
    else expect(option(long)).toMatchObject(expected);
  });

  it.each<[string, Array<Record<string, unknown>>]>([
    ["deploy", [{ name: "inventory", required: false, variadic: true, values: { kind: "files" } }]],
    ["show", [{ name: "file", required: true, variadic: false, values: { kind: "files" } }]],
    ["explain", [{ name: "role", required: false, values: { kind: "none" } }]],
    ["help", [{ name: "command", values: { kind: "commands" } }]],
  ])("arguments of %s", (name, expected) => {
    expect(spec.commands.find((c) => c.name === name)!.arguments).toMatchObject(expected);
  });
});

describe("completionScript", () => {
  const program = fixtureProgram();

  it.each(["bash", "zsh"] as const)("%s: names every visible command and option, and no hidden one", (shell) => {
    const script = completionScript(program, shell);
    for (const word of ["deploy", "show", "explain", "cache", "clear", "list", "help"]) expect(script).toContain(word);
    for (const flag of ["-i", "--inventory", "--format", "-n", "--dry-run", "--resume", "--state-dir", "--no-color"])
      expect(script).toContain(flag);
    for (const flag of ["-V", "--version", "-h", "--help", "--all", "--json"]) expect(script).toContain(flag);
    expect(script).toContain("text markdown");
    expect(script).not.toContain("--secret");
    expect(script).not.toContain("internal");
  });

  it("refuses a shell it does not know, and a name it cannot embed safely", () => {
    expect(() => completionScript(program, "fish" as "bash")).toThrow(/bash, zsh/);
    const odd = new Command().name("tool");
    odd.command("x").addOption(new Option("--mode <m>").choices(["$(reboot)"]));
    expect(() => completionScript(odd, "bash")).toThrow(/cannot be completed safely/);
  });
});

describe("in real shells", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "provision-test-completion-"));
    writeFileSync(join(dir, "hosts.yaml"), "all: {}\n");
    writeFileSync(join(dir, "hosts.ini"), "");
    writeFileSync(join(dir, "plan.json"), "{}\n");
    mkdirSync(join(dir, "records"));
    writeFileSync(join(dir, "tool.bash"), completionScript(fixtureProgram(), "bash"));
    writeFileSync(join(dir, "real.bash"), cli(["completion", "bash"]).stdout);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe("bash", () => {
    it.each<[string[], string[]]>([
      [
        ["tool", ""],
        ["deploy", "show", "explain", "cache", "help"],
      ],
      [
        ["tool", "-"],
        ["-V", "--version", "-h", "--help"],
      ],
      [["tool", "de"], ["deploy"]],
      [["tool", "deploy", "--f"], ["--format"]],
      [
        ["tool", "deploy", "--format", ""],
        ["text", "markdown"],
      ],
      [["tool", "deploy", "--format", "m"], ["markdown"]],
      [
        ["tool", "deploy", "--format", "=", ""],
        ["text", "markdown"],
      ], // --format=<Tab>: bash splits at "="
      [["tool", "deploy", "--format", "=", "t"], ["text"]],
      [
        ["tool", "d", "--format", ""],
        ["text", "markdown"],
      ], // an alias completes as its command
      [
        ["tool", "deploy", "hosts."],
        ["hosts.ini", "hosts.yaml"],
      ],
      [["tool", "deploy", "hosts.yaml", "hosts.i"], ["hosts.ini"]], // the variadic argument goes on
      [["tool", "deploy", "-i", "hosts.y"], ["hosts.yaml"]],
      [["tool", "deploy", "--inventory", "=", "hosts.y"], ["hosts.yaml"]],
      [["tool", "deploy", "--state-dir", ""], ["records"]],
      [["tool", "deploy", "--limit", ""], []], // a pattern: nothing to offer
      [["tool", "deploy", "--limit", "hosts.", "--dry"], ["--dry-run"]],
      [["tool", "deploy", "-l", "web", "hosts.y"], ["hosts.yaml"]], // the value of -l is not an argument
      [["tool", "deploy", "--resume", "pla"], ["plan.json"]],
      [["tool", "deploy", "--resume", "--n"], ["--no-color"]], // an optional value may be left out
      [["tool", "deploy", "--", "--f"], []], // after --, nothing is an option
      [["tool", "show", "pla"], ["plan.json"]],
      [["tool", "explain", ""], []],
      [
        ["tool", "cache", ""],
        ["clear", "list", "help"],
      ],
      [
        ["tool", "cache", "clear", "--"],
        ["--all", "--help"],
      ],
      [["tool", "help", "c"], ["cache"]],
    ])("%j → %j", (words, expected) => {
      const { registration, replies } = bashComplete(`source ${quote(join(dir, "tool.bash"))}`, "tool", [words], dir);
      expect(registration).toBe("complete -F _tool tool");
      expect([...replies[0]!].sort()).toEqual([...expected].sort());
    });

    it(
      "the real CLI's script loads with `source <(provision completion bash)` and completes every command and option --help lists",
      () => {
        const help = cli(["--help"]);
        expect(help.status).toBe(0);
        const commands = helpSection(help.stdout, "Commands").map((l) => l.trim().split(" ")[0]!);
        expect(commands).toEqual(expect.arrayContaining(["plan", "run", "verify", "completion", "help"]));
        const perCommand = commands
          .filter((c) => c !== "help")
          .map((c) => {
            const r = cli([c, "--help"]);
            expect(r.status, r.stderr).toBe(0);
            const flags = helpSection(r.stdout, "Options").flatMap(
              (l) => /^ {2}(-.*?)(?: {2,}|$)/.exec(l)?.[1]?.match(/--?[A-Za-z][\w-]*/g) ?? [],
            );
            return { command: c, flags };
          });
        const lines = [
          ["provision", ""],
          ["provision", "ver"],
          ["provision", "plan", "--format", ""],
          ["provision", "plan", "--ssh-client", ""],
          ["provision", "run", "--format", "=", "m"],
          ["provision", "plan", "hosts."],
          ["provision", "plan", "-i", "hosts.y"],
          ["provision", "verify", "--state-dir", "rec"],
          ["provision", "completion", ""],
          ["provision", "help", "pl"],
          ...perCommand.map(({ command }) => ["provision", command, "-"]),
        ];
        const load = `source <(${quote(process.execPath)} ${quote(BIN)} completion bash)`;
        const { registration, replies } = bashComplete(load, "provision", lines, dir);
        expect(registration).toBe("complete -F _provision provision");
        const [all, ver, format, sshClient, runFormat, files, inventory, stateDir, shells, help2, ...options] = replies;
        expect([...all!].sort()).toEqual([...commands].sort());
        expect(ver).toEqual(["verify"]);
        expect(format).toEqual(["text", "markdown"]);
        expect(sshClient).toEqual(["auto", "ssh2", "openssh"]);
        expect(runFormat).toEqual(["markdown"]);
        expect([...files!].sort()).toEqual(["hosts.ini", "hosts.yaml"]);
        expect(inventory).toEqual(["hosts.yaml"]);
        expect(stateDir).toEqual(["records"]);
        expect(shells).toEqual(["bash", "zsh"]);
        expect(help2).toEqual(["plan"]);
        perCommand.forEach(({ command, flags }, i) => {
          expect(flags.length, command).toBeGreaterThan(1);
          expect([...options[i]!].sort(), command).toEqual([...flags].sort());
        });
      },
      SLOW_TEST_MS,
    );
  });

  describe("the completion command", () => {
    it("prints a script per shell, and refuses another shell with the choices", () => {
      const zsh = cli(["completion", "zsh"]);
      expect(zsh.status).toBe(0);
      expect(zsh.stdout.split("\n")[0]).toBe("#compdef provision");
      const fish = cli(["completion", "fish"]);
      expect(fish.status).toBe(1);
      expect(fish.stdout).toBe("");
      expect(fish.stderr).toContain("Allowed choices are bash, zsh.");
      const none = cli(["completion"]);
      expect(none.status).toBe(1);
      expect(none.stderr).toContain("missing required argument 'shell'");
    });
  });

  describe.skipIf(!hasZsh)("zsh", () => {
    it("zsh -n parses the fixture's and the real CLI's scripts", () => {
      writeFileSync(join(dir, "_tool"), completionScript(fixtureProgram(), "zsh"));
      writeFileSync(join(dir, "_provision"), cli(["completion", "zsh"]).stdout);
      for (const file of ["_tool", "_provision"]) {
        const r = spawnSync("zsh", ["-n", join(dir, file)], { encoding: "utf8", timeout: TIMEOUT_MS });
        expect(r.status, r.stderr).toBe(0);
      }
    });

    it(
      "Tab completes through the fixture's script installed on $fpath",
      () => {
        const fpath = join(dir, "fpath");
        mkdirSync(fpath, { recursive: true });
        writeFileSync(join(fpath, "_tool"), completionScript(fixtureProgram(), "zsh"));
        const setup = `fpath=(${quote(fpath)} $fpath); autoload -Uz compinit; compinit -u -D`;
        expect(
          zshComplete(
            setup,
            [
              "tool dep",
              "tool d --form",
              "tool deploy --format m",
              "tool deploy --format=t",
              "tool deploy hosts.y",
              "tool deploy -i hosts.i",
              "tool deploy --state-dir rec",
              "tool deploy --resume pla",
              "tool show pla",
              "tool cache cl",
              "tool cache clear --a",
              "tool help ca",
            ],
            dir,
          ),
        ).toEqual([
          "tool deploy ",
          "tool d --format=",
          "tool deploy --format markdown ",
          "tool deploy --format=text ",
          "tool deploy hosts.yaml ",
          "tool deploy -i hosts.ini ",
          "tool deploy --state-dir records/",
          "tool deploy --resume plan.json ",
          "tool show plan.json ",
          "tool cache clear ",
          "tool cache clear --all ",
          "tool help cache ",
        ]);
      },
      SLOW_TEST_MS,
    );

    it(
      "Tab completes through `source <(provision completion zsh)` after compinit",
      () => {
        const setup = `autoload -Uz compinit; compinit -u -D; source <(${quote(process.execPath)} ${quote(BIN)} completion zsh)`;
        expect(
          zshComplete(
            setup,
            [
              "provision ver",
              "provision plan --format m",
              "provision plan --ssh-client=op",
              "provision plan hosts.y",
              "provision completion z",
            ],
            dir,
          ),
        ).toEqual([
          "provision verify ",
          "provision plan --format markdown ",
          "provision plan --ssh-client=openssh ",
          "provision plan hosts.yaml ",
          "provision completion zsh ",
        ]);
      },
      SLOW_TEST_MS,
    );
  });
});
