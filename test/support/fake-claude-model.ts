// A lenient stand-in for the model behind Claude Code (FACTS "Claude Code hooks"): the real
// `claude` binary sends its own requests here (ANTHROPIC_BASE_URL), streaming
// `POST /v1/messages?beta=true` with tools, thinking, system messages mid-conversation and more.
// Unlike the relay's strict stand-in it validates nothing: it records every request and answers
// each with what the test's script says (text, or a tool call), in the real SSE wire format.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request Claude Code made to its model, as received. */
export interface ModelRequest {
  path: string;
  body: Record<string, unknown>;
}

/** What the model answers: a text, a call of one of Claude Code's tools (e.g. Bash), or an API error (a 429, a 529). */
export type ModelTurn = { text: string } | { tool: string; input: Record<string, unknown>; text?: string } | { error: { status: number; type: string; message: string } };
type AnswerTurn = Exclude<ModelTurn, { error: unknown }>;

export type ModelScript = (request: ModelRequest, index: number) => ModelTurn;

export interface FakeClaudeModel {
  url: string;
  /** Every /v1/messages request, in order (count_tokens and side requests included). */
  requests: ModelRequest[];
  /** The requests of the main conversation: the ones that offer tools (side requests such as titles do not). */
  turns(): ModelRequest[];
  setScript(script: ModelScript): void;
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });

let nextId = 0;

function contentOf(turn: AnswerTurn): Record<string, unknown>[] {
  const blocks: Record<string, unknown>[] = [];
  if ("tool" in turn) {
    if (turn.text) blocks.push({ type: "text", text: turn.text });
    blocks.push({ type: "tool_use", id: `toolu_fake${String(++nextId).padStart(6, "0")}`, name: turn.tool, input: turn.input });
  } else {
    blocks.push({ type: "text", text: turn.text });
  }
  return blocks;
}

function sse(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function answerStreaming(res: ServerResponse, model: string, turn: AnswerTurn): void {
  const id = `msg_fake${String(++nextId).padStart(6, "0")}`;
  const usage = { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "request-id": `req_${id}` });
  sse(res, "message_start", { type: "message_start", message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage } });
  contentOf(turn).forEach((block, index) => {
    if (block.type === "text") {
      sse(res, "content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } });
      sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: block.text } });
    } else {
      sse(res, "content_block_start", { type: "content_block_start", index, content_block: { ...block, input: {} } });
      sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) } });
    }
    sse(res, "content_block_stop", { type: "content_block_stop", index });
  });
  const stopReason = "tool" in turn ? "tool_use" : "end_turn";
  sse(res, "message_delta", { type: "message_delta", delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 5 } });
  sse(res, "message_stop", { type: "message_stop" });
  res.end();
}

function answerWhole(res: ServerResponse, model: string, turn: AnswerTurn): void {
  const id = `msg_fake${String(++nextId).padStart(6, "0")}`;
  res.writeHead(200, { "content-type": "application/json", "request-id": `req_${id}` });
  res.end(
    JSON.stringify({
      id,
      type: "message",
      role: "assistant",
      model,
      content: contentOf(turn),
      stop_reason: "tool" in turn ? "tool_use" : "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    }),
  );
}

/** Whether a request is a turn of the agent's own conversation (it offers tools) rather than a side request. */
export const isAgentTurn = (request: ModelRequest): boolean => Array.isArray(request.body.tools) && request.body.tools.length > 0;

export async function startFakeClaudeModel(script: ModelScript = () => ({ text: "Done." })): Promise<FakeClaudeModel> {
  const requests: ModelRequest[] = [];
  let current = script;
  let turnIndex = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const raw = await readBody(req);
      const path = req.url ?? "/";
      if (req.method !== "POST" || !path.startsWith("/v1/messages")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ type: "error", error: { type: "not_found_error", message: `no ${req.method} ${path} here` } }));
        return;
      }
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        body = {};
      }
      const request = { path, body };
      requests.push(request);
      if (path.startsWith("/v1/messages/count_tokens")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 100 }));
        return;
      }
      const model = typeof body.model === "string" ? body.model : "claude-fake";
      // Side requests (titles, summaries) get a short text; the agent's turns follow the script.
      const turn = isAgentTurn(request) ? current(request, turnIndex++) : { text: "Side answer." };
      if ("error" in turn) {
        res.writeHead(turn.error.status, { "content-type": "application/json", "request-id": `req_fakeerr${++nextId}` });
        res.end(JSON.stringify({ type: "error", error: { type: turn.error.type, message: turn.error.message } }));
        return;
      }
      if (body.stream === true) answerStreaming(res, model, turn);
      else answerWhole(res, model, turn);
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    turns: () => requests.filter(isAgentTurn),
    setScript(next) {
      current = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The text of a request's messages, flattened: what the model is shown, for assertions. */
export function messageTexts(request: ModelRequest): { role: string; text: string }[] {
  const messages = Array.isArray(request.body.messages) ? (request.body.messages as { role?: unknown; content?: unknown }[]) : [];
  return messages.map((m) => {
    const role = typeof m.role === "string" ? m.role : "?";
    if (typeof m.content === "string") return { role, text: m.content };
    const parts = Array.isArray(m.content) ? (m.content as Record<string, unknown>[]) : [];
    const text = parts
      .map((p) => {
        if (typeof p.text === "string") return p.text;
        if (p.type === "tool_result") {
          const c = p.content;
          if (typeof c === "string") return c;
          if (Array.isArray(c)) return (c as Record<string, unknown>[]).map((x) => (typeof x.text === "string" ? x.text : "")).join("\n");
        }
        return "";
      })
      .join("\n");
    return { role, text };
  });
}
