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
  outputTail,
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

/** --max, --port, --duration (how long the connections are held once open). */
export interface CapacitySettings {
  bound: number;
  port: number;
  holdSeconds: number;
}

/** Waiting for the listener, opening, one handshake. */
const WAIT_LISTENER_SECONDS = 10;
const RAMP_SECONDS = 30;
const CONNECT_TIMEOUT_SECONDS = 5;
/** Reports, counting, closing: hardSeconds is 90 with the defaults. */
const HARD_MARGIN_SECONDS = 25;
/** The server starts first and must outlive the client. */
const SERVER_EXTRA_SECONDS = 10;
/** The kernel caps it at somaxconn, which the report shows. */
const LISTEN_BACKLOG = 65535;
const FACTS_TIMEOUT_MS = 30_000;

export function newMarker(): string {
  return `provision-probe-${randomBytes(6).toString("hex")}`;
}

/** Hosts sharing a process table (containers) must not count or kill each other's helpers, or pgrep. */
export function sideMarker(marker: string, side: "client" | "server"): string {
  return `${marker}-${side}`;
}

/** Pure, so the spreading and timing are testable. */
export function helperConfigs(settings: CapacitySettings, dst: string, client: ClientFacts, server: ServerFacts) {
  const { bound, port, holdSeconds } = settings;
  const clientSpread = spread(bound, client.hardNofile);
  const serverSpread = spread(bound, server.hardNofile);
  const sources = client.sources.length > 1 ? client.sources : [];
  const hardSeconds =
    WAIT_LISTENER_SECONDS + RAMP_SECONDS + CONNECT_TIMEOUT_SECONDS + holdSeconds + HARD_MARGIN_SECONDS;
  const clientConfig: ClientConfig = {
    dst,
    port,
    processes: clientSpread.processes,
    targets: clientSpread.targets,
    sources,
    inFlight: inFlightPerProcess(clientSpread.processes),
    connectTimeoutSeconds: CONNECT_TIMEOUT_SECONDS,
    waitListenerSeconds: WAIT_LISTENER_SECONDS,
    rampSeconds: RAMP_SECONDS,
    holdSeconds,
    hardSeconds,
  };
  const serverConfig: ServerConfig = {
    dst,
    port,
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

/** Before any helper starts: what would make the measurement meaningless. */
export function checkReady(
  clientName: string,
  serverName: string,
  client: ClientFacts,
  server: ServerFacts,
  port: number,
): void {
  const noPython = !client.python ? clientName : !server.python ? serverName : null;
  if (noPython !== null)
    throw new CapacityError(
      `${noPython}: python3 is not installed; the probe's helper is a Python 3 program sent over SSH (nothing is installed). Install python3 (Debian: apt-get install python3)`,
    );
  if ((server.portListeners ?? 0) > 0)
    throw new CapacityError(`${serverName}: port ${port} already has a listener; pick a free port with --port`);
}

interface Side {
  host: ResolvedHost;
  t: Transport;
}

async function execOk({ host, t }: Side, script: string, timeoutMs: number, what: string): Promise<ExecResult> {
  const r = await t.exec(script, { sudo: host.become, timeoutMs });
  if (r.code !== 0)
    throw new CapacityError(`${host.name}: ${what} failed (exit ${r.code}): ${outputTail(r.stdout, r.stderr)}`);
  return r;
}

/** Reads both sides' settings, runs the server then the client helper, and checks that nothing is left. */
export async function runCapacityProbe(
  clientHost: ResolvedHost,
  serverHost: ResolvedHost,
  settings: CapacitySettings,
  connector: Pick<HostConnector, "connect">,
): Promise<CapacityReport> {
  const started = Date.now();
  helperSource(); // an installation without the helper fails here, before any host is touched
  const transports: Transport[] = [];
  const open = async (host: ResolvedHost): Promise<Side> => {
    const t = await connector.connect(host);
    transports.push(t);
    return { host, t };
  };
  try {
    const [client, server] = await Promise.all([open(clientHost), open(serverHost)]);
    const { bound, port } = settings;
    const dst = server.t.remoteAddress;
    const nonce = newNonce();
    const [cf, sf] = await Promise.all([
      execOk(client, clientFactsScript(nonce, dst), FACTS_TIMEOUT_MS, "reading the client's settings"),
      execOk(server, serverFactsScript(nonce, port), FACTS_TIMEOUT_MS, "reading the server's settings"),
    ]);
    const clientFacts = parseClientFacts(cf.stdout, nonce, clientHost.name, dst);
    const serverFacts = parseServerFacts(sf.stdout, nonce, serverHost.name);
    checkReady(clientHost.name, serverHost.name, clientFacts, serverFacts, port);
    const {
      clientSpread,
      serverSpread,
      clientConfig,
      serverConfig,
      usedSources: sources,
    } = helperConfigs(settings, dst, clientFacts, serverFacts);
    const marker = newMarker();
    const results = await runHelpers(client, server, marker, clientConfig, serverConfig);
    const [clientCleanup, serverCleanup] = await Promise.all([
      cleanUp(client, sideMarker(marker, "client"), clientSocketFilter(dst, port)),
      cleanUp(server, sideMarker(marker, "server"), serverSocketFilter(port)),
    ]);
    const outcome = aggregate(results.client, results.server, bound, clientFacts.preferredSource);
    const destination = `${dst.includes(":") ? `[${dst}]` : dst}:${port}`;
    return {
      client: { host: clientHost.name, facts: clientFacts, spread: clientSpread, sources },
      server: { host: serverHost.name, address: dst, port, facts: serverFacts, spread: serverSpread },
      bound,
      outcome,
      diagnosis: diagnose({
        outcome,
        client: clientFacts,
        server: serverFacts,
        clientSpread,
        serverSpread,
        sources,
        destination,
        bound,
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

/** When one side fails, the other's helper is killed at once, not at its deadline. */
async function runHelpers(
  client: Side,
  server: Side,
  marker: string,
  clientConfig: ClientConfig,
  serverConfig: ServerConfig,
): Promise<{ client: ClientResult; server: ServerResult }> {
  const timeoutMs = (serverConfig.hardSeconds + 30) * 1000;
  const serverMarker = sideMarker(marker, "server");
  const clientMarker = sideMarker(marker, "client");
  const run = ({ host, t }: Side, script: string) => t.exec(script, { sudo: host.become, timeoutMs });
  const serverRun = run(server, helperScript(serverMarker, "server", serverConfig)).then((r) =>
    parseServerResult(r.stdout, r.stderr, serverMarker, server.host.name),
  );
  const clientRun = run(client, helperScript(clientMarker, "client", clientConfig)).then((r) =>
    parseClientResult(r.stdout, r.stderr, clientMarker, client.host.name),
  );
  let clientSettled = false;
  let serverFailedFirst: unknown = null;
  serverRun.catch((err: unknown) => {
    if (clientSettled) return;
    serverFailedFirst = err;
    return cleanUp(client, clientMarker, null).catch(() => undefined);
  });
  try {
    const clientResult = await clientRun.finally(() => (clientSettled = true));
    return { client: clientResult, server: await serverRun };
  } catch (err) {
    await cleanUp(server, serverMarker, null).catch(() => undefined);
    await serverRun.catch(() => undefined);
    throw serverFailedFirst ?? err;
  }
}

/** socketFilter null: the probe failed, only kill the helpers. */
async function cleanUp(side: Side, marker: string, socketFilter: string | null): Promise<CleanupResult> {
  const r = await execOk(side, cleanupScript(marker, socketFilter), FACTS_TIMEOUT_MS, "the cleanup check");
  return parseCleanup(r.stdout, marker, side.host.name);
}
