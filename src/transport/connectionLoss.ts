import { HostError } from "./types.js";

/**
 * One wording and one status for a connection that ends under a host's feet. ssh2 reports the
 * same fault through several paths — the socket's end or reset, its keepalive timer, a pending
 * channel request answered with "No response from server", a channel closed without an exit
 * status — and which one is noticed first is a matter of timing. The transport records the first
 * observation of the connection's end (`endCause`) and every path reports that, so a user reads
 * the same sentence for the same fault on every run.
 */

/**
 * ssh2's keepalive: a ping every interval; when `countMax` pings are unanswered it gives up, on
 * the next tick (so after (countMax + 1) intervals of silence).
 */
export interface Keepalive {
  intervalMs: number;
  countMax: number;
}

/** A frozen host is noticed 15–20 s after it stops answering (sooner only as a --command-timeout shorter than that). */
export const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 5000, countMax: 3 };

/** What ssh2 hands to a connection's "error" listener. */
export interface ConnectionErrorLike {
  message?: string;
  code?: string;
  level?: string;
}

/** Pure: why the connection ended, in the user's terms, from what ssh2 reported. */
export function endCauseOf(event: "end" | "close" | ConnectionErrorLike, keepalive: Keepalive): string {
  if (event === "end" || event === "close") return CLOSED_BY_HOST;
  if (event.level === "client-timeout" || /keepalive timeout/i.test(event.message ?? ""))
    return stoppedAnswering(keepalive);
  // A killed sshd resets the connection instead of closing it when our bytes were still unread:
  // the same fault as a plain close, so the same words.
  if (event.code === "ECONNRESET" || event.code === "EPIPE") return CLOSED_BY_HOST;
  if (event.code === "ETIMEDOUT") return "TCP gave up retransmitting to the host (ETIMEDOUT)";
  if (event.code === "EHOSTUNREACH" || event.code === "ENETUNREACH")
    return `the route to the host went away (${event.code})`;
  return event.message ?? String(event);
}

/**
 * ssh2 gives up when keepalives sent every interval stay unanswered; a command timeout that finds
 * the host silent that long (and one interval more) is the same fault and is told the same way.
 */
export function stoppedAnswering(keepalive: Keepalive): string {
  return `the host stopped answering: no reply to keepalives for ${silenceLimitMs(keepalive) / 1000} s or more (it froze, or packets to or from it are dropped)`;
}

/**
 * Silence after which a host counts as no longer answering: countMax intervals. By then the last
 * countMax − 1 keepalives have each waited a whole interval in vain, and ssh2 gives up one
 * interval later.
 */
export function silenceLimitMs(keepalive: Keepalive): number {
  return keepalive.countMax * keepalive.intervalMs;
}

const CLOSED_BY_HOST = "the host closed or reset it (sshd or the host went down, or something on the way cut it)";

/** Provision closed the connection itself (end of run, command timeout): not a fault of the host. */
export const CLOSED_BY_US = "provision closed it";

/** The error every exec reports once the connection is gone, whichever path noticed it. */
export function connectionLostError(where: string, cause: string): HostError {
  return new HostError(
    `connection to ${where} was lost: ${cause}. A command in flight may have run in part or not at all; plan again to see what is left.`,
    "unreachable",
  );
}
