/**
 * A TCP proxy on 127.0.0.1 (OS-chosen port) in front of a server, to make network partitions in
 * the tests: `reset()` cuts every connection and refuses new ones (a link that went down, a
 * restarted NAT), `blackhole()` keeps the connections but forwards nothing either way, holding
 * the bytes (a partition TCP rides out by retransmitting), and `heal()` restores forwarding,
 * releasing what was held in order. `stale()` makes every open connection silently dead for
 * good (nothing forwarded, no RST ever) while new connections go through: only the client's own
 * pings can find out.
 */
import { createServer, type Server, type Socket, connect } from "node:net";

export type ProxyMode = "open" | "reset" | "blackhole";

export interface TcpProxy {
  port: number;
  mode(): ProxyMode;
  reset(): void;
  blackhole(): void;
  stale(): void;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  held: { to: Socket; chunk: Buffer }[];
  /** dead for good (stale()): its bytes are dropped */
  dead: boolean;
}

export async function startTcpProxy(target: { host?: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = "open";
  const pairs = new Set<Pair>();

  const forward = (pair: Pair, to: Socket) => (chunk: Buffer) => {
    if (pair.dead) return;
    if (mode === "blackhole") pair.held.push({ to, chunk });
    else if (mode === "open" && !to.destroyed) to.write(chunk);
  };

  const server: Server = createServer((client) => {
    if (mode === "reset") {
      client.destroy();
      return;
    }
    const upstream = connect({ host: target.host ?? "127.0.0.1", port: target.port });
    const pair: Pair = { client, upstream, held: [], dead: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", forward(pair, upstream));
    upstream.on("data", forward(pair, client));
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");

  return {
    port: address.port,
    mode: () => mode,
    reset() {
      mode = "reset";
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
    },
    blackhole() {
      mode = "blackhole";
    },
    stale() {
      mode = "open";
      for (const pair of pairs) pair.dead = true;
    },
    heal() {
      mode = "open";
      for (const pair of pairs) {
        for (const { to, chunk } of pair.held.splice(0)) if (!to.destroyed) to.write(chunk);
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
