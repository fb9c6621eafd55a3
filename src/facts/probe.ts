/**
 * A fact that is more than a sysctl or a file: a shell script that prints it, and a pure parser
 * that turns its output into a typed value. A role asks for the probe itself (no registry), reads
 * the typed value, and its checks name a field of that value by path.
 */
export interface Probe<T> {
  /** Names the probe's answer in Facts and in checks; unique among the probes of one host. */
  name: string;
  /** Shell printing the raw fact on stdout. `arg` was validated by the role; quote it with shQuote. */
  script(arg: string | undefined): string;
  /** Pure. Throws ProbeParseError when the output is not what the script prints. */
  parse(stdout: string, arg: string | undefined): T;
}

export type AnyProbe = Probe<unknown>;

export class ProbeParseError extends Error {}

export function defineProbe<T>(p: Probe<T>): Probe<T> {
  return p;
}
