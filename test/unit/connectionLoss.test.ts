import { describe, expect, it } from "vitest";
import {
  connectionLostError,
  endCauseOf,
  silenceLimitMs,
  stoppedAnswering,
  type ConnectionErrorLike,
} from "../../src/transport/connectionLoss.js";

const KEEPALIVE = { intervalMs: 5000, countMax: 3 };
const CLOSED = "the host closed or reset it (sshd or the host went down, or something on the way cut it)";
const SILENT =
  "the host stopped answering: no reply to keepalives for 15 s or more (it froze, or packets to or from it are dropped)";

describe("endCauseOf: what ssh2 reported → why the connection ended, in the user's words", () => {
  const table: Array<[string, "end" | "close" | ConnectionErrorLike, string]> = [
    ["socket end (FIN)", "end", CLOSED],
    ["socket close", "close", CLOSED],
    ["reset by the host", { code: "ECONNRESET", message: "read ECONNRESET" }, CLOSED],
    ["write after the host closed", { code: "EPIPE", message: "write EPIPE" }, CLOSED],
    ["ssh2 keepalive", { level: "client-timeout", message: "Keepalive timeout" }, SILENT],
    ["keepalive without a level", { message: "Keepalive timeout" }, SILENT],
    [
      "TCP retransmissions gave up",
      { code: "ETIMEDOUT", message: "read ETIMEDOUT" },
      "TCP gave up retransmitting to the host (ETIMEDOUT)",
    ],
    [
      "route gone",
      { code: "EHOSTUNREACH", message: "read EHOSTUNREACH" },
      "the route to the host went away (EHOSTUNREACH)",
    ],
    ["anything else, verbatim", { message: "Bad packet length 123" }, "Bad packet length 123"],
  ];
  it.each(table)("%s", (_name, event, cause) => {
    expect(endCauseOf(event, KEEPALIVE)).toBe(cause);
  });

  it("says the silence its keepalive tolerates, the same words a command timeout uses for a silent host", () => {
    const keepalive = { intervalMs: 200, countMax: 2 };
    expect(silenceLimitMs(keepalive)).toBe(400);
    expect(endCauseOf({ level: "client-timeout" }, keepalive)).toBe(stoppedAnswering(keepalive));
    expect(stoppedAnswering(keepalive)).toMatch(/no reply to keepalives for 0\.4 s or more/);
  });
});

describe("connectionLostError", () => {
  it("is unreachable, names the connection and the cause, and says what may have happened", () => {
    const e = connectionLostError("root@198.18.0.4:22", CLOSED);
    expect(e.kind).toBe("unreachable");
    expect(e.message).toBe(
      `connection to root@198.18.0.4:22 was lost: ${CLOSED}. A command in flight may have run in part or not at all; plan again to see what is left.`,
    );
  });
});
