// One connection per process, with the settings CONTRACT §11 and the issue require: credentials
// from .env or the environment, TLS with NATS_CA, a 7 s ping with 3 missed (a dead link is found
// within 28 s, not the client's default of minutes), reconnection forever, and every request
// bounded by 2 s. The server is checked once connected: version >= 2.9.0, JetStream on, and a
// max_payload that takes an 8 MiB envelope with its headers.
import { readFile } from "node:fs/promises";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import type { NatsSettings } from "../../config/config.js";
import type { Logger } from "../../runtime/log.js";
import { messageOf } from "../../../machines/types.js";
import { NatsSetupError } from "./errors.js";
import { MAX_PING_OUT, pingIntervalMs } from "./timings.js";

export const REQUEST_TIMEOUT_MS = 2_000;
export const RECONNECT_WAIT_MS = 500;
export const MIN_MAX_PAYLOAD = 8 * 1024 * 1024;
const MIN_VERSION = [2, 9, 0] as const;

export interface NatsLink {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kvm: Kvm;
  server: { version: string; maxPayload: number };
  /**
   * Run `listener` each time the connection comes back after a loss (until the returned function
   * is called): what waited for the server retries then, not at its next poll.
   */
  onReconnect(listener: () => void): () => void;
  /**
   * Connected now (false from a loss until the connection is back): a request made meanwhile
   * waits its whole timeout, so a loop skips what needs the server until then.
   */
  up(): boolean;
}

/** The URL as it may be shown: without user:password@ (in each URL of a comma-separated list). */
export const shownUrl = (url: string): string => url.replace(/\/\/[^@/,]*@/g, "//");

export async function connectOptions(settings: NatsSettings, name: string): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = {
    // a cluster's members, comma-separated; the client also learns the others from the server
    servers: settings.url.split(","),
    name,
    pingInterval: pingIntervalMs(),
    maxPingOut: MAX_PING_OUT,
    maxReconnectAttempts: -1,
    // a restarted server is found within half a second (plus the client's 100 ms jitter)
    reconnectTimeWait: RECONNECT_WAIT_MS,
    timeout: REQUEST_TIMEOUT_MS,
  };
  if (settings.creds !== undefined) {
    let creds: Uint8Array;
    try {
      creds = await readFile(settings.creds);
    } catch (err) {
      throw new NatsSetupError(`NATS_CREDS: cannot read the .creds file (${messageOf(err).replace(/^.*?: /, "")})`);
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  if (settings.token !== undefined) opts.token = settings.token;
  if (settings.user !== undefined) opts.user = settings.user;
  if (settings.password !== undefined) opts.pass = settings.password;
  if (settings.ca !== undefined) opts.tls = { caFile: settings.ca };
  else if (settings.url.startsWith("tls://")) opts.tls = {};
  return opts;
}

const olderThan = (version: string, min: readonly number[]): boolean => {
  const parts = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const have = parts[i] ?? 0;
    const want = min[i] ?? 0;
    if (Number.isNaN(have)) return true;
    if (have !== want) return have < want;
  }
  return false;
};

/** Whether a connection failure is the set-up's fault (fatal) rather than the network's (retried). */
export function classifyConnectError(err: unknown, url: string): NatsSetupError | null {
  const message = messageOf(err);
  if (/authorization|authentication|auth/i.test(message)) return new NatsSetupError(`NATS at ${shownUrl(url)} refused the credentials (${message.toLowerCase()}): check NATS_CREDS, NATS_TOKEN or NATS_USER and NATS_PASSWORD`);
  if (/tls|certificate|self.signed|ssl/i.test(message)) return new NatsSetupError(`NATS at ${shownUrl(url)}: TLS failed (${message}): check NATS_CA and the URL's tls:// scheme`);
  return null;
}

/** The server's own settings the relay depends on, one line per problem. */
export function serverProblems(info: { version: string; jetstream?: boolean; max_payload: number }): string[] {
  const problems: string[] = [];
  if (olderThan(info.version, MIN_VERSION)) problems.push(`nats-server ${info.version} is too old: expected version 2.9.0 or later`);
  if (info.jetstream !== true) problems.push("nats-server has JetStream off: start it with -js or a jetstream {} block");
  if (info.max_payload < MIN_MAX_PAYLOAD) problems.push(`nats-server max_payload is ${info.max_payload} bytes: expected max_payload: 8MB (an envelope may be 1 MiB of content, 6 MiB as JSON)`);
  return problems;
}

/**
 * Connect and check the server. Throws NatsSetupError on a set-up fault (credentials, TLS, the
 * server's settings), and the client's own error when the server is not reachable.
 */
export async function connectNats(settings: NatsSettings, name: string, log: Logger): Promise<NatsLink> {
  const opts = await connectOptions(settings, name);
  let nc: NatsConnection;
  try {
    nc = await connect(opts);
  } catch (err) {
    throw classifyConnectError(err, settings.url) ?? new Error(`cannot reach NATS at ${shownUrl(settings.url)}: ${messageOf(err)}`);
  }
  const info = nc.info;
  const problems = info ? serverProblems(info) : ["nats-server sent no INFO"];
  if (problems.length > 0) {
    await nc.close().catch(() => undefined);
    throw new NatsSetupError(problems[0] ?? "nats-server is not usable");
  }
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS });
  } catch (err) {
    await nc.close().catch(() => undefined);
    const message = messageOf(err);
    if (/not enabled/i.test(message)) throw new NatsSetupError(`JetStream is not enabled for this account on ${shownUrl(settings.url)}: enable it in the server's config`);
    throw new Error(`NATS at ${shownUrl(settings.url)}: ${message}`);
  }
  const reconnected = new Set<() => void>();
  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        up = false;
        log.warn({ server: shownUrl(settings.url) }, "NATS connection lost; reconnecting");
      } else if (s.type === "reconnect") {
        up = true;
        log.info({ server: shownUrl(settings.url) }, "NATS connection back");
        for (const listener of reconnected) listener();
      }
      else if (s.type === "error") log.warn({ err: messageOf(s.error) }, "NATS connection error");
    }
  })().catch(() => undefined);
  const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
  return {
    nc,
    js,
    jsm,
    // from the 2 s JetStream client: given the connection, the buckets' requests would wait 5 s
    kvm: new Kvm(js),
    server: { version: info?.version ?? "?", maxPayload: info?.max_payload ?? 0 },
    up: () => up && !nc.isClosed(),
    onReconnect(listener) {
      reconnected.add(listener);
      return () => reconnected.delete(listener);
    },
  };
}
