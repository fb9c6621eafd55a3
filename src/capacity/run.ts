import { randomBytes } from "node:crypto";
import { newNonce } from "../remote/records.js";
import type { ResolvedHost } from "../resolve.js";
import type { HostConnector } from "../transport/connector.js";
import type { ExecResult, Transport } from "../transport/types.js";
import { aggregate, diagnose } from "./diagnose.js";
import {
  CapacityError,
  clientFactsScript,
  parseClientFacts,
  parseServerFacts,
  serverFactsScript,
  type ClientFacts,
  type ServerFacts,
} from "./facts.js";
import {
  cleanupScript,
  clientSocketFilter,
  helperScript,
  helperSource,
  parseCleanup,
  parseClientResult,
  parseServerResult,
  serverSocketFilter,
  type CleanupResult,
  type ClientConfig,
  type ClientResult,
  type ServerConfig,
  type ServerResult,
} from "./remote.js";
import { cleanupOk, type CapacityReport } from "./report.js";
import { inFlightPerProcess, spread } from "./spread.js";

export interface CapacitySettings {
  /** At most this many connections (--max). */
  bound: number;
  port: number;
  /** How long the connections are held once open (--duration). */
  holdSeconds: number;
}

/** The probe's fixed time budget: waiting for the listener, opening, one connection's handshake. */
const WAIT_LISTENER_SECONDS = 10;
const RAMP_SECONDS = 30;
const CONNECT_TIMEOUT_SECONDS = 5;
/** Beyond waiting, opening, holding: reports, counting, closing. hardSeconds = 90 with the defaults. */
const HARD_MARGIN_SECONDS = 25;
/** The server starts first and must outlive the client. */
const SERVER_EXTRA_SECONDS = 10;
/** Asked of listen(); the kernel caps it at somaxconn, which is what the report shows. */
const LISTEN_BACKLOG = 65535;
const FACTS_TIMEOUT_MS = 30_000;

export function newMarker(): string {
  return `provision-probe-${randomBytes(6).toString("hex")}`;
}

/**
 * Each side's helpers carry their own marker: hosts that share a process table (containers,
 * namespaces) must not count, or kill, each other's helpers — nor each other's pgrep, whose argv
 * holds the marker it looks for.
 */
export function sideMarker(marker: string, side: "client" | "server"): string {
  return `${marker}-${side}`;
}

/** The helpers' configs from the facts: pure, so the spreading and timing are testable. */
export function helperConfigs(settings: CapacitySettings, dst: string, client: ClientFacts, server: ServerFacts) {
  const clientSpread = spread(settings.bound, client.hardNofile);
  const serverSpread = spread(settings.bound, server.hardNofile);
  const sources = client.sources.length > 1 ? client.sources : [];
  const hardSeconds =
    WAIT_LISTENER_SECONDS + RAMP_SECONDS + CONNECT_TIMEOUT_SECONDS + settings.holdSeconds + HARD_MARGIN_SECONDS;
  const clientConfig: ClientConfig = {
    dst,
    port: settings.port,
    processes: clientSpread.processes,
    targets: clientSpread.targets,
    sources,
    inFlight: inFlightPerProcess(clientSpread.processes),
    connectTimeoutSeconds: CONNECT_TIMEOUT_SECONDS,
    waitListenerSeconds: WAIT_LISTENER_SECONDS,
    rampSeconds: RAMP_SECONDS,
    holdSeconds: settings.holdSeconds,
    hardSeconds,
  };
  const serverConfig: ServerConfig = {
    dst,
    port: settings.port,
    processes: serverSpread.processes,
    backlog: LISTEN_BACKLOG,
    idleSeconds: WAIT_LISTENER_SECONDS + 15,
    hardSeconds: hardSeconds + SERVER_EXTRA_SECONDS,
  };
  return {
    clientSpread,
    serverSpread,
    clientConfig,
    serverConfig,
    usedSources: sources.length > 0 ? sources : [client.preferredSource],
  };
}

/** Refuses what would make the measurement meaningless, before any helper starts. */
export function checkReady(
  clientName: string,
  serverName: string,
  client: ClientFacts,
  server: ServerFacts,
  port: number,
): void {
  for (const [name, f] of [
    [clientName, client],
    [serverName, server],
  ] as const) {
    if (!f.python)
      throw new CapacityError(
        `${name}: python3 is not installed; the probe's helper is a Python 3 program sent over SSH (nothing is installed). Install python3 (Debian: apt-get install python3)`,
      );
  }
  if (server.portListeners !== null && server.portListeners > 0) {
    throw new CapacityError(`${serverName}: port ${port} already has a listener; pick a free port with --port`);
  }
}

async function execOk(
  t: Transport,
  host: ResolvedHost,
  script: string,
  timeoutMs: number,
  what: string,
): Promise<ExecResult> {
  const r = await t.exec(script, { sudo: host.become, timeoutMs });
  if (r.code !== 0)
    throw new CapacityError(
      `${host.name}: ${what} failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-6).join("\n") || r.stdout.trim().slice(-400)}`,
    );
  return r;
}

/**
 * Connects to both hosts, reads the settings that explain a wall, runs the server helper and then
 * the client helper, and finally checks on both hosts that no helper process and no socket on the
 * port is left (killing stragglers by their marker).
 */
export async function runCapacityProbe(
  clientHost: ResolvedHost,
  serverHost: ResolvedHost,
  settings: CapacitySettings,
  connector: Pick<HostConnector, "connect">,
): Promise<CapacityReport> {
  const started = Date.now();
  helperSource(); // an installation without the helper fails here, before any host is touched
  const transports: Transport[] = [];
  const open = async (h: ResolvedHost) => {
    const t = await connector.connect(h);
    transports.push(t);
    return t;
  };
  try {
    const [ct, st] = await Promise.all([open(clientHost), open(serverHost)]);
    const dst = st.remoteAddress;
    const nonce = newNonce();
    const [cf, sf] = await Promise.all([
      execOk(ct, clientHost, clientFactsScript(nonce, dst), FACTS_TIMEOUT_MS, "reading the client's settings"),
      execOk(
        st,
        serverHost,
        serverFactsScript(nonce, settings.port),
        FACTS_TIMEOUT_MS,
        "reading the server's settings",
      ),
    ]);
    const clientFacts = parseClientFacts(cf.stdout, nonce, clientHost.name, dst);
    const serverFacts = parseServerFacts(sf.stdout, nonce, serverHost.name);
    checkReady(clientHost.name, serverHost.name, clientFacts, serverFacts, settings.port);
    const plan = helperConfigs(settings, dst, clientFacts, serverFacts);
    const marker = newMarker();
    const { client, server } = await runHelpers(
      ct,
      st,
      clientHost,
      serverHost,
      marker,
      plan.clientConfig,
      plan.serverConfig,
    );
    const [clientCleanup, serverCleanup] = await Promise.all([
      cleanUp(ct, clientHost, sideMarker(marker, "client"), clientSocketFilter(dst, settings.port)),
      cleanUp(st, serverHost, sideMarker(marker, "server"), serverSocketFilter(settings.port)),
    ]);
    const outcome = aggregate(client, server, settings.bound, clientFacts.preferredSource);
    const destination = `${dst.includes(":") ? `[${dst}]` : dst}:${settings.port}`;
    return {
      client: { host: clientHost.name, facts: clientFacts, spread: plan.clientSpread, sources: plan.usedSources },
      server: {
        host: serverHost.name,
        address: dst,
        port: settings.port,
        facts: serverFacts,
        spread: plan.serverSpread,
      },
      bound: settings.bound,
      outcome,
      diagnosis: diagnose({
        outcome,
        client: clientFacts,
        server: serverFacts,
        clientSpread: plan.clientSpread,
        serverSpread: plan.serverSpread,
        sources: plan.usedSources,
        destination,
        bound: settings.bound,
      }),
      cleanup: {
        client: clientCleanup,
        server: serverCleanup,
        ok: cleanupOk(clientCleanup) && cleanupOk(serverCleanup),
      },
      marker,
      elapsedSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    await Promise.all(transports.map((t) => t.close().catch(() => undefined)));
  }
}

/**
 * The server helper starts first; the client waits for its listener. When either side fails, the
 * other side's helper is killed by its marker at once instead of running into its deadline.
 */
async function runHelpers(
  ct: Transport,
  st: Transport,
  clientHost: ResolvedHost,
  serverHost: ResolvedHost,
  marker: string,
  clientConfig: ClientConfig,
  serverConfig: ServerConfig,
): Promise<{ client: ClientResult; server: ServerResult }> {
  const timeoutMs = (serverConfig.hardSeconds + 30) * 1000;
  const serverMarker = sideMarker(marker, "server");
  const clientMarker = sideMarker(marker, "client");
  const serverRun = st
    .exec(helperScript(serverMarker, "server", serverConfig), { sudo: serverHost.become, timeoutMs })
    .then((r) => parseServerResult(r.stdout, r.stderr, serverMarker, serverHost.name));
  const clientRun = ct
    .exec(helperScript(clientMarker, "client", clientConfig), { sudo: clientHost.become, timeoutMs })
    .then((r) => parseClientResult(r.stdout, r.stderr, clientMarker, clientHost.name));
  let clientSettled = false;
  let serverFailedFirst: unknown = null;
  serverRun.catch((err: unknown) => {
    if (clientSettled) return;
    serverFailedFirst = err;
    return cleanUp(ct, clientHost, clientMarker, null).catch(() => undefined);
  });
  try {
    const client = await clientRun.finally(() => (clientSettled = true));
    return { client, server: await serverRun };
  } catch (err) {
    await cleanUp(st, serverHost, serverMarker, null).catch(() => undefined);
    await serverRun.catch(() => undefined);
    throw serverFailedFirst ?? err;
  }
}

/** socketFilter null: only kill the helpers (the probe failed, nothing to report on sockets). */
async function cleanUp(
  t: Transport,
  host: ResolvedHost,
  marker: string,
  socketFilter: string | null,
): Promise<CleanupResult> {
  const r = await execOk(t, host, cleanupScript(marker, socketFilter), FACTS_TIMEOUT_MS, "the cleanup check");
  return parseCleanup(r.stdout, marker, host.name);
}
