// The NATS side's timings are the contract's unless a test shortens them (src/transport/nats/timings.ts).
import { afterEach, describe, expect, it } from "vitest";
import type { NatsSettings } from "../../src/config/config.js";
import { connectOptions } from "../../src/transport/nats/connection.js";
import { ackWaitMs, heartbeatMs, pingIntervalMs, workingEveryMs } from "../../src/transport/nats/timings.js";

const SETTINGS: NatsSettings = { url: "nats://127.0.0.1:4222", replicas: 1, prefix: "relay" };
const KNOBS = ["RELAY_NATS_PING_MS", "RELAY_NATS_ACK_WAIT_MS", "RELAY_NATS_HEARTBEAT_MS"] as const;
afterEach(() => {
  for (const k of KNOBS) delete process.env[k];
});

describe("NATS timings", () => {
  it("are the defaults when nothing is set: a 7 s ping with 3 outstanding (a dead link found within 28 s), a 10 s ack wait kept alive every 4 s, a 10 s claim check", async () => {
    expect(pingIntervalMs()).toBe(7_000);
    expect(ackWaitMs()).toBe(10_000);
    expect(workingEveryMs()).toBe(4_000);
    expect(heartbeatMs()).toBe(10_000);
    const opts = await connectOptions(SETTINGS, "t");
    expect(opts).toMatchObject({ pingInterval: 7_000, maxPingOut: 3, timeout: 2_000 });
  });

  it("a test may shorten each; the held delivery is still kept alive well inside the ack wait", async () => {
    process.env.RELAY_NATS_PING_MS = "3000";
    process.env.RELAY_NATS_ACK_WAIT_MS = "4000";
    process.env.RELAY_NATS_HEARTBEAT_MS = "1000";
    expect(pingIntervalMs()).toBe(3_000);
    expect(ackWaitMs()).toBe(4_000);
    expect(workingEveryMs()).toBe(1_600);
    expect(heartbeatMs()).toBe(1_000);
    expect((await connectOptions(SETTINGS, "t")).pingInterval).toBe(3_000);
  });

  it("ignores a value that is not a whole number of at least 500 ms", () => {
    for (const bad of ["", "abc", "100", "1500.5", "-3000"]) {
      process.env.RELAY_NATS_PING_MS = bad;
      expect(pingIntervalMs(), bad).toBe(7_000);
    }
  });
});
