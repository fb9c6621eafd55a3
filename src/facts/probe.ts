/**
 * A fact that is more than a sysctl or a file: a shell snippet that prints it, and a pure parser
 * that turns the output into flat named fields (so checks can name a field and stay plain data).
 */
export interface Probe {
  name: string;
  /** Shell printing the raw fact on stdout. `arg` was validated by the role; quote it with shQuote. */
  command(arg: string | undefined): string;
  /** Pure. Throws ProbeParseError when the output is not what the command prints. */
  parse(raw: string, arg: string | undefined): Record<string, string>;
}

export class ProbeParseError extends Error {}

export function defineProbe(p: Probe): Probe {
  return p;
}
