// The status page of the real daemon: `relay run --dry-run --http 127.0.0.1:0` as a child process,
// an envelope relayed through it, the page in chromium following the machine. Runs once the CLI
// has the --http flag (built into dist/); skipped with the reason until then.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { dropEnvelope } from "../../src/transport/file/client.js";
import { inputFile } from "../../src/config/paths.js";
import { statusFilePath } from "../../src/status/status-file.js";
import { makeRoot, type TestRoot } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const BIN = fileURLToPath(new URL("../../bin/relay.js", import.meta.url));

function why(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} does not exist`;
  const help = spawnSync(process.execPath, [BIN, "run", "--help"], { encoding: "utf8", timeout: 10_000 });
  if (!`${help.stdout}${help.stderr}`.includes("--http")) return "`relay run` has no --http flag yet (or dist/ is not built)";
  return null;
}
const skipReason = why();
if (skipReason) console.warn(`status page CLI test skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)("relay run --http", () => {
  let child: ChildProcess | null = null;
  let browser: Browser | null = null;
  let t: TestRoot | null = null;
  let home: string | null = null;

  afterEach(async () => {
    await browser?.close();
    if (child && child.exitCode === null) {
      child.kill("SIGKILL");
      await new Promise((r) => child?.once("exit", r));
    }
    await t?.remove();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("serves the page, whose highlighted state follows an envelope being relayed", async () => {
    t = await makeRoot();
    home = await mkdtemp(join(tmpdir(), "relay-http-home-"));
    const proc = spawn(process.execPath, [BIN, "run", "--dry-run", "--root", t.root, "--http", "127.0.0.1:0"], {
      // nothing from the developer's environment; ntfy pointed at a closed port
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NTFY_SERVER: "http://127.0.0.1:9" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let output = "";
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no status page URL in the output:\n${output}`)), 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        const m = /status page at (http:\/\/\S+)/.exec(output);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      proc.stdout?.on("data", onData);
      proc.stderr?.on("data", onData);
      proc.once("exit", (code) => reject(new Error(`relay run exited with ${code}:\n${output}`)));
    });

    // the page follows state/status.json, which the daemon writes once it has started
    for (let waited = 0; !existsSync(statusFilePath(t.paths)); waited += 100) {
      if (waited >= 30_000) throw new Error("relay run did not write state/status.json within 30 s");
      await sleep(100);
    }

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    await page.goto(url);
    await page.locator('#chart[data-state="idle"]').waitFor({ state: "attached" });
    await page.locator("#chart-details > summary").click(); // the chart is drawn on demand
    await page.locator("#chart svg").waitFor();
    expect(await page.locator("#daemon").textContent()).toMatch(/daemon running/);

    await dropEnvelope(t.paths, t.config, "session-1", "Sub-PR A is open at #438.");
    await page.locator('#chart[data-state="awaitingAck"]').waitFor();
    const chart = await (await fetch(new URL("/chart.mmd", url))).text();
    if (/(^|\s)awaitingAck(\s|:|$)/m.test(chart)) expect(await page.locator("#chart svg g.current").first().textContent()).toContain("awaitingAck");
    expect(await page.locator('#sessions tr[data-session="session-1"]').textContent()).toMatch(/awaiting ack/);

    await unlink(inputFile(t.paths, "session-1")); // the session takes its reply
    await page.locator('#chart[data-state="idle"]').waitFor();
    expect(problems).toEqual([]);
  });
});
