// berth's own metrics on the Host page: the daemon's Prometheus text from
// `GET /_berth/metrics` (berth only; dockerd answers 404), read every 5 s
// while the page is visible. Container start latency (with a chart of its
// median over the page's lifetime), shims and their memory, the busiest
// API routes and the bytes pulled.
import { html, useEffect, useRef, useState } from './lib.js';
import { call } from './api.js';
import { load, bytes, clock } from './util.js';
import { parse, scalar, histograms, quantile } from './prom.js';

const EVERY_MS = 5000;
const TOP_ROUTES = 8;

// Seconds, readably (NaN: no observation yet).
function secs(s) {
  if (s === undefined || Number.isNaN(s)) return '—';
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1).replace(/\.0+$/, '') + ' ms';
  return s.toFixed(2) + ' s';
}

// What the page shows, from one scrape.
function summarize(text) {
  const fams = parse(text);
  const start = histograms(fams, 'berth_container_start_seconds', [])[0] || { buckets: [], count: 0 };
  const routes = histograms(fams, 'berth_api_request_duration_seconds', ['route'])
    .map((h) => ({ route: h.labels.route, count: h.count, p50: quantile(h.buckets, 0.5) }))
    .sort((a, b) => b.count - a.count);
  return {
    start: {
      count: start.count,
      p50: quantile(start.buckets, 0.5),
      p90: quantile(start.buckets, 0.9),
      p99: quantile(start.buckets, 0.99),
    },
    shims: scalar(fams, 'berth_shims'),
    shimMemory: scalar(fams, 'berth_shim_memory_bytes'),
    requests: routes.reduce((n, r) => n + r.count, 0),
    routes: routes.slice(0, TOP_ROUTES),
    pulled: scalar(fams, 'berth_image_pull_bytes'),
  };
}

// A figure with its raw number for the tests.
const Figure = ({ id, label, value, shown }) => html`<div class="muted">${label}</div>
  <div data-testid=${id} data-value=${Number.isNaN(value) || value === undefined ? '' : String(value)}>${shown}</div>`;

// Plots [[t, seconds]] over at least the last minute.
function draw(u, points) {
  u.setData([points.map((p) => p[0]), points.map((p) => p[1])]);
  if (!points.length) return;
  const first = points[0][0], last = points[points.length - 1][0];
  u.setScale('x', { min: Math.min(first, last - 60), max: last });
}

// The median start latency at each scrape, in a uPlot chart.
function StartChart({ points }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    let gone = false;
    Promise.all([load('vendor/uplot/uPlot.min.css'), load('vendor/uplot/uPlot.iife.min.js')]).then(() => {
      if (gone || !box.current) return;
      const fg = getComputedStyle(document.body).color;
      const grid = { stroke: getComputedStyle(document.documentElement).getPropertyValue('--line').trim() || '#ccc', width: 1 };
      plot.current = new window.uPlot({
        width: Math.max(300, box.current.clientWidth - 16), height: 140,
        series: [{}, { label: 'p50', stroke: '#1a73e8', width: 1.5, spanGaps: true }],
        axes: [{ stroke: fg, grid, ticks: grid, space: 90, values: (u, vs) => vs.map(clock) }, { stroke: fg, grid, ticks: grid, size: 70, values: (u, vs) => vs.map(secs) }],
        legend: { show: false },
        // Ranged by `draw` (a single point would make uPlot span years).
        scales: { x: { time: true, auto: false }, y: { range: (u, lo, hi) => [0, Math.max(0.01, (hi || 0) * 1.2)] } },
      }, [[], []], box.current);
      draw(plot.current, points);
    }).catch(() => {});
    return () => { gone = true; if (plot.current) plot.current.destroy(); plot.current = null; };
  }, []);
  useEffect(() => { if (plot.current) draw(plot.current, points); }, [points]);
  return html`<div class="chart small-chart" data-testid="metric-start-chart" data-points=${String(points.length)} ref=${box}></div>`;
}

export function BerthMetrics() {
  const [m, setM] = useState(null);
  const [points, setPoints] = useState([]);
  const [state, setState] = useState('loading'); // loading | ok | unavailable | error
  const [error, setError] = useState('');
  useEffect(() => {
    const ac = new AbortController();
    let timer = null;
    let series = [];
    const tick = async () => {
      clearTimeout(timer);
      if (!document.hidden) {
        try {
          const r = await call('GET', '/_berth/metrics', { signal: ac.signal });
          const s = summarize(await r.text());
          if (ac.signal.aborted) return;
          series = [...series, [Date.now() / 1000, Number.isNaN(s.start.p50) ? null : s.start.p50]];
          setPoints(series);
          setM(s);
          setState('ok');
        } catch (e) {
          if (ac.signal.aborted) return;
          if (e.status === 404) { setState('unavailable'); return; }
          setError(e.message);
          setState((st) => (st === 'ok' ? 'ok' : 'error'));
        }
      }
      if (!ac.signal.aborted) timer = setTimeout(tick, EVERY_MS);
    };
    const onVisible = () => { if (!document.hidden) tick(); };
    document.addEventListener('visibilitychange', onVisible);
    tick();
    return () => { ac.abort(); clearTimeout(timer); document.removeEventListener('visibilitychange', onVisible); };
  }, []);
  if (state === 'unavailable') {
    return html`<section data-testid="berth-metrics"><h2>berth's own metrics</h2>
      <p class="muted" data-testid="berth-metrics-unavailable">berth metrics not available (not a berth daemon)</p></section>`;
  }
  if (!m) {
    return html`<section data-testid="berth-metrics"><h2>berth's own metrics</h2>
      <p class="muted">${state === 'error' ? error : 'Loading…'}</p></section>`;
  }
  const st = m.start;
  return html`<section data-testid="berth-metrics">
    <h2>berth's own metrics <span class="muted small">(every 5 s; quantiles estimated from histogram buckets)</span></h2>
    <div class="metrics">
      <div>
        <h3>Container start <span class="muted small">(p50 since this page opened, below)</span></h3>
        <div class="kv">
          <${Figure} id="metric-start-count" label="Starts" value=${st.count} shown=${String(st.count)} />
          <${Figure} id="metric-start-p50" label="p50" value=${st.p50} shown=${secs(st.p50)} />
          <${Figure} id="metric-start-p90" label="p90" value=${st.p90} shown=${secs(st.p90)} />
          <${Figure} id="metric-start-p99" label="p99" value=${st.p99} shown=${secs(st.p99)} />
        </div>
        <${StartChart} points=${points} />
      </div>
      <div>
        <h3>Shims and pulls</h3>
        <div class="kv">
          <${Figure} id="metric-shims" label="Running shims" value=${m.shims} shown=${m.shims === undefined ? '—' : String(m.shims)} />
          <${Figure} id="metric-shim-memory" label="Shim memory" value=${m.shimMemory} shown=${bytes(m.shimMemory)} />
          <${Figure} id="metric-pull-bytes" label="Pulled" value=${m.pulled} shown=${bytes(m.pulled)} />
        </div>
      </div>
      <div>
        <h3>API requests <span class="muted small">(${m.requests} in all)</span></h3>
        <table data-testid="metric-routes">
          <thead><tr><th>Route</th><th class="num">Requests</th><th class="num">p50</th></tr></thead>
          <tbody>${m.routes.map((r) => html`<tr><td>${r.route}</td><td class="num">${r.count}</td><td class="num">${secs(r.p50)}</td></tr>`)}</tbody>
        </table>
      </div>
    </div>
  </section>`;
}
