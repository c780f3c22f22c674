import { describe, expect, it } from "vitest";
import { notification } from "../src/operator/notifications.js";

describe("notifications", () => {
  it("a needs-JC notification names the session, quotes the question and offers answer buttons", () => {
    const n = notification(
      { kind: "needsJc", session: "session-2", message: "[NEEDS-JC] Spend $40 on the load test?" },
      { replyUrl: "https://ntfy.example/replies-abc", statusUrl: "http://127.0.0.1:8080/" },
    );
    expect(n.title).toBe("relay: session-2 needs JC");
    expect(n.message).toContain("[NEEDS-JC] Spend $40 on the load test?");
    expect(n.priority).toBe(4);
    expect(n.actions).toEqual([
      { action: "http", label: "Approve", url: "https://ntfy.example/replies-abc", method: "POST", body: "Approved: go ahead.", clear: true },
      { action: "http", label: "Reject", url: "https://ntfy.example/replies-abc", method: "POST", body: "Rejected: do not do that; propose another way.", clear: true },
      { action: "view", label: "Status", url: "http://127.0.0.1:8080/" },
    ]);
  });

  it("has no buttons when there is no reply topic or page, and cuts a long question", () => {
    const n = notification({ kind: "needsJc", session: "session-1", message: `[NEEDS-JC] ${"x".repeat(2000)}` });
    expect(n.actions).toBeUndefined();
    expect(n.message.length).toBeLessThan(800);
  });

  it("a permanent failure says how to resume", () => {
    expect(notification({ kind: "paused", message: "401 authentication_error: invalid x-api-key" }).message).toContain("relay resume");
  });
});
