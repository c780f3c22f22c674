import { existsSync } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { conversationMachine } from "../../machines/conversation.js";
import { toMermaid } from "../../src/status/chart.js";
import { toSvg } from "../../src/status/chart-svg.js";
import { silentLogger } from "../../src/runtime/log.js";
import { readStatus } from "../../src/status/report.js";
import { parseListen, startStatusServer } from "../../src/status/http/server.js";
import { removeRoots, runCli } from "../support/cli.js";
import { csrfOf, makeRoot, raw, seedActivity, startServer, stateChanges, type TestRoot, writeStatus } from "./support.js";

const exists = (p: string) => access(p).then(() => true, () => false);

let t: TestRoot;
let server: Awaited<ReturnType<typeof startServer>> | null = null;

beforeEach(async () => {
  t = await makeRoot();
});
afterEach(async () => {
  await server?.close();
  server = null;
  await t.remove();
});
afterAll(removeRoots);

describe("parseListen", () => {
  it("reads [HOST:]PORT, loopback by default, IPv6 in brackets", () => {
    expect(parseListen("8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseListen(":0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("localhost:9000")).toEqual({ host: "localhost", port: 9000 });
    expect(parseListen("0.0.0.0:80")).toEqual({ host: "0.0.0.0", port: 80 });
    expect(parseListen("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
  });

  it("refuses bad input with a message naming the expected form", () => {
    for (const bad of ["", "http", "80a", "99999", "::1:80", "[nothost]:80", "bad host:80", "127.0.0.1:"]) {
      expect(() => parseListen(bad), bad).toThrow(/expected \[HOST:\]PORT/);
    }
  });
});

describe("the status API", () => {
  it("serves /status.json identical to `relay status --json`", async () => {
    await seedActivity(t.paths);
    await writeStatus(t.paths, "needsJc", {
      openQuestions: [{ id: "q-7", question: "[NEEDS-JC] Merge PR #438?" }],
      sessions: { "session-1": { pending: 1, conversation: "shared" }, "session-2": { pending: 0, conversation: "shared" } },
    });
    server = await startServer(t);
    const res = await fetch(new URL("/status.json", server.url));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body: unknown = await res.json();
    expect(body).toEqual(await readStatus(t.paths, t.config.sessions));
    const cli = await runCli(["status", "--json", "--root", t.root]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(body).toEqual(JSON.parse(cli.stdout));
    expect(body).toMatchObject({
      state: "needsJc",
      needsJc: { id: "q-7", session: "session-1", question: "[NEEDS-JC] Merge PR #438?" },
      questions: [{ id: "q-7", session: "session-1", conversation: "shared" }],
      queue: { depth: 1, rejected: 1 },
      conversations: { shared: { state: "needsJc", sessions: ["session-1", "session-2"] } },
      sessions: { "session-1": { pending: 1, awaitingAck: true }, "session-2": { pending: 0, awaitingAck: false } },
    });
  });

  it("serves the chart drawn from the machine, the costs and the recent calls", async () => {
    await seedActivity(t.paths);
    server = await startServer(t);
    // a conversation's machine: its states are what status.json's `state` names, so the page can highlight them
    expect(await (await fetch(new URL("/chart.mmd", server.url))).text()).toBe(toMermaid(conversationMachine));
    expect(await (await fetch(new URL("/chart.svg", server.url))).text()).toBe(toSvg(conversationMachine));

    const costs = (await (await fetch(new URL("/api/costs", server.url))).json()) as { calls: number; byDay: { key: string }[]; bySession: { key: string; calls: number }[] };
    expect(costs.calls).toBe(7);
    expect(costs.byDay.length).toBeGreaterThanOrEqual(4);
    expect(costs.bySession.map((r) => [r.key, r.calls])).toEqual([["session-1", 4], ["session-2", 3]]);

    const calls = (await (await fetch(new URL("/api/calls?limit=2", server.url))).json()) as { calls: { at: string; session: string; latencyMs: number; usd: number }[] };
    expect(calls.calls).toHaveLength(2);
    expect(calls.calls[0]).toMatchObject({ session: "session-1", latencyMs: 4_100 });
    expect(Date.parse(calls.calls[0]?.at ?? "")).toBeGreaterThan(Date.parse(calls.calls[1]?.at ?? ""));
    expect((await fetch(new URL("/api/calls?limit=0", server.url))).status).toBe(400);

    const rejected = (await (await fetch(new URL("/api/rejected", server.url))).json()) as { rejected: { file: string; error: string }[] };
    expect(rejected.rejected).toEqual([expect.objectContaining({ file: "broken.json", error: expect.stringMatching(/^invalid JSON/) })]);
  });

  it("pushes the fresh status over /events on every state change", async () => {
    await writeStatus(t.paths, "idle");
    // No poll within the test: an update that arrives came from a notification or the watch.
    server = await startServer(t, { pollMs: 3_600_000 });
    const ac = new AbortController();
    const res = await fetch(new URL("/events", server.url), { signal: ac.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    let buffered = "";
    let last = "";
    /** The next state pushed that differs from the last one (a state may be pushed again: by the notification, the watch and the second look). */
    const nextState = async (): Promise<string> => {
      for (;;) {
        const m = /event: status\ndata: (.*)\n\n/.exec(buffered);
        if (m?.[1] !== undefined) {
          buffered = buffered.slice((m.index ?? 0) + m[0].length);
          const update = JSON.parse(m[1]) as { state: string; status: { state: string } };
          expect(update.status.state).toBe(update.state);
          if (update.state === last) continue;
          last = update.state;
          return update.state;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buffered += Buffer.from(value).toString("utf8");
      }
    };
    expect(await nextState()).toBe("idle");
    await writeStatus(t.paths, "calling");
    server.notify();
    expect(await nextState()).toBe("calling");
    await writeStatus(t.paths, "dispatching");
    server.notify();
    server.notify(); // debounced: one read for a burst
    expect(await nextState()).toBe("dispatching");
    // state/status.json rewritten, and no word from the daemon: the watch sees it (the poll is an
    // hour away, and the second look after the last notification, 500 ms on, is over)
    await new Promise((r) => setTimeout(r, 1_500));
    await writeStatus(t.paths, "summarizing");
    expect(await nextState()).toBe("summarizing");
    ac.abort();
  });

  it("sends the security headers, with no remote source in the CSP", async () => {
    server = await startServer(t);
    for (const path of ["/", "/status.json", "/assets/app.js", "/nope"]) {
      const res = await raw(new URL(path, server.url).href);
      const csp = String(res.headers["content-security-policy"]);
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("default-src 'none'");
      expect(csp, path).not.toMatch(/https?:|\*/);
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
      expect(res.headers["x-frame-options"], path).toBe("DENY");
    }
    const svg = await raw(new URL("/chart.svg", server.url).href);
    expect(svg.status).toBe(200);
    expect(svg.headers["content-type"]).toMatch(/^image\/svg\+xml/);
    expect(String(svg.headers["content-security-policy"])).not.toContain("unsafe-inline");
    expect((await raw(new URL("/assets/../config.yaml", server.url).href)).status).toBe(404);
    expect((await raw(new URL("/assets/%2e%2e%2fconfig.yaml", server.url).href)).status).toBe(404);
  });

  it("never serves the API key, even where a conversation repeats it", async () => {
    const key = "sk-ant-api03-status-page-secret-0123456789";
    const withKey = await makeRoot({ ANTHROPIC_API_KEY: key });
    try {
      expect(withKey.config.anthropic.apiKey).toBe(key);
      await writeStatus(withKey.paths, "needsJc", { openQuestions: [{ question: `[NEEDS-JC] is ${key} the key?` }] });
      server = await startServer(withKey);
      for (const path of ["/", "/status.json", "/api/costs", "/api/calls", "/api/rejected", "/chart.mmd", "/assets/app.js"]) {
        expect((await raw(new URL(path, server.url).href)).body, path).not.toContain(key);
      }
      const status = (await (await fetch(new URL("/status.json", server.url))).json()) as { needsJc: { question: string }; questions: { question: string }[] };
      expect(status.needsJc.question).toContain("[redacted]");
      expect(status.questions[0]?.question).toContain("[redacted]");
    } finally {
      await withKey.remove();
    }
  });
});

describe("the build", () => {
  const built = new URL("../../dist/src/status/http/server.js", import.meta.url);
  it.skipIf(!existsSync(built))("serves the page and its assets from dist/ (resolved back to src/status/http/page/)", async () => {
    const mod = (await import(built.href)) as typeof import("../../src/status/http/server.js");
    const s = await mod.startStatusServer({ paths: t.paths, config: () => t.config, listen: { host: "127.0.0.1", port: 0 }, subscribe: stateChanges().subscribe, log: silentLogger() });
    try {
      const page = await raw(s.url);
      expect(page.status).toBe(200);
      expect(page.body).toMatch(/<meta name="csrf-token" content="[A-Za-z0-9_-]{43}">/);
      for (const a of ["app.js", "style.css", "favicon.svg"]) expect((await raw(`${s.url}assets/${a}`)).status, a).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe("DNS rebinding and loopback", () => {
  it("refuses a Host header that does not name this server", async () => {
    server = await startServer(t);
    const url = new URL("/status.json", server.url).href;
    expect((await raw(url, { headers: { host: `evil.example:${server.port}` } })).status).toBe(421);
    expect((await raw(url, { headers: { host: "evil.example" } })).status).toBe(421);
    expect((await raw(url, { headers: { host: `127.0.0.1:${server.port + 1}` } })).status).toBe(421);
    expect((await raw(url, { headers: { host: `localhost:${server.port}` } })).status).toBe(200);
    expect((await raw(url, { headers: { host: `127.0.0.1:${server.port}` } })).status).toBe(200);
  });

  it("serves [::1] and checks the bracketed Host header", async (ctx) => {
    try {
      server = await startServer(t, { listen: parseListen("[::1]:0") });
    } catch (err) {
      ctx.skip(`no IPv6 loopback here: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+\/$/);
    const url = new URL("/status.json", server.url).href;
    expect((await raw(url)).status).toBe(200);
    expect((await raw(url, { headers: { host: `[::2]:${server.port}` } })).status).toBe(421);
  });

  it("refuses a proxied request when no token is set", async () => {
    server = await startServer(t);
    const res = await raw(new URL("/status.json", server.url).href, { headers: { "x-forwarded-for": "203.0.113.9" } });
    expect(res.status).toBe(403);
    expect(res.body).not.toContain("needsJc");
  });

  it("refuses to bind a non-loopback address without RELAY_HTTP_TOKEN", async () => {
    const base = { paths: t.paths, config: () => t.config, subscribe: stateChanges().subscribe, log: silentLogger() };
    await expect(startStatusServer({ ...base, listen: { host: "0.0.0.0", port: 0 } })).rejects.toThrow(/non-loopback address needs RELAY_HTTP_TOKEN/);
    await expect(startStatusServer({ ...base, listen: { host: "::", port: 0 } })).rejects.toThrow(/RELAY_HTTP_TOKEN/);
    await expect(startStatusServer({ ...base, listen: { host: "0.0.0.0", port: 0 }, token: "short" })).rejects.toThrow(/too short/);
  });
});

describe("token mode", () => {
  const token = "test-token-0123456789abcdef";

  it("answers nothing without the token, and everything with it", async () => {
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ question: "[NEEDS-JC] private question" }] });
    server = await startServer(t, { token });
    for (const path of ["/", "/status.json", "/events", "/chart.mmd", "/chart.svg", "/api/costs", "/api/calls", "/assets/app.js"]) {
      const res = await raw(new URL(path, server.url).href);
      expect(res.status, path).toBe(401);
      expect(res.body, path).not.toContain("private question");
    }
    expect((await raw(new URL("/status.json", server.url).href, { headers: { authorization: "Bearer wrong-token-0123456789" } })).status).toBe(401);
    expect((await raw(new URL(`/status.json?token=wrong`, server.url).href)).status).toBe(401);

    const bearer = await raw(new URL("/status.json", server.url).href, { headers: { authorization: `Bearer ${token}` } });
    expect(bearer.status).toBe(200);
    expect(bearer.body).toContain("private question");

    // first visit with ?token= sets an HttpOnly, SameSite=Strict cookie that is not the token itself
    const first = await raw(new URL(`/?token=${token}`, server.url).href);
    expect(first.status).toBe(200);
    const cookie = String(first.headers["set-cookie"]);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toContain(token);
    expect(first.body).not.toContain(token);
    const pair = cookie.split(";")[0] ?? "";
    expect((await raw(new URL("/status.json", server.url).href, { headers: { cookie: pair } })).status).toBe(200);
  });

  it("binds a non-loopback address when a token is set", async () => {
    server = await startServer(t, { token, listen: { host: "0.0.0.0", port: 0 } });
    const res = await raw(`http://127.0.0.1:${server.port}/status.json`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect((await raw(`http://127.0.0.1:${server.port}/status.json`)).status).toBe(401);
  });

  it("POST /jc needs the token as well as the CSRF token", async () => {
    server = await startServer(t, { token });
    const csrf = await csrfOf(server.url, { authorization: `Bearer ${token}` });
    const origin = `http://${server.host}`;
    const body = JSON.stringify({ text: "@session-1: x" });
    const headers = { "content-type": "application/json", origin, "x-csrf-token": csrf };
    expect((await raw(new URL("/jc", server.url).href, { method: "POST", headers, body })).status).toBe(401);
    expect(await exists(t.paths.jcInput)).toBe(false);
    const ok = await raw(new URL("/jc", server.url).href, { method: "POST", headers: { ...headers, authorization: `Bearer ${token}` }, body });
    expect(ok.status).toBe(200);
    expect(await readFile(t.paths.jcInput, "utf8")).toBe("@session-1: x\n");
  });
});

describe("POST /jc", () => {
  const post = (url: string, headers: Record<string, string>, body: string) => raw(new URL("/jc", url).href, { method: "POST", headers, body });

  it("refuses a cross-origin request and writes nothing", async () => {
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const body = JSON.stringify({ text: "@session-1: x" });
    const json = { "content-type": "application/json", "x-csrf-token": csrf };
    for (const headers of [
      { ...json, origin: "http://evil.example" },
      { ...json, origin: "null" },
      { ...json, origin: `http://localhost:${server.port + 1}` },
      { ...json, "sec-fetch-site": "cross-site" },
      { ...json, "sec-fetch-site": "same-site", origin: `http://${server.host}` },
    ]) {
      const res = await post(server.url, headers, body);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body).toMatch(/cross-site/);
    }
    // a form a foreign page would submit
    const form = await post(server.url, { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.example" }, `text=x&csrf=${csrf}`);
    expect(form.status).toBe(403);
    expect(await exists(t.paths.jcInput)).toBe(false);
  });

  it("refuses a request without the page's CSRF token, or with a wrong one", async () => {
    server = await startServer(t);
    const origin = `http://${server.host}`;
    const body = JSON.stringify({ text: "@session-1: x" });
    const missing = await post(server.url, { "content-type": "application/json", origin, "sec-fetch-site": "same-origin" }, body);
    expect(missing.status).toBe(403);
    expect(missing.body).toMatch(/CSRF/);
    const wrong = await post(server.url, { "content-type": "application/json", origin, "x-csrf-token": "guessed" }, body);
    expect(wrong.status).toBe(403);
    expect(await exists(t.paths.jcInput)).toBe(false);
  });

  it("writes state/jc_input.txt through relay jc's code path, @session-N: included", async () => {
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const origin = `http://${server.host}`;
    const res = await post(server.url, { "content-type": "application/json", origin, "sec-fetch-site": "same-origin", "x-csrf-token": csrf }, JSON.stringify({ text: "@session-1: x" }));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ ok: true, kind: "direct", session: "session-1" });
    expect(await readFile(t.paths.jcInput, "utf8")).toBe("@session-1: x\n");
  });

  it("takes a plain form post (no JavaScript) as the next chat turn", async () => {
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const res = await post(server.url, { "content-type": "application/x-www-form-urlencoded", origin: `http://${server.host}` }, new URLSearchParams({ text: "Yes, merge it.", csrf }).toString());
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe("/");
    expect(await readFile(t.paths.jcInput, "utf8")).toBe("Yes, merge it.\n");
  });

  it("writes an answer to one question as {text, question} in state/jc_input.txt", async () => {
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-1", question: "[NEEDS-JC] A?" }, { id: "q-2", session: "session-2", question: "[NEEDS-JC] B?" }] });
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const headers = { "content-type": "application/json", origin: `http://${server.host}`, "x-csrf-token": csrf };
    const res = await post(server.url, headers, JSON.stringify({ text: " Wait for the load test. ", question: "q-2" }));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ ok: true, kind: "answer", question: "q-2" });
    expect(JSON.parse(await readFile(t.paths.jcInput, "utf8"))).toEqual({ text: "Wait for the load test.", question: "q-2" });
  });

  it("takes a plain form post answering one question", async () => {
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-1", question: "[NEEDS-JC] A?" }] });
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const res = await post(server.url, { "content-type": "application/x-www-form-urlencoded", origin: `http://${server.host}` }, new URLSearchParams({ text: "Yes.", question: "q-1", csrf }).toString());
    expect(res.status).toBe(303);
    expect(JSON.parse(await readFile(t.paths.jcInput, "utf8"))).toEqual({ text: "Yes.", question: "q-1" });
  });

  it("refuses an answer to a question that is not open, a malformed question id, and an empty answer", async () => {
    await writeStatus(t.paths, "needsJc", { openQuestions: [{ id: "q-1", question: "[NEEDS-JC] A?" }] });
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const headers = { "content-type": "application/json", origin: `http://${server.host}`, "x-csrf-token": csrf };
    const closed = await post(server.url, headers, JSON.stringify({ text: "x", question: "q-9" }));
    expect(closed.status).toBe(409);
    expect(JSON.parse(closed.body)).toMatchObject({ ok: false, error: expect.stringMatching(/question q-9 is no longer open/) });
    expect((await post(server.url, headers, JSON.stringify({ text: "x", question: "../q" }))).status).toBe(400);
    expect((await post(server.url, headers, JSON.stringify({ text: " ", question: "q-1" }))).status).toBe(400);
    expect(await exists(t.paths.jcInput)).toBe(false);
  });

  it("refuses an answer for a session that is not in config.yaml, and an empty one", async () => {
    server = await startServer(t);
    const csrf = await csrfOf(server.url);
    const headers = { "content-type": "application/json", origin: `http://${server.host}`, "x-csrf-token": csrf };
    const unknown = await post(server.url, headers, JSON.stringify({ text: "@session-9: x" }));
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body)).toMatchObject({ ok: false, error: expect.stringMatching(/session-9 is not a session in config.yaml/) });
    expect((await post(server.url, headers, JSON.stringify({ text: "   " }))).status).toBe(400);
    expect((await post(server.url, headers, "not json")).status).toBe(400);
    expect((await post(server.url, { ...headers, "content-type": "text/plain" }, "x")).status).toBe(415);
    expect(await exists(t.paths.jcInput)).toBe(false);
  });

  it("accepts only POST on /jc and only GET elsewhere", async () => {
    server = await startServer(t);
    const get = await raw(new URL("/jc", server.url).href);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe("POST");
    expect((await raw(new URL("/status.json", server.url).href, { method: "POST" })).status).toBe(405);
  });
});
