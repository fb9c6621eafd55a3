import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../src/installRoot.js";

/** The project's own lint rule: roles and the pure pipeline modules import nothing that does I/O. */
const eslint = new ESLint({ cwd: PROJECT_ROOT });

async function restricted(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${PROJECT_ROOT}/${filePath}` });
  return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("no I/O in roles and pure modules", () => {
  it.each<[string, string]>([
    ["roles/example.ts", 'import { readFileSync } from "node:fs";\nexport const x = readFileSync;\n'],
    ["roles/example.ts", 'import { execFile } from "child_process";\nexport const x = execFile;\n'],
    ["roles/example.ts", 'import { renderTemplate } from "../src/render.js";\nexport const x = renderTemplate;\n'],
    ["roles/example.ts", 'import { connectSsh } from "../src/transport/ssh.js";\nexport const x = connectSsh;\n'],
    ["src/plan.ts", 'import { Client } from "ssh2";\nexport const x = Client;\n'],
    ["src/facts/example.ts", 'import { Session } from "../session.js";\nexport const x = Session;\n'],
  ])("%s may not import %j", async (file, code) => {
    expect(await restricted(file, code)).toHaveLength(1);
  });

  it.each<[string, string]>([
    ["roles/example.ts", 'import { shQuote } from "../src/transport/shell.js";\nexport const x = shQuote;\n'],
    ["roles/example.ts", 'import { createHash } from "node:crypto";\nexport const x = createHash;\n'],
    ["src/plan.ts", 'import { renderTemplate } from "./render.js";\nexport const x = renderTemplate;\n'],
    ["src/session.ts", 'import { readFileSync } from "node:fs";\nexport const x = readFileSync;\n'],
  ])("%s may import %j", async (file, code) => {
    expect(await restricted(file, code)).toEqual([]);
  });
});
