/**
 * Ports for a test that must name its port before binding it, or bind it again later (a server
 * restarted after kill -9, a proxy that refuses and then accepts connections again).
 *
 * A port from `listen(0)` comes from the kernel's ephemeral range, the range every outgoing
 * connection and every other test's `listen(0)` draws from too: released for a moment, it can be
 * taken. A port below that range is never handed out by the kernel, so only a test that picks the
 * same number at random could take it.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The first port of the kernel's ephemeral range (Linux's default when it cannot be read). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that is free now and that the OS will not hand to anyone else: picked at
 * random between 10000 and the ephemeral range, checked by binding it, never the same twice in
 * one process.
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow() - 1;
  for (let tries = 0; tries < 200; tries++) {
    const candidate = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(candidate)) continue;
    handedOut.add(candidate);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(candidate, "127.0.0.1", () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return candidate;
  }
  throw new Error(`no free port between ${low} and ${high}`);
}
