// The status page's conversation panels, state strip and phone layout, in chromium at a desktop
// width (1366 px) and a phone's (390 px). Screenshots of both land in test-artifacts/.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendLedger, makeLedgerRecord } from "../../src/costs/ledger.js";
import { ConversationStore, type HistoryEntry } from "../../src/history/conversation-store.js";
import { makeRoot, seedActivity, startServer, type TestRoot, writeStatus } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`status page browser tests skipped: ${CHROMIUM} does not exist (apt-get install chromium)`);

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };
const SEEDED_CALLS = 7; // seedActivity's ledger records

const minutesAgo = (m: number, now = Date.now()) => new Date(now - m * 60_000).toISOString();
const LONG_REPLY = [
  "Good progress. Before you open the PR:",
  ...Array.from({ length: 14 }, (_, i) => `${i + 1}. check item ${i + 1}: run the parser tests against fixture ${i + 1} and compare the output byte for byte.`),
  "Then open the PR and tell me its number.",
].join("\n");

/** A conversation as the relay writes it: a summary, turns of two sessions, a JC note, a long reply. */
function seedEntries(now = Date.now()): HistoryEntry[] {
  return [
    { kind: "summary", id: "sum-1", text: "session-1 planned the parser; session-2 owns the docs. JC asked for no new dependencies.", folded: 6, at: minutesAgo(50, now) },
    { kind: "turn", id: "s1-1", session: "session-1", source: "envelope", text: "I wrote the tokenizer. Tests: 14 passed.", reply: "Good. Next: the parser, with tests first.", at: minutesAgo(40, now) },
    { kind: "turn", id: "s2-1", session: "session-2", source: "envelope", text: "Docs for the CLI flags are updated.", reply: "Thanks. Add an example for --last.", at: minutesAgo(35, now) },
    { kind: "note", id: "n-1", session: "session-1", text: "Skip the benchmarks for now.", at: minutesAgo(30, now) },
    { kind: "turn", id: "jc-1", session: "session-1", source: "jc", text: "How far is session-1 with the parser?", reply: "About half done; the error paths are next.", at: minutesAgo(20, now) },
    { kind: "turn", id: "s1-2", session: "session-1", source: "envelope", text: "Parser done, 41 tests pass. <b>not bold</b>", reply: LONG_REPLY, at: minutesAgo(10, now) },
  ];
}

interface Layout {
  pageWidth: number;
  viewport: number;
  header: number;
  h1: number;
  sessionsCut: boolean;
  conversationsCut: boolean;
  costRight: number;
  costShown: boolean;
}

/** Pixel facts about the layout that a phone user would see as broken (run in the page). */
const LAYOUT = `(() => {
  const box = (sel) => document.querySelector(sel)?.getBoundingClientRect() ?? null;
  const cut = (sel) => {
    const box = document.querySelector(sel)?.closest(".table-box");
    return box ? box.scrollWidth > box.clientWidth : true;
  };
  const cost = document.querySelector("#calls tbody tr .c-cost");
  return {
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    header: box("header")?.height ?? 0,
    h1: box("header h1")?.height ?? 0,
    sessionsCut: cut("#sessions"),
    conversationsCut: cut("#conversations"),
    costRight: box("#calls tbody tr .c-cost")?.right ?? 1e9,
    costShown: cost !== null && getComputedStyle(cost).display !== "none" && (cost.textContent ?? "") !== "",
  };
})()`;

describe.skipIf(!haveChromium)("the status page: conversation, state strip, phone layout", () => {
  let browser: Browser;
  let t: TestRoot;
  let server: Awaited<ReturnType<typeof startServer>>;
  let store: ConversationStore;
  const seeded = seedEntries();
  const problems: string[] = [];

  /** state/status.json with the shared conversation's real size, so the page knows when it changed. */
  const writeIdle = async (parts: Parameters<typeof writeStatus>[2] = {}) => {
    const entries = await store.entries("shared");
    const turns = entries.filter((e) => e.kind === "turn").length;
    await writeStatus(t.paths, "idle", {
      conversations: { shared: { state: "idle", sessions: ["session-1", "session-2"], chars: await store.chars("shared"), turns, question: null } },
      history: { chars: await store.chars("shared"), turns },
      cost: { totalUsd: 0.8, todayUsd: 0.26, calls: SEEDED_CALLS, unpricedCalls: 0 },
      ...parts,
    });
    server.notify();
  };

  const openPage = async (viewport: { width: number; height: number }, query = "") => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(`${server.url}${query}`);
    await page.locator("#live.on").waitFor();
    await page.locator('#panels .panel[data-session="session-1"] .entry').first().waitFor();
    return page;
  };

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    t = await makeRoot();
    await seedActivity(t.paths);
    store = new ConversationStore(t.paths);
    await store.append("shared", seeded);
    server = await startServer(t);
    await writeIdle();
    await mkdir(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await t?.remove();
  });

  it("shows each session's last turns newest first (who, when, the text), long texts collapsed, and a new turn without a reload", async () => {
    problems.length = 0;
    const page = await openPage(DESKTOP);
    const history: string[] = [];
    page.on("request", (r) => {
      if (r.url().includes("/api/history")) history.push(r.url());
    });
    const one = page.locator('#panels .panel[data-session="session-1"]');
    const whos = await one.locator(".entry > .who:first-child .who-tag").allTextContents();
    expect(whos).toEqual(["session-1 (agent)", "JC (chat turn)", "JC → session-1 directly", "session-1 (agent)", "summary of earlier turns"]);
    const newest = one.locator(".entry").first();
    expect(await newest.locator(".text").first().textContent()).toBe("Parser done, 41 tests pass. <b>not bold</b>");
    expect(await page.locator("#panels b").count()).toBe(0); // text, never markup
    expect(await newest.locator(".from-claude").textContent()).toBe("chat-Claude");
    // the long reply: its start, and the whole text one click away
    const long = newest.locator("details.long");
    expect(await long.getAttribute("open")).toBeNull();
    expect(await long.locator(".toggle").innerText()).toBe(`show all ${LONG_REPLY.length.toLocaleString("en-US")} characters`);
    expect(await long.locator(".text").isVisible()).toBe(false);
    await page.screenshot({ path: new URL("page-1366.png", ARTIFACTS).pathname, fullPage: true });
    await long.locator("summary").click();
    expect(await long.locator(".text").textContent()).toBe(LONG_REPLY);
    expect(await long.locator(".toggle").innerText()).toBe("hide");
    expect(await newest.locator("time").first().getAttribute("datetime")).toBe(seeded[5]?.at);
    // session-2's panel holds its own turn and the summary only
    const two = page.locator('#panels .panel[data-session="session-2"]');
    expect(await two.locator(".entry > .who:first-child .who-tag").allTextContents()).toEqual(["session-2 (agent)", "summary of earlier turns"]);

    // live updates that do not change the conversation fetch nothing
    const before = history.length;
    for (let i = 0; i < 3; i++) {
      await writeIdle({ calls: { inFlight: i % 2, maxParallel: 4 } });
      await page.waitForTimeout(150);
    }
    await page.waitForTimeout(700); // past the server's settle delay
    expect(history.length).toBe(before);

    // a committed turn: the panel shows it on top, once, and the open long text stays open
    await store.append("shared", [{ kind: "turn", id: "s1-3", session: "session-1", source: "envelope", text: "PR #512 is open.", reply: "Merged. Next: the docs.", at: new Date().toISOString() }]);
    await writeIdle();
    await one.locator(".entry").first().filter({ hasText: "PR #512 is open." }).waitFor();
    expect(history.length).toBe(before + 2); // both sessions' panels, once each
    expect(await one.locator("details.long").first().getAttribute("open")).not.toBeNull();
    expect(await two.locator(".entry").count()).toBe(2);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("shows as many entries as ?turns=N asks, and says where the older ones are", async () => {
    problems.length = 0;
    const page = await openPage(DESKTOP, "?turns=2");
    const one = page.locator('#panels .panel[data-session="session-1"]');
    expect(await one.locator(".entry").count()).toBe(2);
    expect(await one.locator(".p-more").textContent()).toBe("older entries: relay history --session session-1");
    expect(await one.locator(".p-count").textContent()).toBe("2+ entries");
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("shows the state as a strip with its colour and since when, and the chart only on demand, at full size", async () => {
    problems.length = 0;
    const page = await openPage(DESKTOP);
    expect(await page.locator("#state").textContent()).toBe("idle");
    expect(await page.locator("#state").getAttribute("class")).toContain("state-idle");
    expect(await page.locator("#state-since").textContent()).toMatch(/^since \d\d:\d\d:\d\d \(\d+ s ago\)$/);
    expect(await page.locator("#conversation-states").textContent()).toBe("shared idle");
    expect(await page.locator("#chart svg").count()).toBe(0); // not fetched until asked for
    await page.locator("#chart-details > summary").click();
    await page.locator("#chart svg g.current").waitFor();
    expect(await page.locator("#chart svg g.current").textContent()).toContain("idle");
    // drawn at its own size: labels at 14 px, not scaled down to fit
    const scale = await page.evaluate<number>(`(() => { const svg = document.querySelector("#chart svg"); return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; })()`);
    expect(scale).toBeGreaterThanOrEqual(1);
    expect(await page.evaluate<string>(`getComputedStyle(document.querySelector("#chart svg g.state text")).fontSize`)).toBe("14px");

    await writeIdle({ state: "calling", conversations: { shared: { state: "calling", sessions: ["session-1", "session-2"], chars: await store.chars("shared"), turns: 4, question: null } } });
    await page.locator('#chart[data-state="calling"]').waitFor();
    await page.locator('#chart svg g.current[data-state="calling"]').waitFor();
    expect(await page.locator("#state").getAttribute("class")).toContain("state-calling");
    expect(await page.locator("#conversation-states").textContent()).toBe("shared calling");
    await writeIdle();
    await page.locator('#chart[data-state="idle"]').waitFor();
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("clears the Last error banner once a later call succeeds", async () => {
    problems.length = 0;
    const page = await openPage(DESKTOP);
    await writeIdle({ lastError: { message: "API 529 overloaded_error: Overloaded", at: minutesAgo(1) } });
    await page.locator("#trouble").waitFor({ state: "visible" });
    expect(await page.locator("#trouble").textContent()).toMatch(/Last error:.*overloaded_error/);
    // a call succeeds after the error: it is in the ledger, and the daemon's count of calls moves
    await appendLedger(
      t.root,
      makeLedgerRecord({
        at: new Date(),
        session: "session-1",
        conversation: "shared",
        model: "claude-sonnet-4-6",
        purpose: "reply",
        usage: { inputTokens: 1_000, outputTokens: 100, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 },
        latencyMs: 900,
      }),
    );
    await writeIdle({ lastError: { message: "API 529 overloaded_error: Overloaded", at: minutesAgo(1) }, cost: { totalUsd: 0.81, todayUsd: 0.27, calls: SEEDED_CALLS + 1, unpricedCalls: 0 } });
    await page.locator("#trouble").waitFor({ state: "hidden" });
    // a newer error than that call shows again
    await writeIdle({ lastError: { message: "API 500 api_error: Internal server error", at: new Date(Date.now() + 1_000).toISOString() }, cost: { totalUsd: 0.81, todayUsd: 0.27, calls: SEEDED_CALLS + 1, unpricedCalls: 0 } });
    await page.locator("#trouble", { hasText: "api_error" }).waitFor({ state: "visible" });
    await writeIdle({ cost: { totalUsd: 0.81, todayUsd: 0.27, calls: SEEDED_CALLS + 1, unpricedCalls: 0 } });
    await page.locator("#trouble").waitFor({ state: "hidden" });
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it("fits a 390 px phone: one-line header, no sideways page scroll, the sessions and conversations tables whole, the calls with their cost", async () => {
    problems.length = 0;
    const page = await openPage(PHONE);
    await page.locator("#calls tbody tr .c-cost").first().waitFor();
    const l = await page.evaluate<Layout>(LAYOUT);
    expect(l.viewport).toBe(PHONE.width);
    expect(l.pageWidth).toBeLessThanOrEqual(PHONE.width);
    expect(l.header).toBeLessThan(l.h1 * 2 + 24); // one line of text plus its padding
    expect(l.sessionsCut).toBe(false);
    expect(l.conversationsCut).toBe(false);
    expect(l.costShown).toBe(true);
    expect(l.costRight).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: new URL("page-390.png", ARTIFACTS).pathname, fullPage: true });

    // the chart scrolls sideways inside its box, never the page
    await page.locator("#chart-details > summary").click();
    await page.locator("#chart svg g.current").waitFor();
    expect((await page.evaluate<Layout>(LAYOUT)).pageWidth).toBeLessThanOrEqual(PHONE.width);
    await page.locator("#chart-details > summary").click();

    // what JC sees after tapping Status on a question's notification: the question, its form, the conversation
    const question = "[NEEDS-JC] Parser done and PR #512 is green. Merge now, or wait for the load test (about 40 minutes)?";
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-7", question }], cost: { totalUsd: 0.81, todayUsd: 0.27, calls: SEEDED_CALLS + 1, unpricedCalls: 0 } });
    server.notify();
    await page.locator('#questions [data-question="q-7"]').waitFor();
    await page.locator("#state.state-needsJc").waitFor();
    const withQuestion = await page.evaluate<Layout>(LAYOUT);
    expect(withQuestion.pageWidth).toBeLessThanOrEqual(PHONE.width);
    expect(withQuestion.header).toBeLessThan(withQuestion.h1 * 2 + 24);
    await page.screenshot({ path: new URL("page-390-question.png", ARTIFACTS).pathname, fullPage: true, clip: { x: 0, y: 0, width: PHONE.width, height: 1500 } });
    await writeIdle();
    expect(problems).toEqual([]);
    await page.context().close();
  });
});
