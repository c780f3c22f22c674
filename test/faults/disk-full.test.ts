// A full disk stops the relay with a clear message and loses nothing it had accepted.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = new URL("../../bin/relay.js", import.meta.url).pathname;
const children: ChildProcess[] = [];

function tryMountTmpfs(dir: string, size: string): string | null {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
    return null;
  } catch (err) {
    return `cannot mount a small tmpfs here (${(err as Error).message.split("\n")[0]}); needs root in a sandbox that allows mount`;
  }
}

function startRelay(root: string) {
  const child = spawn(process.execPath, [BIN, "run", "--dry-run", "--root", root], {
    env: { ...process.env, POLL_INTERVAL_MS: "50", NTFY_SERVER: "http://127.0.0.1:9", NTFY_TOPIC: "t".repeat(24) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** Poll `check` (a throw, e.g. a file not there yet, counts as not yet) for up to `ms`: generous, for a busy machine. */
async function waitFor(check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  const holds = (): boolean => {
    try {
      return check();
    } catch {
      return false;
    }
  };
  while (!holds()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}

function envelope(root: string, name: string, content: string) {
  const tmp = join(root, "queue", `.${name}.tmp`);
  writeFileSync(tmp, JSON.stringify({ session_id: "session-1", content }));
  return () => renameSync(tmp, join(root, "queue", `${name}.json`));
}

function fill(root: string, name: string): string {
  const filler = join(root, name);
  try {
    execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k"], { stdio: "pipe" });
  } catch {
    // dd stops with ENOSPC: the disk is full now
  }
  return filler;
}

describe("disk trouble", () => {
  const mount = mkdtempSync(join(tmpdir(), "relay-disk-"));
  const skipReason = process.platform === "linux" ? tryMountTmpfs(mount, "3m") : "tmpfs needs Linux";
  const root = join(mount, "root");

  beforeAll(() => {
    if (!skipReason) mkdirSync(join(root, "queue"), { recursive: true });
  });
  afterAll(() => {
    for (const c of children) c.kill("SIGKILL");
    if (!skipReason) execFileSync("umount", ["-l", mount]);
    rmSync(mount, { recursive: true, force: true });
  });

  it.skipIf(skipReason !== null)(`stops with a clear message on a full disk and loses nothing accepted${skipReason ? ` (skipped: ${skipReason})` : ""}`, async () => {
    const first = startRelay(root);
    envelope(root, "a", "first envelope")();
    const input = join(root, "dispatch", "session-1", "input.txt");
    await waitFor(() => existsSync(input));
    unlinkSync(input);
    // Let the relay settle (acknowledgement recorded, queue file gone) before the disk fills, so
    // no page it frees afterwards gives the next envelope room.
    await waitFor(() => !existsSync(join(root, "queue", "a.json")) && readFileSync(join(root, "state", "snapshot.json"), "utf8").includes('"value":"idle"'));
    await sleep(300);

    const releaseB = envelope(root, "b", "second envelope, arriving on a full disk");
    const filler = fill(root, "filler");
    await sleep(200);
    const filler2 = fill(root, "filler2"); // whatever was freed meanwhile
    releaseB();
    const code = await Promise.race([first.exited, sleep(15_000).then(() => "still running")]);
    expect(code).toBe(1);
    expect(first.stderr()).toMatch(/relay stopped.*(ENOSPC|no space)/i);

    rmSync(filler);
    rmSync(filler2);
    const second = startRelay(root);
    await waitFor(() => existsSync(input));
    expect(readFileSync(input, "utf8")).toContain("from session-1");
    // a dry run keeps its conversation in state/dry-run/history/ (never sent by a real run)
    const history = readFileSync(join(root, "state", "dry-run", "history", "shared.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { text: string });
    expect(history.map((e) => e.text)).toEqual(["first envelope", "second envelope, arriving on a full disk"]);
    // The queue file goes in the same step, just after the reply is handed over.
    await waitFor(() => readdirSync(join(root, "queue")).filter((n) => !n.startsWith(".")).length === 0);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });
});
