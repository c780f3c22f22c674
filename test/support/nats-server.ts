/**
 * A real nats-server for the tests: `nats-server -c` with OS-chosen ports (found in its log), a
 * temporary store, `max_payload: 8MB`, ready once `/healthz?js-enabled-only=true` says so.
 * `kill9()` and `restart()` keep the ports and the store, as a crashed server on the same host would.
 * `natsSkipReason` is set when nats-server is not installed (the NATS tests skip, saying so).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

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
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  if (NATS_SERVER_BIN === null) throw new Error(natsSkipReason ?? "nats-server missing");
  const dir = await mkdtemp(join(tmpdir(), "relay-nats-"));
  const storeDir = join(dir, "store");
  const confFile = join(dir, "nats.conf");
  let port = -1;
  let httpPort = -1;
  let child: ChildProcess | null = null;

  const writeConf = () =>
    writeFile(
      confFile,
      [
        `listen: 127.0.0.1:${port}`,
        `http: 127.0.0.1:${httpPort}`,
        `max_payload: ${opts.maxPayload ?? "8MB"}`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
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

  await launch();
  // The ports the OS chose are kept for every restart (the config now names them).
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
