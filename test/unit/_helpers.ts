import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

/**
 * 1-based line/col of `token` on the first line of `file` that contains `lineNeedle`
 * (token defaults to the needle). Keeps expected locations tied to the fixture text.
 */
export function posIn(file: string, lineNeedle: string, token: string = lineNeedle): { line: number; col: number } {
  const lines = readFileSync(file, "utf8").split("\n");
  const index = lines.findIndex((l) => l.includes(lineNeedle));
  if (index === -1) throw new Error(`${lineNeedle} not found in ${file}`);
  const col = lines[index]!.indexOf(token, lines[index]!.indexOf(lineNeedle));
  if (col === -1) throw new Error(`${token} not found on line ${index + 1} of ${file}`);
  return { line: index + 1, col: col + 1 };
}
