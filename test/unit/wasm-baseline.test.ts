// relay run keeps WebAssembly (fetch's HTTP parser, llhttp) on V8's baseline compiler
// (src/runtime/wasm-baseline.ts): TurboFan's compile of llhttp was the daemon's memory peak. Run
// in a fresh node with V8's natives syntax, which tells which compiler made a function's code.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";

const MODULE = join(REPO_ROOT, "dist", "src", "runtime", "wasm-baseline.js");

/**
 * A small WebAssembly function (x + 1) called in batches of 100,000 until TurboFan compiled it or
 * `calls` were made (then 500 ms more for a compile under way on a helper thread); which compiler
 * made its code at the end.
 */
function tierAfterCalls(keepOnBaseline: boolean, calls: number): { liftoff: boolean; turbofan: boolean; calls: number } {
  const script = `
    import { keepWasmOnBaseline } from ${JSON.stringify(MODULE)};
    if (${JSON.stringify(keepOnBaseline)}) keepWasmOnBaseline();
    const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, 3, 2, 1, 0, 7, 5, 1, 1, 0x66, 0, 0, 10, 9, 1, 7, 0, 0x20, 0, 0x41, 1, 0x6a, 0x0b]);
    const { instance } = await WebAssembly.instantiate(bytes);
    const f = instance.exports.f;
    let x = 0;
    let calls = 0;
    const deadline = Date.now() + 40_000;
    while (calls < ${calls} && Date.now() < deadline && !%IsTurboFanFunction(f)) {
      for (let i = 0; i < 100_000; i++) x = f(x) & 0xffff;
      calls += 100_000;
      await new Promise((r) => setImmediate(r));
    }
    const settleUntil = Date.now() + 500;
    while (Date.now() < settleUntil && !%IsTurboFanFunction(f)) await new Promise((r) => setTimeout(r, 20));
    console.log(JSON.stringify({ liftoff: %IsLiftoffFunction(f), turbofan: %IsTurboFanFunction(f), calls }));
  `;
  const r = spawnSync(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 55_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { liftoff: boolean; turbofan: boolean; calls: number };
}

describe("WebAssembly under relay run", () => {
  it("by default a function that runs long enough is compiled again by TurboFan (what the setting is for)", () => {
    const tier = tierAfterCalls(false, 1e9);
    expect(tier.turbofan).toBe(true);
  }, 60_000);

  it("with keepWasmOnBaseline it stays on Liftoff's code, however often it runs", () => {
    const tier = tierAfterCalls(true, 20_000_000);
    expect(tier.calls).toBe(20_000_000);
    expect(tier).toMatchObject({ liftoff: true, turbofan: false });
  }, 60_000);
});
