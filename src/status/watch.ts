import type { HostStatus } from "./read.js";

/** Home the cursor and clear the screen: each round replaces the last, as watch(1) does. */
const CLEAR = "\x1b[H\x1b[2J";

/**
 * `status --watch SECONDS`: read, draw, wait, again, on the connections the first round opened,
 * until Ctrl-C (or `stop`). Resolves with the last round read, for the exit code.
 */
export async function watchStatus(opts: {
  read: () => Promise<HostStatus[]>;
  render: (statuses: HostStatus[]) => string;
  everySeconds: number;
  write: (text: string) => void;
  stop: AbortSignal;
  now?: () => Date;
}): Promise<HostStatus[] | null> {
  const now = opts.now ?? (() => new Date());
  let last: HostStatus[] | null = null;
  const stopped = new Promise<"stopped">((resolve) => {
    if (opts.stop.aborted) resolve("stopped");
    opts.stop.addEventListener("abort", () => resolve("stopped"), { once: true });
  });
  while (!opts.stop.aborted) {
    const started = Date.now();
    const round = await Promise.race([opts.read(), stopped]);
    if (round === "stopped") break;
    last = round;
    const stamp = now().toISOString().slice(11, 19);
    opts.write(`${CLEAR}every ${opts.everySeconds} s, last read ${stamp} UTC; Ctrl-C to stop\n\n${opts.render(round)}`);
    const wait = Math.max(0, opts.everySeconds * 1000 - (Date.now() - started));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, wait))), stopped]);
    clearTimeout(timer);
  }
  return last;
}
