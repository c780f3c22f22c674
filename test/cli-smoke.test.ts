import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

describe("the relay CLI", () => {
  it("prints its help with plain node after npm ci", async () => {
    const { stdout } = await run(process.execPath, ["bin/relay.js", "--help"]);
    expect(stdout).toContain("chart");
  });
});
