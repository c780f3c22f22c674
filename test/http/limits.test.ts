// The status page under load: a bounded number of /events clients, a client that does not read
// is dropped, live updates come from the daemon's in-memory status (not re-read from disk), and
// the costs come from the ledger's summary.
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { StatusFile } from "../../src/status/status-file.js";
import { makeRoot, raw, seedActivity, startServer, statusFile, type TestRoot, writeStatus } from "./support.js";

let t: TestRoot;
let server: Awaited<ReturnType<typeof startServer>> | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
  server = null;
  await t.remove();
});

/** An /events client at the socket level: connects, sends the request, reads the status line, then reads nothing more when `stall`. */
function eventsClient(port: number, opts: { stall: boolean }): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    sockets.push(socket);
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (!m) return;
      if (opts.stall) {
        socket.off("data", onData);
        socket.pause(); // reads nothing more: the kernel's buffers fill, then the server's
      }
      resolve({ status: Number(m[1]), socket });
    };
    socket.on("data", onData);
    socket.on("error", reject);
    socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("/events", () => {
  it("serves at most limits.page_clients clients at once and refuses one more with 503", async () => {
    t = await makeRoot();
    await writeStatus(t.paths, "idle");
    server = await startServer(t, { maxClients: 2 });
    const a = await eventsClient(server.port, { stall: false });
    const b = await eventsClient(server.port, { stall: false });
    expect([a.status, b.status]).toEqual([200, 200]);
    const refused = await raw(new URL("/events", server.url).href);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatch(/at most 2/);
    a.socket.destroy();
    await pause(100);
    expect((await eventsClient(server.port, { stall: false })).status).toBe(200);
  });

  it("drops a client that does not read, freeing its place", async () => {
    t = await makeRoot();
    // a large status (a long open question), held in memory as the daemon holds it
    let current: StatusFile = statusFile({ openQuestions: [{ question: "x".repeat(512 * 1024) }] });
    server = await startServer(t, { maxClients: 1, current: () => current });
    const stalled = await eventsClient(server.port, { stall: true });
    expect(stalled.status).toBe(200);
    expect((await raw(new URL("/events", server.url).href)).status).toBe(503);
    // every change pushes ~0.5 MB that the stalled client never reads
    let freed = false;
    for (let i = 0; i < 400 && !freed; i++) {
      current = { ...current, updatedAt: new Date(Date.now() + i).toISOString(), history: { chars: i, turns: i } };
      server.notify();
      await pause(60);
      if (i % 10 === 9) {
        const probe = await eventsClient(server.port, { stall: false });
        freed = probe.status === 200;
        probe.socket.destroy();
      }
    }
    expect(freed).toBe(true);
  }, 60_000);

  it("pushes the daemon's in-memory status, not state/status.json", async () => {
    t = await makeRoot();
    await writeStatus(t.paths, "idle");
    const held = statusFile({ state: "calling" });
    server = await startServer(t, { current: () => held });
    const status = await raw(new URL("/status.json", server.url).href);
    expect((JSON.parse(status.body) as { state: string }).state).toBe("calling");
  });
});

describe("/api/costs and /api/calls", () => {
  it("come from the ledger's summary and its newest lines", async () => {
    t = await makeRoot();
    await seedActivity(t.paths);
    server = await startServer(t);
    const costs = JSON.parse((await raw(new URL("/api/costs", server.url).href)).body) as { calls: number; bySession: { key: string; calls: number }[] };
    expect(costs.calls).toBe(7);
    expect(costs.bySession.map((r) => [r.key, r.calls])).toEqual([
      ["session-1", 4],
      ["session-2", 3],
    ]);
    const calls = JSON.parse((await raw(new URL("/api/calls?limit=2", server.url).href)).body) as { calls: { session: string; latencyMs: number }[] };
    expect(calls.calls.map((c) => c.latencyMs)).toEqual([4_100, 2_300]);
  });
});
