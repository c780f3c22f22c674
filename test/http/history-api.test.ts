// GET /api/history: one session's last entries for the status page's conversation panel, behind
// the page's own access rules, with secrets redacted and long texts cut (their full length kept).
import { afterEach, describe, expect, it } from "vitest";
import { ConversationStore, type HistoryEntry } from "../../src/history/conversation-store.js";
import { PANEL_TEXT_CHARS } from "../../src/status/http/data.js";
import { makeRoot, raw, startServer, type TestRoot } from "./support.js";

let t: TestRoot | null = null;
let server: Awaited<ReturnType<typeof startServer>> | null = null;

afterEach(async () => {
  await server?.close();
  server = null;
  await t?.remove();
  t = null;
});

const at = (i: number) => new Date(Date.UTC(2026, 10, 28, 9, 0, i)).toISOString();
const turn = (i: number, session: string, text: string, reply = `reply ${i}`): HistoryEntry => ({ kind: "turn", id: `t-${i}`, session, source: "envelope", text, reply, at: at(i) });

interface Panel {
  session: string;
  conversation: string;
  more: boolean;
  entries: { kind: string; from: string; session: string | null; text: string; reply: string | null; textChars: number; replyChars: number | null; at: string }[];
}

const get = async (path: string, headers: Record<string, string> = {}) => {
  if (!server) throw new Error("no server");
  const res = await raw(new URL(path, server.url).href, { headers: { accept: "application/json", ...headers } });
  return { status: res.status, body: res.body, json: () => JSON.parse(res.body) as Panel & { error?: string } };
};

describe("GET /api/history", () => {
  it("gives a session's last N entries newest first (its turns and notes, and the summaries), and says when older ones exist", async () => {
    t = await makeRoot();
    const store = new ConversationStore(t.paths);
    await store.append("shared", [
      { kind: "summary", id: "sum", text: "Earlier: plans.", folded: 3, at: at(0) },
      turn(1, "session-1", "one"),
      turn(2, "session-2", "other session"),
      { kind: "note", id: "n", session: "session-1", text: "JC: stop at two.", at: at(3) },
      turn(4, "session-1", "two"),
    ]);
    server = await startServer(t);
    const all = (await get("/api/history?session=session-1")).json();
    expect(all.conversation).toBe("shared");
    expect(all.entries.map((e) => [e.kind, e.from, e.text])).toEqual([
      ["turn", "agent", "two"],
      ["note", "jc", "JC: stop at two."],
      ["turn", "agent", "one"],
      ["summary", "summary", "Earlier: plans."],
    ]);
    expect(all.entries[0]?.reply).toBe("reply 4");
    expect(all.more).toBe(false);
    const two = (await get("/api/history?session=session-1&last=2")).json();
    expect(two.entries.map((e) => e.text)).toEqual(["two", "JC: stop at two."]);
    expect(two.more).toBe(true);
    // another session of the shared conversation, answered from what the reads above passed on the way
    const other = (await get("/api/history?session=session-2&last=1")).json();
    expect(other.entries.map((e) => e.text)).toEqual(["other session"]);
    expect(other.more).toBe(true);
    expect((await get("/api/history?session=session-2")).json().entries.map((e) => e.text)).toEqual(["other session", "Earlier: plans."]);
    expect((await get("/api/history?session=session-2")).json().more).toBe(false);

    // a new commit is served at once (the cache follows the file)
    await store.append("shared", [turn(5, "session-1", "three")]);
    expect((await get("/api/history?session=session-1&last=1")).json().entries[0]?.text).toBe("three");
  });

  it("refuses a bad page size and a session the relay does not know, in one line each", async () => {
    t = await makeRoot();
    server = await startServer(t);
    for (const last of ["0", "51", "abc", "1.5"]) {
      const res = await get(`/api/history?session=session-1&last=${last}`);
      expect(res.status, last).toBe(400);
      expect(res.json().error).toBe("last: expected a whole number from 1 to 50");
    }
    const unknown = await get("/api/history?session=session-9");
    expect(unknown.status).toBe(404);
    expect(unknown.json().error).toBe('session: expected a session of this relay, got "session-9"');
    const empty = (await get("/api/history?session=session-2")).json();
    expect(empty).toEqual({ session: "session-2", conversation: "shared", entries: [], more: false });
  });

  it("cuts a long text for the page and keeps its full length, and never serves the API key", async () => {
    const key = "sk-ant-api03-history-panel-secret-0123456789";
    t = await makeRoot({ ANTHROPIC_API_KEY: key });
    const long = `${"The plan, step by step. ".repeat(2_000)}END`;
    await new ConversationStore(t.paths).append("shared", [turn(1, "session-1", `Is ${key} our key?`, long)]);
    server = await startServer(t);
    const res = await get("/api/history?session=session-1");
    expect(res.body).not.toContain(key);
    const [entry] = res.json().entries;
    expect(entry?.text).toContain("[redacted]");
    expect(entry?.reply).toHaveLength(PANEL_TEXT_CHARS);
    expect(entry?.replyChars).toBe(long.length);
    expect(entry?.reply?.endsWith("END")).toBe(false);
  });

  it("with RELAY_HTTP_TOKEN, serves the conversation only to a request that carries the token", async () => {
    t = await makeRoot();
    await new ConversationStore(t.paths).append("shared", [turn(1, "session-1", "private plans")]);
    const token = "history-token-0123456789abcdef";
    server = await startServer(t, { token });
    const refused = await get("/api/history?session=session-1");
    expect(refused.status).toBe(401);
    expect(refused.body).not.toContain("private plans");
    const allowed = await get("/api/history?session=session-1", { authorization: `Bearer ${token}` });
    expect(allowed.status).toBe(200);
    expect(allowed.json().entries[0]?.text).toBe("private plans");
  });
});
