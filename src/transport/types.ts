export interface ExecResult {
  stdout: string;
  stderr: string;
  /** null when the command was killed by a signal (`signal` says which); a lost connection is an error, never a result. */
  code: number | null;
  signal: string | null;
}

export interface ExecOptions {
  /** Run the script as root through sudo (the host's `become`). */
  sudo?: boolean;
  timeoutMs?: number;
}

/**
 * The only way the core touches a host. A script is sent on stdin to `sh -s` (so nothing of it
 * shows in the remote process list), with LC_ALL=C. One call = one round trip.
 */
export interface Transport {
  readonly hostName: string;
  /** The host's address this session is connected to (never to be removed from the host). */
  readonly remoteAddress: string;
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

/** A failure on one host that the run reports and survives. */
export class HostError extends Error {
  constructor(
    message: string,
    readonly kind: "unreachable" | "auth" | "hostkey" | "sudo" | "timeout" | "command" | "plan" = "command",
  ) {
    super(message);
    this.name = "HostError";
  }
}
