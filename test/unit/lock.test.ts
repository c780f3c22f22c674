import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { acquireLock, probeLock, type HeldLock } from "../../src/store/lock.js";
import { abstractName } from "../../src/store/lock-socket.js";

const BUILT_LOCK = new URL("../../dist/src/store/lock.js", import.meta.url).pathname;

let dir: string;
let lockPath: string;
const held: HeldLock[] = [];
const children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(BUILT_LOCK)) throw new Error(`${BUILT_LOCK} is missing: run \`npm run build\` first`);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-lock-"));
  lockPath = join(dir, ".lock");
});
afterEach(async () => {
  for (const lock of held.splice(0)) lock.release();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

async function take(path = lockPath): Promise<HeldLock> {
  const result = await acquireLock(path);
  if (!result.ok) throw new Error(`lock refused, held by ${String(result.pid)}`);
  held.push(result.lock);
  return result.lock;
}

/** A separate node process that takes the lock through the built module and waits. */
async function childHolding(path: string): Promise<ChildProcess> {
  const script = `
    const { acquireLock } = await import(${JSON.stringify(BUILT_LOCK)});
    const r = await acquireLock(${JSON.stringify(path)});
    if (!r.ok) { console.log("refused " + r.pid); process.exit(3); }
    console.log("locked");
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("locked")) resolve();
    });
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("exit", (code) => reject(new Error(`child exited ${String(code)} before locking: ${out}${err}`)));
  });
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });

describe("acquireLock", () => {
  it("the first acquire succeeds and writes our pid into the lock file", async () => {
    await take();
    expect((await readFile(lockPath, "utf8")).trim()).toBe(String(process.pid));
  });

  it("a second acquire in the same process fails, naming our pid", async () => {
    await take();
    const second = await acquireLock(lockPath);
    expect(second).toEqual({ ok: false, pid: process.pid });
  });

  it("after release the lock can be taken again, and release twice is harmless", async () => {
    const lock = await take();
    lock.release();
    lock.release();
    await take();
  });

  it("a lock held by another live process is refused, naming that process", async () => {
    const child = await childHolding(lockPath);
    const result = await acquireLock(lockPath);
    expect(result).toEqual({ ok: false, pid: child.pid });
  });

  it("a holder killed with SIGKILL never blocks the next start: acquire succeeds at once", async () => {
    const child = await childHolding(lockPath);
    child.kill("SIGKILL");
    await exited(child);
    const started = performance.now();
    const result = await acquireLock(lockPath);
    const elapsed = performance.now() - started;
    expect(result.ok).toBe(true);
    if (result.ok) held.push(result.lock);
    expect(elapsed).toBeLessThan(5_000); // no wait for a stale holder (generous: a busy machine)
    expect((await readFile(lockPath, "utf8")).trim()).toBe(String(process.pid));
  });
});

describe("probeLock", () => {
  it("no lock file: not held, no last pid", () => {
    expect(probeLock(lockPath)).toEqual({ held: false, lastPid: null });
  });

  it("held by this process: held, with our pid", async () => {
    await take();
    expect(probeLock(lockPath)).toEqual({ held: true, pid: process.pid });
  });

  it("held by another process: held, with its pid; after SIGKILL: not held", async () => {
    const child = await childHolding(lockPath);
    expect(probeLock(lockPath)).toEqual({ held: true, pid: child.pid });
    child.kill("SIGKILL");
    await exited(child);
    expect(probeLock(lockPath)).toMatchObject({ held: false });
  });

  it("probing does not take or disturb the lock", async () => {
    const lock = await take();
    probeLock(lockPath);
    expect(await acquireLock(lockPath)).toEqual({ ok: false, pid: process.pid });
    lock.release();
    expect(probeLock(lockPath)).toMatchObject({ held: false });
    const again = await acquireLock(lockPath);
    expect(again.ok).toBe(true);
    if (again.ok) held.push(again.lock);
  });
});

/** A node process that loads the built lock module, says "ready", and on "go" on its stdin tries the lock once. */
function contender(path: string): { child: ChildProcess; ready: Promise<void>; outcome: Promise<string> } {
  const script = `
    const { acquireLock } = await import(${JSON.stringify(BUILT_LOCK)});
    process.stdin.once("data", async () => {
      const r = await acquireLock(${JSON.stringify(path)});
      console.log(r.ok ? "locked" : "refused " + r.pid);
      setInterval(() => {}, 1000);
    });
    console.log("ready");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const seen = (word: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const m = word.exec(out);
        if (m) resolve(m[0]);
      };
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        check();
      });
      child.on("exit", (code) => reject(new Error(`contender exited ${String(code)}: ${out}${err}`)));
      check();
    });
  return { child, ready: seen(/ready/).then(() => undefined), outcome: seen(/locked|refused \d+/) };
}

describe("simultaneous starts", () => {
  it("of eight processes let go at the same instant exactly one takes the lock and the others name its pid, round after round with the winner killed -9", async () => {
    for (let round = 0; round < 5; round++) {
      const racers = Array.from({ length: 8 }, () => contender(lockPath));
      await Promise.all(racers.map((r) => r.ready));
      for (const r of racers) r.child.stdin?.write("go\n");
      const outcomes = await Promise.all(racers.map((r) => r.outcome));
      const winners = racers.filter((_, i) => outcomes[i] === "locked");
      expect(winners, outcomes.join(", ")).toHaveLength(1);
      const winner = winners[0]?.child;
      expect(outcomes.filter((o) => o.startsWith("refused")).every((o) => o === `refused ${String(winner?.pid)}`), outcomes.join(", ")).toBe(true);
      expect(probeLock(lockPath)).toEqual({ held: true, pid: winner?.pid });
      for (const r of racers) r.child.kill("SIGKILL");
      await Promise.all(racers.map((r) => exited(r.child)));
      expect(probeLock(lockPath)).toMatchObject({ held: false });
    }
  }, 120_000);
});

describe.runIf(process.platform === "linux")("the Linux lock's socket name", () => {
  it("fills the whole abstract address, so Node 20 (which pads with NULs) and Node 22+ (which does not) bind the same name", () => {
    expect(abstractName(lockPath)).toHaveLength(107);
  });

  it("is the same for two spellings of one root (through a symlink) and differs between roots", async () => {
    const link = `${dir}-link`;
    await symlink(dir, link);
    try {
      expect(abstractName(join(link, ".lock"))).toBe(abstractName(lockPath));
    } finally {
      await rm(link, { force: true });
    }
    expect(abstractName(join(dir, "other", ".lock"))).not.toBe(abstractName(lockPath));
  });
});
