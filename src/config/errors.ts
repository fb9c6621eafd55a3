/** One problem in user input, located precisely enough to jump to it in an editor. */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  /** Dotted key path inside the document, e.g. `all.children.web.vars.ephemeral_ports.port_range_start`. */
  keyPath: string;
  /** What is wrong, as a sentence without the final period. */
  problem: string;
  /** How to fix it, as a sentence without the final period. */
  fix: string;
  severity: "error" | "warning";
}

/** `file:line:col key.path: problem. fix.` — the one format every config error is printed in. */
export function formatProblem(p: ConfigProblem): string {
  const where = `${p.file}:${p.line}:${p.col}`;
  const key = p.keyPath === "" ? "" : ` ${p.keyPath}`;
  const tag = p.severity === "warning" ? " warning:" : "";
  return `${where}${key}:${tag} ${sentence(p.problem)} ${capitalize(sentence(p.fix))}`;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function sentence(s: string): string {
  const t = s.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** Thrown when input is invalid; carries every problem found, not just the first. */
export class ConfigErrors extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigErrors";
  }
}

export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.keyPath.localeCompare(b.keyPath),
  );
}

/** A config file that exists in name only: missing, a directory, or not readable. */
export function unreadableFile(file: string, err: unknown): ConfigProblem {
  return {
    file,
    line: 1,
    col: 1,
    keyPath: "",
    severity: "error",
    problem: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    fix: "check the path and its permissions",
  };
}
