// The status page in a real browser: Debian's chromium driven by playwright-core.
import { existsSync } from "node:fs";
import { access, mkdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeRoot, seedActivity, startServer, type TestRoot, writeStatus } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`status page browser tests skipped: ${CHROMIUM} does not exist (apt-get install chromium)`);

const exists = (p: string) => access(p).then(() => true, () => false);

async function waitForFile(path: string, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      return await readFile(path, "utf8");
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`${path} did not appear within ${timeoutMs} ms`);
}

/** The text of the chart node that carries the `current` class. */
const highlighted = (page: Page) => page.locator("#chart svg g.current").first().textContent();

/** CONTRACT §9's values of `state`. */
const RELAY_STATES = ["idle", "calling", "summarizing", "dispatching", "awaitingAck", "needsJc", "backingOff", "paused"];

describe.skipIf(!haveChromium)("the status page in chromium", () => {
  let browser: Browser;
  let context: BrowserContext;
  let t: TestRoot;
  let server: Awaited<ReturnType<typeof startServer>>;
  let page: Page;
  let problems: string[];
  /** the §9 states that are nodes of the chart the server draws (the machines decide which) */
  let charted: string[];
  const pendingReply = { sessions: { "session-1": { pending: 1, conversation: "shared" }, "session-2": { pending: 0, conversation: "shared" } } };
  const idle = () => writeStatus(t.paths, "idle", pendingReply);

  /** Every console error or warning, page error, failed request and HTTP error of `p`, into `problems`. */
  const watch = (p: Page) => {
    p.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    p.on("requestfailed", (r) => {
      if (!r.url().endsWith("/events")) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`);
    });
    p.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
  };

  // One browser, one relay root and one page for the file: the page is loaded once and follows
  // every test's changes live, as it would follow the daemon. Each test starts from the idle
  // state with no JC answer pending.
  beforeAll(async () => {
    problems = [];
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    context = await browser.newContext({ viewport: { width: 1400, height: 1100 } });
    t = await makeRoot();
    await seedActivity(t.paths);
    server = await startServer(t);
    const chart = await (await fetch(new URL("/chart.mmd", server.url))).text();
    charted = RELAY_STATES.filter((s) => new RegExp(`(^|\\s)${s}(\\s|:|$)`, "m").test(chart));
    page = await context.newPage();
    watch(page);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await t?.remove();
  });

  beforeEach(async () => {
    problems = [];
    await idle();
    await rm(t.paths.jcInput, { force: true });
    server.notify();
    if (page.url() === server.url) {
      await page.locator('#chart[data-state="idle"]').waitFor();
      await page.locator("#needs-jc").waitFor({ state: "hidden" });
    }
  });

  /** The page, loaded once, with its state chart opened (it is drawn on demand). */
  const open = async () => {
    if (page.url() !== server.url) await page.goto(server.url);
    await page.locator("#live.on").waitFor();
    if ((await page.locator("#chart-details").getAttribute("open")) === null) await page.locator("#chart-details > summary").click();
    await page.locator("#chart svg").waitFor();
  };

  it("loads with no console errors, every asset served by the relay itself", async () => {
    const hosts = new Set<string>();
    page.on("request", (r) => hosts.add(new URL(r.url()).host));
    await page.goto(server.url);
    await open();
    await page.locator("#calls tbody tr td.num").first().waitFor();
    expect(await page.locator("#state").textContent()).toBe("idle");
    if (charted.includes("idle")) expect(await highlighted(page)).toContain("idle");
    expect(await page.locator("#queue-depth").textContent()).toBe("1");
    expect(await page.locator("#queue-rejected").textContent()).toBe("1");
    expect(await page.locator("#rejected-list").textContent()).toContain("invalid JSON");
    expect(await page.locator('#sessions tr[data-session="session-1"]').textContent()).toMatch(/1.*awaiting ack/);
    expect(await page.locator("#calls tbody tr").count()).toBe(7);
    expect(await page.locator("#cost-by-session svg rect.bar").count()).toBe(2);
    expect([...hosts]).toEqual([server.host]);
    expect(problems).toEqual([]);
  });

  it("moves the highlight as the machine changes state, without a reload", async () => {
    await open();
    await page.evaluate(() => {
      (globalThis as unknown as { marker: number }).marker = 42;
    });
    expect(charted.length, "the chart names at least two of the relay's states").toBeGreaterThanOrEqual(2);
    // every charted state but idle, then back to idle (where each test starts) when it is charted
    for (const state of [...charted.filter((s) => s !== "idle"), ...charted.filter((s) => s === "idle")]) {
      await writeStatus(t.paths, state);
      server.notify();
      await page.locator(`#chart[data-state="${state}"]`).waitFor();
      expect(await highlighted(page)).toContain(state);
      expect(await page.locator("#state").textContent()).toBe(state);
    }
    expect(await page.locator("#chart svg g.current").count()).toBe(1);
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    expect(problems).toEqual([]);
  });

  it("shows the permission prompts chat-Claude is deciding and the latest decisions with who made them, newest first", async () => {
    await open();
    expect(await page.locator("#permissions-recent").textContent()).toBe("none");
    const decision = (n: number, allow: boolean, by: string) => ({ id: `perm-${n}`, session: "session-1", allow, by, reason: `reason ${n}` });
    await writeStatus(t.paths, "idle", {
      ...pendingReply,
      permissions: { deciding: ["perm-9"], recent: [1, 2, 3, 4, 5, 6].map((n) => decision(n, n % 2 === 0, n === 6 ? "chat-claude (policy)" : "jc")) },
    });
    server.notify();
    await page.locator('#permissions-recent li[data-permission="perm-6"]').waitFor();
    expect(await page.locator("#permissions-deciding").textContent()).toContain("perm-9");
    const shown = await page.locator("#permissions-recent li").allTextContents();
    expect(shown).toHaveLength(5); // the latest five of six
    expect(shown[0]).toMatch(/perm-6 \(session-1\) allowed by chat-claude \(policy\)reason 6/);
    expect(shown[1]).toMatch(/perm-5 \(session-1\) denied by jcreason 5/);
    expect(shown.join("\n")).not.toContain("perm-1 ");
    expect(problems).toEqual([]);
  });

  it("shows the needs-JC banner with the question, and its form's answer reaches the session", async () => {
    await open();
    expect(await page.locator("#needs-jc").isHidden()).toBe(true);
    const question = "[NEEDS-JC] Sub-PR A is open at #438 and CI is green, but the load test has not run yet.\nMerge it now, or wait for the load test (about 40 minutes)?";
    await writeStatus(t.paths, "needsJc", { ...pendingReply, openQuestions: [{ id: "q-1", question }] });
    server.notify();
    await page.locator("#needs-jc").waitFor({ state: "visible" });
    const card = page.locator('#questions [data-question="q-1"]');
    expect(await card.locator(".q-text").textContent()).toBe(question);
    expect(await card.locator(".q-session").textContent()).toBe("session-1");
    await page.locator("#chart[data-state=needsJc]").waitFor();
    if (charted.includes("needsJc")) expect(await highlighted(page)).toContain("needsJc");

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL("status-page.png", ARTIFACTS).pathname, fullPage: true });

    // the question is shown as text, never as markup
    const markup = "[NEEDS-JC] Is <b>this</b> <img src=x onerror=alert(1)> bold?";
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-1", question: markup }] });
    server.notify();
    await card.locator(".q-text", { hasText: "onerror" }).waitFor();
    expect(await card.locator(".q-text").textContent()).toBe(markup);
    expect(await page.locator("#questions b, #questions img").count()).toBe(0);

    await card.locator("textarea").fill("Merge it now.");
    await card.locator(".q-direct").check();
    await card.locator("button").click();
    expect(await waitForFile(t.paths.jcInput)).toBe("@session-1: Merge it now.\n");
    await card.locator(".form-status.ok").waitFor();
    expect(await card.locator(".form-status").textContent()).toBe("sent to session-1");
    expect(problems).toEqual([]);
  });

  it("lists every open question with its own form, and answering one writes its id", async () => {
    await open();
    await writeStatus(t.paths, "needsJc", {
      openQuestions: [
        { id: "q-shared", session: "session-1", question: "[NEEDS-JC] Merge #438 now?" },
        { id: "q-own", session: "session-2", conversation: "session.session-2", question: "[NEEDS-JC] Spend $40 on the load test?" },
      ],
    });
    server.notify();
    await page.locator("#questions article").nth(1).waitFor();
    const cards = page.locator("#questions article");
    expect([await cards.nth(0).getAttribute("data-question"), await cards.nth(1).getAttribute("data-question")]).toEqual(["q-shared", "q-own"]);
    expect(await page.locator("#questions form").count()).toBe(2);
    expect(await page.locator("#jc-count").textContent()).toBe("2 open questions");
    expect(await page.title()).toBe("relay: needs JC (2)");
    expect(await page.locator('#conversations tr[data-conversation="session.session-2"]').textContent()).toMatch(/needsJc.*session-2/);

    const own = page.locator('#questions [data-question="q-own"]');
    await own.locator("textarea").fill("Yes, run it.");
    // a live update while JC types keeps the card and what is typed in it
    await writeStatus(t.paths, "needsJc", {
      openQuestions: [
        { id: "q-shared", session: "session-1", question: "[NEEDS-JC] Merge #438 now? (CI green)" },
        { id: "q-own", session: "session-2", conversation: "session.session-2", question: "[NEEDS-JC] Spend $40 on the load test?" },
      ],
    });
    server.notify();
    await page.locator("#questions .q-text", { hasText: "CI green" }).waitFor();
    expect(await own.locator("textarea").inputValue()).toBe("Yes, run it.");
    await own.locator("button").click();
    expect(JSON.parse(await waitForFile(t.paths.jcInput))).toEqual({ text: "Yes, run it.", question: "q-own" });
    await own.locator(".form-status.ok").waitFor();
    expect(await own.locator(".form-status").textContent()).toBe("sent as the answer to q-own");
    expect(await page.locator('#questions [data-question="q-shared"] .form-status').textContent()).toBe("");

    // answered: the daemon drops it from status.json, and its card goes
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-shared", session: "session-1", question: "[NEEDS-JC] Merge #438 now?" }] });
    server.notify();
    await own.waitFor({ state: "detached" });
    expect(await page.locator("#questions article").count()).toBe(1);
    expect(problems).toEqual([]);
  });

  it("sends a general JC answer as the next chat turn, and shows why an answer was refused", async () => {
    await open();
    await page.locator("#jc-text").fill("@session-7: who?");
    await page.locator("#jc-form button").click();
    await page.locator("#jc-form .form-status.bad").waitFor();
    expect(await page.locator("#jc-form .form-status").textContent()).toMatch(/@?session-7 is not a session/);
    expect(await exists(t.paths.jcInput)).toBe(false);
    problems = problems.filter((p) => !p.includes("400")); // the refusal itself

    await page.locator("#jc-text").fill("Keep going with the plan.");
    await page.locator("#jc-form button").click();
    expect(await waitForFile(t.paths.jcInput)).toBe("Keep going with the plan.\n");
    expect(problems).toEqual([]);
  });

  it("with RELAY_HTTP_TOKEN, opens from ?token= once, then works from its cookie with the token gone from the address bar", async () => {
    const token = "page-test-token-0123456789abcdef";
    const guarded = await startServer(t, { token });
    const other = await context.newPage();
    watch(other);
    try {
      // the scripts, the stylesheet and /events below all authenticate with the cookie alone
      await other.goto(`${guarded.url}?token=${token}`);
      await other.locator("#live.on").waitFor();
      await other.locator('#chart[data-state="idle"]').waitFor({ state: "attached" });
      expect(other.url()).toBe(guarded.url);
      expect(await other.content()).not.toContain(token);
      await other.locator("#jc-text").fill("@session-2: carry on");
      await other.locator("#jc-form button").click();
      expect(await waitForFile(t.paths.jcInput)).toBe("@session-2: carry on\n");
      expect(problems).toEqual([]);
    } finally {
      await other.close();
      await guarded.close();
    }
  });

  it("refuses a POST /jc submitted by a page of another origin", async () => {
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(
        `<form method="post" action="${server.url}jc"><input name="text" value="@session-1: rm -rf"><input name="csrf" value="guess"></form>` +
          "<script>document.forms[0].submit()</script>",
      );
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    const other = await context.newPage();
    try {
      const refused = other.waitForResponse((r) => r.url() === `${server.url}jc`);
      await other.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
      const res = await refused;
      expect(res.status()).toBe(403);
      expect(await res.text()).toMatch(/cross-site request refused/);
      await new Promise((r) => setTimeout(r, 200));
      expect(await exists(t.paths.jcInput)).toBe(false);
    } finally {
      await other.close();
      await new Promise((r) => evil.close(r));
    }
  });
});
