// One Claude Code session per relay session (src/claude-code/binding.ts), the session's single
// background waiter (waiter.ts), and what state/status.json says holds a session (holdOf in
// replies.ts, including a back-off that outlasts the hook's wait).
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bindingFile, claimBinding, readBinding, releaseBinding } from "../../src/claude-code/binding.js";
import { holdOf } from "../../src/claude-code/replies.js";
import { becomeWaiter, endWaiterOf, isWaiter, leaveWaiter, readWaiter, waiterFile } from "../../src/claude-code/waiter.js";
import { relayPaths, type RelayPaths } from "../../src/config/paths.js";
import { MIRROR_STALE_MS, remoteStatusPath } from "../../src/status/remote-status.js";
import { statusFileSchema } from "../../src/status/status-file.js";
import { exists } from "../support/cli.js";

const A = "9a0f6c1e-2d4b-4f8e-b1a7-3c5d7e9f0a21";
const B = "5b2e9c47-8f1a-4d3b-a6c0-2e7f9d1b3c58";
const MIN = 60_000;

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
});
async function tempPaths(): Promise<RelayPaths> {
  const root = await mkdtemp(join(tmpdir(), "relay-binding-"));
  roots.push(root);
  return relayPaths(root);
}

describe("the binding of a relay session to one Claude Code session", () => {
  it("binds the first session, refreshes it on each run, and refuses another while it was seen within releaseAfterMs", async () => {
    const paths = await tempPaths();
    const t0 = Date.parse("2026-05-02T15:00:00Z");
    const first = await claimBinding(paths, "session-1", A, { now: t0, releaseAfterMs: 30 * MIN });
    expect(first).toEqual({ ok: true, binding: { ccSession: A, boundAt: new Date(t0).toISOString(), seenAt: new Date(t0).toISOString() } });
    const again = await claimBinding(paths, "session-1", A, { now: t0 + 10 * MIN, releaseAfterMs: 30 * MIN });
    expect(again).toEqual({ ok: true, binding: { ccSession: A, boundAt: new Date(t0).toISOString(), seenAt: new Date(t0 + 10 * MIN).toISOString() } });

    const refused = await claimBinding(paths, "session-1", B, { now: t0 + 39 * MIN, releaseAfterMs: 30 * MIN });
    expect(refused).toEqual({ ok: false, holder: { ccSession: A, boundAt: new Date(t0).toISOString(), seenAt: new Date(t0 + 10 * MIN).toISOString() } });
    expect((await readBinding(paths, "session-1"))?.ccSession).toBe(A); // a refusal changes nothing
    // Other relay sessions are bound on their own.
    expect((await claimBinding(paths, "session-2", B, { now: t0 + 39 * MIN, releaseAfterMs: 30 * MIN })).ok).toBe(true);

    // Not seen for releaseAfterMs: taken to be gone, and the other session binds afresh.
    const taken = await claimBinding(paths, "session-1", B, { now: t0 + 40 * MIN, releaseAfterMs: 30 * MIN });
    expect(taken).toEqual({ ok: true, binding: { ccSession: B, boundAt: new Date(t0 + 40 * MIN).toISOString(), seenAt: new Date(t0 + 40 * MIN).toISOString() } });
  });

  it("is released only by the session that holds it (SessionEnd), after which any session may bind", async () => {
    const paths = await tempPaths();
    const now = Date.now();
    expect(await releaseBinding(paths, "session-1", A)).toBe(false); // nothing bound
    expect((await claimBinding(paths, "session-1", A, { now, releaseAfterMs: 30 * MIN })).ok).toBe(true);
    expect(await releaseBinding(paths, "session-1", B)).toBe(false);
    expect(await exists(bindingFile(paths, "session-1"))).toBe(true);
    expect(await releaseBinding(paths, "session-1", A)).toBe(true);
    expect(await exists(bindingFile(paths, "session-1"))).toBe(false);
    expect((await claimBinding(paths, "session-1", B, { now, releaseAfterMs: 30 * MIN })).ok).toBe(true);
  });

  it("takes an unreadable binding file for none", async () => {
    const paths = await tempPaths();
    await mkdir(join(paths.state, "hooks"), { recursive: true });
    await writeFile(bindingFile(paths, "session-1"), "{torn");
    expect(await readBinding(paths, "session-1")).toBeNull();
    expect((await claimBinding(paths, "session-1", B, { now: Date.now(), releaseAfterMs: 30 * MIN })).ok).toBe(true);
  });
});

describe("the session's single waiter (wake mode)", () => {
  it("this process becomes the waiter, leaves it, and SessionEnd of the same Claude Code session ends it", async () => {
    const paths = await tempPaths();
    expect(await isWaiter(paths, "session-1")).toBe(false);
    await becomeWaiter(paths, "session-1", A);
    expect(await readWaiter(paths, "session-1")).toMatchObject({ pid: process.pid, ccSession: A });
    expect(await isWaiter(paths, "session-1")).toBe(true);
    await leaveWaiter(paths, "session-1");
    expect(await exists(waiterFile(paths, "session-1"))).toBe(false);

    await becomeWaiter(paths, "session-1", A);
    expect(await endWaiterOf(paths, "session-1", B)).toBe(false); // not that session's waiter
    expect(await isWaiter(paths, "session-1")).toBe(true);
    expect(await endWaiterOf(paths, "session-1", A)).toBe(true); // never signals this process itself
    expect(await exists(waiterFile(paths, "session-1"))).toBe(false);
  });

  it("a waiter file naming a process that is gone is simply replaced", async () => {
    const paths = await tempPaths();
    await mkdir(join(paths.state, "hooks"), { recursive: true });
    await writeFile(waiterFile(paths, "session-1"), JSON.stringify({ pid: 2 ** 22 + 12_345, ccSession: B, since: new Date().toISOString() }));
    await becomeWaiter(paths, "session-1", A);
    expect(JSON.parse(await readFile(waiterFile(paths, "session-1"), "utf8"))).toMatchObject({ pid: process.pid, ccSession: A });
  });
});

describe("holdOf: what holds a session's conversation", () => {
  async function writeStatus(paths: RelayPaths, retry: { kind: "transient" | "permanent"; nextTryAt: string; message: string } | null): Promise<void> {
    const now = new Date().toISOString();
    const status = statusFileSchema.parse({
      format: "relay-status/2",
      updatedAt: now,
      pid: process.pid,
      state: retry ? "backingOff" : "idle",
      needsJc: null,
      questions: [],
      conversations: { "session-1": { state: "idle", sessions: ["session-1"], chars: 0, turns: 0, question: null } },
      sessions: { "session-1": { pending: 0, conversation: "session-1" } },
      history: { chars: 0, turns: 0 },
      lastError: retry ? { message: retry.message, at: now } : null,
      retry: retry ? { ...retry, attempt: 2, since: now } : null,
      calls: { inFlight: 0, maxParallel: 4 },
      cost: { totalUsd: 0, todayUsd: 0, calls: 0, unpricedCalls: 0 },
    });
    await mkdir(paths.state, { recursive: true });
    await writeFile(join(paths.state, ".status.tmp"), JSON.stringify(status));
    await rename(join(paths.state, ".status.tmp"), join(paths.state, "status.json"));
  }

  it("a transient back-off is a hold only when it ends after the hook's deadline", async () => {
    const paths = await tempPaths();
    const until = Date.parse("2026-05-02T16:00:00Z");
    await writeStatus(paths, { kind: "transient", nextTryAt: new Date(until).toISOString(), message: "529 overloaded" });
    expect(await holdOf(paths, "session-1", until - 1)).toEqual({ kind: "backingOff", until, message: "529 overloaded" });
    expect(await holdOf(paths, "session-1", until)).toBeNull();
    expect(await holdOf(paths, "session-1", until + MIN)).toBeNull();
    expect(await holdOf(paths, "session-1")).toBeNull(); // no deadline: it is waited out

    await writeStatus(paths, { kind: "transient", nextTryAt: "not a date", message: "network" });
    expect(await holdOf(paths, "session-1", 0)).toBeNull();
    await writeStatus(paths, { kind: "permanent", nextTryAt: new Date(until).toISOString(), message: "credit balance exhausted" });
    expect(await holdOf(paths, "session-1", until + MIN)).toEqual({ kind: "paused", message: "credit balance exhausted" });
    await writeStatus(paths, null);
    expect(await holdOf(paths, "session-1", 0)).toBeNull();
  });

  it("on an agent's root the mirror of the relay's status decides, and a mirror missing or over 30 s old is the relay unreachable", async () => {
    const paths = await tempPaths();
    const agentRoot = { agentRoot: true };
    expect(await holdOf(paths, "session-1", 0, agentRoot)).toEqual({ kind: "unreachable", ageMs: null });

    // a status.json left on the root is not the relay's word on an agent's root
    await writeStatus(paths, { kind: "permanent", nextTryAt: new Date().toISOString(), message: "credit balance exhausted" });
    const status = JSON.parse(await readFile(join(paths.state, "status.json"), "utf8")) as unknown;
    await rm(join(paths.state, "status.json"));
    const mirror = async (mirroredAt: number, relayStatus: unknown) =>
      writeFile(
        remoteStatusPath(paths),
        JSON.stringify({ status: relayStatus, relayHeartbeatAt: new Date(mirroredAt).toISOString(), agent: { name: "laptop", pid: 1, sessions: ["session-1"] }, mirroredAt: new Date(mirroredAt).toISOString() }),
      );
    await mirror(Date.now(), status);
    expect(await holdOf(paths, "session-1", 0, agentRoot)).toEqual({ kind: "paused", message: "credit balance exhausted" });
    expect(await holdOf(paths, "session-1", 0)).toBeNull(); // the relay's own root reads status.json, which is gone

    await mirror(Date.now(), null); // the relay has published no status yet
    expect(await holdOf(paths, "session-1", 0, agentRoot)).toBeNull();

    await mirror(Date.now() - MIRROR_STALE_MS - 5_000, status);
    const stale = await holdOf(paths, "session-1", 0, agentRoot);
    expect(stale?.kind).toBe("unreachable");
    expect(stale?.kind === "unreachable" ? stale.ageMs : null).toBeGreaterThan(MIRROR_STALE_MS);
  });
});
