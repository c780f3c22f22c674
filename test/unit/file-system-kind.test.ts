// Which roots' file-system events the relay trusts to see every change (CONTRACT §3): a local
// file system on Linux; nothing where the kinds are unknown, and nothing it cannot statfs.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fileSystemKind } from "../../src/store/file-system-kind.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.runIf(process.platform === "linux")("fileSystemKind", () => {
  it("trusts a local file system on Linux (the temporary directory here)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "relay-fskind-"));
    dirs.push(dir);
    expect(await fileSystemKind(dir)).toEqual({ local: true });
    expect(await fileSystemKind("/proc")).toEqual({ local: true });
  });

  it("trusts nothing it cannot statfs, saying why", async () => {
    const kind = await fileSystemKind("/nonexistent/relay-root");
    expect(kind.local).toBe(false);
    expect(kind).toMatchObject({ why: expect.stringContaining("cannot statfs /nonexistent/relay-root") as unknown });
  });
});

describe("fileSystemKind elsewhere", () => {
  it("trusts no file system where the kinds are not stable numbers (macOS)", async () => {
    expect(await fileSystemKind(tmpdir(), "darwin")).toEqual({ local: false, why: "file-system kinds are not known on darwin" });
  });
});
