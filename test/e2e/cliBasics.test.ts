import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCommand } from "../fleet/shell.js";
import { PROJECT_ROOT, provision, tempDir, writeFile } from "./helpers.js";

/** An SGR sequence (colour, bold); the progress line's own cursor controls are not colour. */
const COLOUR = /\x1b\[[0-9;]*m/;

describe("the CLI's own flags", () => {
  const dir = tempDir("cli-basics");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--version and -V print the package's version and exit 0", async () => {
    const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = await provision([flag]);
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" });
    }
  });

  it("colours a terminal's output, and --no-color keeps it plain; plan shows its progress there", async () => {
    // A host nothing listens for (loopback port 1): the error lines are the ones printed in colour.
    const inventory = writeFile(
      dir,
      "hosts.yml",
      "all:\n  hosts:\n    web01:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n",
    );
    const onTerminal = async (...extra: string[]) => {
      const command = [process.execPath, join(PROJECT_ROOT, "bin", "provision.js"), "plan", inventory, ...extra].join(
        " ",
      );
      // script(1) gives the CLI a pseudo-terminal, as a user's shell would.
      const r = await runCommand("script", ["-qec", command, "/dev/null"], {
        timeoutMs: 30_000,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
      });
      expect(r.stdout).toContain("UNREACHABLE");
      return r.stdout;
    };
    const coloured = await onTerminal();
    expect(coloured).toMatch(COLOUR);
    expect(coloured).toContain("1/1 hosts planned · 1 failed");
    expect(await onTerminal("--no-color")).not.toMatch(COLOUR);
  });
});
