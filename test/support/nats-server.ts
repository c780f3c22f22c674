/**
 * A real nats-server for the tests: `nats-server -c` on free ports below the kernel's ephemeral
 * range, a temporary store, `max_payload: 8MB`, ready once `/healthz?js-enabled-only=true` says so.
 * `kill9()` and `restart()` keep the ports and the store, as a crashed server on the same host would.
 *
 * Ports come from `freePort()` (below the kernel's ephemeral range), as a port named in a config (a
 * cluster's routes, a restart after kill -9) must not be handed to another test's socket meanwhile:
 * CI saw "bind: address already in use" on a cluster member's route port chosen by listen(0).
 * `natsSkipReason` is set when nats-server is not installed (the NATS tests skip, saying so).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.js";

function findServer(): string | null {
  for (const candidate of [process.env.NATS_SERVER_BIN, "nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // not this one
    }
  }
  return null;
}

export const NATS_SERVER_BIN = findServer();
export const natsSkipReason: string | null = NATS_SERVER_BIN === null ? "nats-server is not installed (apt-get install nats-server)" : null;

export interface NatsServer {
  url: string;
  port: number;
  httpPort: number;
  storeDir: string;
  /** SIGKILL, as a crash: the store stays */
  kill9(): Promise<void>;
  /** start again on the same ports and store, ready when it returns */
  restart(): Promise<void>;
  stop(): Promise<void>;
  running(): boolean;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export interface NatsServerOptions {
  /** extra lines for the config file (authorization { ... }, etc.) */
  extraConfig?: string;
  maxPayload?: string;
  /** fixed ports (a cluster's members must know each other's); default: chosen by the OS */
  port?: number;
  /** a member of a cluster: its name, its route port, and the other members' route ports */
  cluster?: { serverName: string; port: number; routes: number[] };
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  if (NATS_SERVER_BIN === null) throw new Error(natsSkipReason ?? "nats-server missing");
  const dir = await mkdtemp(join(tmpdir(), "relay-nats-"));
  const storeDir = join(dir, "store");
  const confFile = join(dir, "nats.conf");
  let port = opts.port ?? (await freePort());
  let httpPort = await freePort();
  let child: ChildProcess | null = null;

  const writeConf = () =>
    writeFile(
      confFile,
      [
        `listen: 127.0.0.1:${port}`,
        `http: 127.0.0.1:${httpPort}`,
        `max_payload: ${opts.maxPayload ?? "8MB"}`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        ...(opts.cluster
          ? [
              `server_name: ${opts.cluster.serverName}`,
              `cluster { name: relaytest, listen: 127.0.0.1:${opts.cluster.port}, routes: [${opts.cluster.routes.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")}] }`,
            ]
          : []),
        opts.extraConfig ?? "",
        "",
      ].join("\n"),
    );

  const launch = async () => {
    await writeConf();
    const proc = spawn(NATS_SERVER_BIN, ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    live.add(proc);
    proc.on("exit", () => live.delete(proc));
    let log = "";
    const ports = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${log.slice(-2000)}`)), 15_000);
      proc.stderr?.on("data", (chunk: Buffer) => {
        log += chunk.toString("utf8");
        const client = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
        const http = /Starting http monitor on [^\s]*:(\d+)/.exec(log);
        if (client?.[1] && http?.[1]) {
          port = Number(client[1]);
          httpPort = Number(http[1]);
          clearTimeout(timer);
          resolve();
        }
      });
      proc.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${String(code)}): ${log.slice(-2000)}`));
      });
    });
    await ports;
    proc.stderr?.resume();
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${httpPort}/healthz?js-enabled-only=true`);
        if (res.ok) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error("nats-server never became healthy");
      await sleep(50);
    }
  };

  const kill = async (signal: NodeJS.Signals) => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    await exited;
  };

  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (error) {
      // Another process took a port between our check and nats-server's bind: new ports, unless
      // the caller named them (a cluster retries as a whole).
      if (!isAddressInUse(error) || opts.port !== undefined || attempt === 5) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
      port = await freePort();
      httpPort = await freePort();
    }
  }
  // The ports are kept for every restart (the config names them).
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get httpPort() {
      return httpPort;
    },
    storeDir,
    kill9: () => kill("SIGKILL"),
    async restart() {
      await kill("SIGKILL");
      await launch();
    },
    async stop() {
      await kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    },
    running: () => child !== null && child.exitCode === null,
  };
}

export function isAddressInUse(error: unknown): boolean {
  return error instanceof Error && error.message.includes("address already in use");
}

export interface NatsCluster {
  nodes: NatsServer[];
  /** every member's client URL, comma-separated (NATS_URL) */
  url: string;
  stop(): Promise<void>;
}

/**
 * Three nats-servers routed into one JetStream cluster (replicas: 3), ready once every member
 * sees a meta leader and three peers.
 */
export async function startNatsCluster(): Promise<NatsCluster> {
  const nodes = await startClusterMembers();
  await waitForMetaLeader(nodes);
  return {
    nodes,
    url: nodes.map((n) => n.url).join(","),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/** Three members on fresh ports; all started again on new ports if one of them lost a port race. */
async function startClusterMembers(): Promise<NatsServer[]> {
  for (let attempt = 1; ; attempt++) {
    const clientPorts = [await freePort(), await freePort(), await freePort()];
    const routePorts = [await freePort(), await freePort(), await freePort()];
    const started = await Promise.allSettled(
      [0, 1, 2].map((i) =>
        startNatsServer({
          port: clientPorts[i] ?? 0,
          cluster: { serverName: `n${i + 1}`, port: routePorts[i] ?? 0, routes: routePorts.filter((_, j) => j !== i) },
        }),
      ),
    );
    const nodes = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failure = started.find((s) => s.status === "rejected");
    if (failure === undefined) return nodes;
    await Promise.all(nodes.map((n) => n.stop()));
    if (!isAddressInUse(failure.reason) || attempt === 3) throw failure.reason;
  }
}

/** Until every running member reports a JetStream meta leader in a cluster of three. */
export async function waitForMetaLeader(nodes: NatsServer[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await Promise.all(
      nodes
        .filter((n) => n.running())
        .map(async (n) => {
          try {
            const res = await fetch(`http://127.0.0.1:${n.httpPort}/jsz`);
            const jsz = (await res.json()) as { meta_cluster?: { leader?: string; cluster_size?: number } };
            return Boolean(jsz.meta_cluster?.leader) && jsz.meta_cluster?.cluster_size === 3;
          } catch {
            return false;
          }
        }),
    );
    if (ready.length > 0 && ready.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error("the NATS cluster elected no JetStream meta leader");
    await sleep(200);
  }
}
