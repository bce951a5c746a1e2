// The account page's "bytes per day" chart: an SVG drawn on the server, one bar per UTC day, each with
// a <title> (the browser shows it on hover; screen readers read it). The SVG stretches to the card's
// width at a fixed height, so its labels are HTML around it and stay readable on a phone. Colours come
// from the stylesheet through classes, since the CSP allows no inline style.
import { formatBytes } from './format.js';
import { html, type Html } from '../../lib/html.js';

const WIDTH = 720;
const HEIGHT = 160;

export function usageChart(days: { day: string; bytes: number }[]): Html {
  const max = Math.max(1, ...days.map((d) => d.bytes));
  const slot = WIDTH / Math.max(1, days.length);
  const total = days.reduce((sum, d) => sum + d.bytes, 0);
  const bars = days.map((d, i) => {
    const h = d.bytes === 0 ? 0 : Math.max(2, Math.round((d.bytes / max) * HEIGHT));
    const x = Math.round(i * slot + slot * 0.15);
    const w = Math.max(1, Math.round(slot * 0.7));
    return html`<rect class="bar" x="${x}" y="${HEIGHT - h}" width="${w}" height="${h}"
      ><title>${d.day}: ${formatBytes(d.bytes)}</title></rect
    >`;
  });
  const first = days[0]?.day ?? '';
  const last = days[days.length - 1]?.day ?? '';
  return html`<figure class="usage">
    <p class="chart-scale">${formatBytes(max)}</p>
    <svg
      class="chart"
      viewBox="0 0 ${WIDTH} ${HEIGHT}"
      preserveAspectRatio="none"
      role="img"
      aria-labelledby="chart-title"
    >
      <title id="chart-title">Bytes per day, ${first} to ${last}: ${formatBytes(total)} in total</title>
      <line class="grid" x1="0" y1="0.5" x2="${WIDTH}" y2="0.5" vector-effect="non-scaling-stroke" />
      ${bars}
      <line
        class="axis"
        x1="0"
        y1="${HEIGHT}"
        x2="${WIDTH}"
        y2="${HEIGHT}"
        vector-effect="non-scaling-stroke"
      />
    </svg>
    <figcaption class="chart-days">
      <span>${first}</span><span>${formatBytes(total)} in ${days.length} days</span><span>${last}</span>
    </figcaption>
  </figure>`;
}
