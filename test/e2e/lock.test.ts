// Single instance (CONTRACT §8): a second `relay run` on the same root is refused at once, naming
// the holder's pid; a lock left by a killed process never blocks the next start.
import { afterAll, describe, it } from "vitest";
import { killAll, makeRoot, runCli, Scope, secretsCheck } from "../support/cli.js";

afterAll(killAll);

describe("single instance", () => {
  it("refuses a second `relay run` on the same root at once, naming the pid; after kill -9 of the first a new start succeeds at once", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const vars = scope.vars();
    const root = await makeRoot();
    const first = await scope.start(root);
    expect(first.alive()).toBe(true);

    // Refused at once: a second relay that waited for the lock would never exit (runCli's timeout fails the test).
    const second = await runCli(["run", "--root", root], { env: vars, timeoutMs: 30_000 });
    expect(second.signal).toBeNull();
    expect(second.code).toBe(3); // EXIT.alreadyRunning
    const lines = second.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(String(first.pid));
    expect(first.alive()).toBe(true);

    process.kill(first.pid, "SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");

    const t0 = Date.now();
    const third = await scope.start(root);
    expect(third.alive()).toBe(true);
    expect(Date.now() - t0).toBeLessThan(30_000); // no wait for the dead holder (generous: start-up on a busy machine)
    const status = JSON.parse((await runCli(["status", "--json", "--root", root], { env: vars })).stdout) as { daemon: unknown };
    expect(status.daemon).toEqual({ running: true, pid: third.pid });
    expect(third.alive()).toBe(true);
  });

  it("of three `relay run` started at the same instant on one root exactly one runs; the others exit at once naming its pid", async (ctx) => {
    const { expect } = ctx;
    const scope = await Scope.create(ctx);
    const root = await makeRoot();
    const started = await Promise.all([scope.start(root), scope.start(root), scope.start(root)]);
    const running = started.filter((d) => d.alive());
    expect(running, started.map((d) => d.stderr()).join("\n---\n")).toHaveLength(1);
    const winner = running[0];
    for (const loser of started.filter((d) => d !== winner)) {
      const exit = await loser.exited;
      expect(exit.code).toBe(3); // EXIT.alreadyRunning
      const lines = loser.stderr().trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`pid ${String(winner?.pid)}`);
    }
    const status = JSON.parse((await runCli(["status", "--json", "--root", root], { env: scope.vars() })).stdout) as { daemon: unknown };
    expect(status.daemon).toEqual({ running: true, pid: winner?.pid });
  });
});

secretsCheck();
