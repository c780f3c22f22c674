// The machine as an SVG the status page shows, laid out by a few lines instead of a drawing
// library: states in columns by their distance from the initial state, transitions as arrows
// (what triggers them in each arrow's tooltip). Each state is a `g.state[data-state=NAME]`, so
// the page marks the current one with a class and CSS does the rest. Pure: machine in, text out.
import type { AnyStateMachine, AnyStateNode } from "xstate";
import { edgesOf, type Edge } from "./chart.js";

const BOX = { width: 132, height: 36 };
const GAP = { x: 72, y: 26 };
const MARGIN = 24;
const START_DOT = 7;

interface Placed {
  name: string;
  final: boolean;
  x: number;
  y: number;
}

const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Each state's column: its distance from the initial state along transitions (unreachable ones last). */
function columns(states: string[], initial: string | undefined, edges: Edge[]): Map<string, number> {
  const column = new Map<string, number>();
  if (initial !== undefined) column.set(initial, 0);
  const frontier = initial === undefined ? [] : [initial];
  while (frontier.length > 0) {
    const from = frontier.shift() as string;
    for (const e of edges) {
      if (e.from !== from || column.has(e.to)) continue;
      column.set(e.to, (column.get(from) ?? 0) + 1);
      frontier.push(e.to);
    }
  }
  const last = Math.max(-1, ...column.values()) + 1;
  for (const s of states) if (!column.has(s)) column.set(s, last);
  return column;
}

/** Where the segment from the centre of `box` towards (tx, ty) leaves the box. */
function borderPoint(box: Placed, tx: number, ty: number): [number, number] {
  const cx = box.x + BOX.width / 2;
  const cy = box.y + BOX.height / 2;
  const dx = tx - cx;
  const dy = ty - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const scale = 1 / Math.max(Math.abs(dx) / (BOX.width / 2), Math.abs(dy) / (BOX.height / 2));
  return [cx + dx * scale, cy + dy * scale];
}

const r = (n: number): string => String(Math.round(n * 10) / 10);

/** An arrow from one box to another, bent to its left so that A→B and B→A stay apart. */
function arrow(from: Placed, to: Placed, labels: string[]): string {
  const [fx, fy] = [from.x + BOX.width / 2, from.y + BOX.height / 2];
  const [tx, ty] = [to.x + BOX.width / 2, to.y + BOX.height / 2];
  const length = Math.hypot(tx - fx, ty - fy);
  const bend = Math.min(36, 12 + length / 10);
  const [mx, my] = [(fx + tx) / 2 + ((ty - fy) / length) * bend, (fy + ty) / 2 - ((tx - fx) / length) * bend];
  const [sx, sy] = borderPoint(from, mx, my);
  const [ex, ey] = borderPoint(to, mx, my);
  const title = `${from.name} → ${to.name}: ${labels.join("; ")}`;
  return `<path class="transition" d="M${r(sx)},${r(sy)} Q${r(mx)},${r(my)} ${r(ex)},${r(ey)}" marker-end="url(#chart-arrow)"><title>${escapeXml(title)}</title></path>`;
}

export function toSvg(machine: AnyStateMachine): string {
  const nodes = Object.values(machine.root.states) as AnyStateNode[];
  const edges = nodes.flatMap(edgesOf).filter((e) => e.from !== e.to);
  const initial = machine.root.initial.target[0]?.key;
  const column = columns(
    nodes.map((n) => n.key),
    initial,
    edges,
  );
  const rows = new Map<number, number>();
  const placed = new Map<string, Placed>();
  for (const node of nodes) {
    const c = column.get(node.key) ?? 0;
    const row = rows.get(c) ?? 0;
    rows.set(c, row + 1);
    placed.set(node.key, { name: node.key, final: node.type === "final", x: MARGIN + START_DOT * 4 + c * (BOX.width + GAP.x), y: MARGIN + row * (BOX.height + GAP.y) });
  }
  const width = Math.max(...[...placed.values()].map((p) => p.x + BOX.width)) + MARGIN;
  const height = Math.max(...[...placed.values()].map((p) => p.y + BOX.height)) + MARGIN;

  const labels = new Map<string, string[]>();
  for (const e of edges) {
    const key = `${e.from}\n${e.to}`;
    labels.set(key, [...(labels.get(key) ?? []), e.label]);
  }
  const arrows = [...labels].map(([key, ls]) => {
    const [from, to] = key.split("\n") as [string, string];
    return arrow(placed.get(from) as Placed, placed.get(to) as Placed, ls);
  });
  const start = initial === undefined ? undefined : placed.get(initial);
  const startMark = start
    ? `<circle class="start" cx="${r(MARGIN + START_DOT)}" cy="${r(start.y + BOX.height / 2)}" r="${START_DOT}"/><path class="transition" d="M${r(MARGIN + START_DOT * 2)},${r(start.y + BOX.height / 2)} H${r(start.x)}" marker-end="url(#chart-arrow)"/>`
    : "";
  const boxes = [...placed.values()].map(
    (p) =>
      `<g class="state${p.final ? " final" : ""}" data-state="${escapeXml(p.name)}"><rect x="${r(p.x)}" y="${r(p.y)}" width="${BOX.width}" height="${BOX.height}" rx="8"/>` +
      `<text x="${r(p.x + BOX.width / 2)}" y="${r(p.y + BOX.height / 2)}">${escapeXml(p.name)}</text></g>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="state-chart" viewBox="0 0 ${r(width)} ${r(height)}" width="${r(width)}" height="${r(height)}" role="img">`,
    `<defs><marker id="chart-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>`,
    startMark,
    ...arrows,
    ...boxes,
    `</svg>`,
    "",
  ].join("\n");
}
