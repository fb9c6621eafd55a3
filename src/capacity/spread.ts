/**
 * One process may hold only as many sockets as its hard nofile allows (20,000 on a host without
 * CAP_SYS_RESOURCE), so the bound is split over up to MAX_PROCESSES_PER_SIDE helper processes.
 */
export const MAX_PROCESSES_PER_SIDE = 8;
/** A quarter of the hard limit stays free, so a process never runs into EMFILE by itself. */
const SHARE_OF_HARD_LIMIT = 0.75;
/** Above this, more processes cost nothing and keep each one's epoll set and memory small. */
const MAX_SOCKETS_PER_PROCESS = 60_000;
/** Handshakes at once, over all client processes. */
const IN_FLIGHT_TOTAL = 512;
const MIN_IN_FLIGHT_PER_PROCESS = 16;

export interface Spread {
  processes: number;
  perProcess: number;
  targets: number[];
  hardNofile: number;
  /** Even MAX_PROCESSES_PER_SIDE processes of perProcess sockets can't reach the bound. */
  capped: boolean;
}

export function socketsPerProcess(hardNofile: number): number {
  return Math.max(1, Math.min(MAX_SOCKETS_PER_PROCESS, Math.floor(hardNofile * SHARE_OF_HARD_LIMIT)));
}

/** The fewest processes that keep each under its budget. */
export function spread(bound: number, hardNofile: number): Spread {
  const perProcess = socketsPerProcess(hardNofile);
  const needed = Math.ceil(bound / perProcess);
  const processes = Math.max(1, Math.min(MAX_PROCESSES_PER_SIDE, needed));
  const base = Math.floor(bound / processes);
  const targets = Array.from({ length: processes }, (_, i) => base + (i < bound % processes ? 1 : 0));
  return { processes, perProcess, targets, hardNofile, capped: needed > MAX_PROCESSES_PER_SIDE };
}

export function inFlightPerProcess(processes: number): number {
  return Math.max(MIN_IN_FLIGHT_PER_PROCESS, Math.floor(IN_FLIGHT_TOTAL / processes));
}

/** `ulimit -Hn` of the same login; "unlimited" means the kernel's ceiling fs.nr_open. */
export function effectiveHardNofile(ulimitHard: string, nrOpen: number | null): number | null {
  const text = ulimitHard.trim();
  if (text === "unlimited") return nrOpen;
  const n = Number(text);
  return /^\d+$/.test(text) && n > 0 ? Math.min(n, nrOpen ?? n) : null;
}
