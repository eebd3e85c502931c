// Draws bench/chart.svg from the session benchmark's results: statements per request, throughput,
// and latency with a delay per database round trip, side by side. Plain SVG, no dependencies.

export interface Series {
  label: string;
  color: string;
}

export interface Panel {
  title: string;
  unit: string;
  rows: string[];
  series: Series[];
  /** values[row][series]; null draws nothing */
  values: (number | null)[][];
}

const W = 340;
const LABEL = 104;
const BAR = 9;
const ROW_GAP = 8;
const TOP = 44;

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmt(n: number): string {
  // Two decimals below 10, so 0.21 round trips per request is not drawn as 0.2.
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  return String(n < 10 ? Math.round(n * 100) / 100 : Math.round(n * 10) / 10);
}

function panel(p: Panel, x0: number): { svg: string; height: number } {
  const max = Math.max(1e-9, ...p.values.flat().filter((v): v is number => v !== null));
  const width = W - LABEL - 44;
  let y = TOP;
  const out: string[] = [
    `<text x="${x0}" y="18" font-size="13" font-weight="600">${esc(p.title)}</text>`,
    `<text x="${x0}" y="33" font-size="10.5" fill="#555">${esc(p.unit)}</text>`,
  ];
  p.rows.forEach((row, r) => {
    const groupHeight = p.series.length * (BAR + 1);
    out.push(
      `<text x="${x0 + LABEL - 6}" y="${y + groupHeight / 2 + 4}" font-size="11" text-anchor="end">${esc(row)}</text>`,
    );
    p.series.forEach((s, i) => {
      const v = p.values[r]![i];
      const by = y + i * (BAR + 1);
      if (v === null || v === undefined) return;
      const w = Math.max(v === 0 ? 0 : 1.5, (v / max) * width);
      out.push(`<rect x="${x0 + LABEL}" y="${by}" width="${w.toFixed(1)}" height="${BAR}" fill="${s.color}"/>`);
      out.push(`<text x="${x0 + LABEL + w + 3}" y="${by + BAR - 1}" font-size="9">${fmt(v)}</text>`);
    });
    y += groupHeight + ROW_GAP;
  });
  out.push(
    `<line x1="${x0 + LABEL}" y1="${TOP - 4}" x2="${x0 + LABEL}" y2="${
      y - ROW_GAP + 2
    }" stroke="#888" stroke-width="0.8"/>`,
  );
  return { svg: out.join("\n"), height: y };
}

export function drawChart(panels: Panel[], caption: string): string {
  const drawn = panels.map((p, i) => panel(p, 10 + i * W));
  const legendSeries = [...new Map(panels.flatMap((p) => p.series).map((s) => [s.label, s])).values()];
  let height = Math.max(...drawn.map((d) => d.height)) + 12;
  const width = 10 + panels.length * W;
  let x = 10;
  // Legend entries flow onto a new line when the next one would not fit.
  const legend = legendSeries.map((s) => {
    const entry = 34 + s.label.length * 6.2;
    if (x > 10 && x + entry > width) {
      x = 10;
      height += 18;
    }
    const at = x;
    x += entry;
    return `<rect x="${at}" y="${height}" width="10" height="10" fill="${s.color}"/><text x="${at + 14}" y="${
      height + 9
    }" font-size="11">${esc(s.label)}</text>`;
  });
  height += 26;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 16}" viewBox="0 0 ${width} ${
    height + 16
  }" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
${drawn.map((d) => d.svg).join("\n")}
${legend.join("\n")}
<text x="10" y="${height + 8}" font-size="10" fill="#555">${esc(caption)}</text>
</svg>
`;
}
