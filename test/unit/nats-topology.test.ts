// A server that goes away while the topology is looked at is not a set-up problem (issue 16:
// "server unreachable at start: start anyway, retry"): the look throws, so `relay run` and
// `relay agent` on a verified root start anyway and retry, instead of exiting 1 with
// "stream RELAY_ENV: timeout" (what the NATS soak saw when nats-server was killed -9 while a
// relay or an agent was starting). Skipped, saying why, when nats-server is not installed.
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/runtime/log.js";
import { connectNats } from "../../src/transport/nats/connection.js";
import { isTransientNatsError } from "../../src/transport/nats/errors.js";
import { natsNames } from "../../src/transport/nats/names.js";
import { ensurePullConsumer, ensureTopology } from "../../src/transport/nats/topology.js";
import { type NatsServer, natsSkipReason, startNatsServer } from "../support/nats-server.js";

if (natsSkipReason) console.warn(`skipping the NATS topology test: ${natsSkipReason}`);
const servers: NatsServer[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

describe("what counts as the server being away for now", () => {
  it("a timeout, no responders, a closed or draining connection and 2.9's quorum answer are transient; a refusal is not", () => {
    for (const message of ["timeout", "no responders: '$JS.API.STREAM.INFO.RELAY_ENV'", "closed connection", "connection draining", "jetstream is not enabled"]) {
      expect(isTransientNatsError(new Error(message)), message).toBe(true);
    }
    for (const message of ["stream not found", "wrong last sequence: 4", "authorization violation", "insufficient resources"]) {
      expect(isTransientNatsError(new Error(message)), message).toBe(false);
    }
  });
});

describe.skipIf(natsSkipReason !== null)("the topology look when nats-server goes away", () => {
  it("throws (to be retried) instead of reporting a problem that would stop the start", async () => {
    const server = await startNatsServer();
    servers.push(server);
    const link = await connectNats({ url: server.url, prefix: "tt", replicas: 1 }, "topology test", silentLogger());
    try {
      const names = natsNames("tt");
      const first = await ensureTopology(link, names, 1, { create: true, relayConsumers: true });
      expect(first.problems).toEqual([]);
      await server.kill9();
      await expect(ensureTopology(link, names, 1, { create: true, relayConsumers: true })).rejects.toSatisfy(isTransientNatsError);
      await expect(ensurePullConsumer(link.jsm, names.rejectStream, names.rejectConsumer("s1"), names.rejectFilter("s1"), 64, true)).rejects.toSatisfy(isTransientNatsError);
    } finally {
      await link.nc.close().catch(() => undefined);
    }
  }, 60_000);
});
