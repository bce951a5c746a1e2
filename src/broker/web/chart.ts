// The account page's "bytes per day" chart: an SVG drawn on the server, one bar per UTC day, each with
// a <title> (the browser shows it on hover; screen readers read it). Colours come from the stylesheet
// through classes, since the CSP allows no inline style.
import { formatBytes } from './format.js';
import { html, type Html } from './html.js';

const WIDTH = 720;
const HEIGHT = 180;
const AXIS = 22;
const TOP = 16;

export function usageChart(days: { day: string; bytes: number }[]): Html {
  const max = Math.max(1, ...days.map((d) => d.bytes));
  const slot = WIDTH / Math.max(1, days.length);
  const plot = HEIGHT - AXIS - TOP;
  const total = days.reduce((sum, d) => sum + d.bytes, 0);
  const bars = days.map((d, i) => {
    const h = d.bytes === 0 ? 0 : Math.max(2, Math.round((d.bytes / max) * plot));
    const x = Math.round(i * slot + slot * 0.15);
    const w = Math.max(1, Math.round(slot * 0.7));
    return html`<rect class="bar" x="${x}" y="${TOP + plot - h}" width="${w}" height="${h}" rx="2"
      ><title>${d.day}: ${formatBytes(d.bytes)}</title></rect
    >`;
  });
  const first = days[0]?.day ?? '';
  const last = days[days.length - 1]?.day ?? '';
  return html`<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="chart-title">
    <title id="chart-title">Bytes per day, ${first} to ${last}: ${formatBytes(total)} in total</title>
    <line class="grid" x1="0" y1="${TOP}" x2="${WIDTH}" y2="${TOP}" />
    <line class="axis" x1="0" y1="${TOP + plot}" x2="${WIDTH}" y2="${TOP + plot}" />
    <text class="label" x="0" y="${TOP - 4}">${formatBytes(max)}</text>
    ${bars}
    <text class="label" x="0" y="${HEIGHT - 4}">${first}</text>
    <text class="label end" x="${WIDTH}" y="${HEIGHT - 4}">${last}</text>
  </svg>`;
}
