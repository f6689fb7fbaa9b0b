// A container's live charts: one `stats?stream=1` for the page, the last
// five minutes of CPU, memory, network and block I/O in uPlot charts (each
// chart's `data-points` says how many samples it plots).
import { html, useEffect, useRef, useState } from './lib.js';
import { call, readJSONLines } from './api.js';
import { load, cpuPercent, memUsed, bytes, clock } from './util.js';

const WINDOW = 300;

function sums(s) {
  let rx = 0, tx = 0, rd = 0, wr = 0;
  for (const n of Object.values(s.networks || {})) { rx += n.rx_bytes || 0; tx += n.tx_bytes || 0; }
  for (const e of ((s.blkio_stats || {}).io_service_bytes_recursive) || []) {
    const op = (e.op || '').toLowerCase();
    if (op === 'read') rd += e.value || 0;
    if (op === 'write') wr += e.value || 0;
  }
  return { rx, tx, rd, wr };
}

const CHARTS = [
  { key: 'cpu', title: 'CPU %', series: ['CPU %'], fmt: (v) => v.toFixed(v < 1 ? 2 : 1) + ' %', tick: (v) => +v.toPrecision(6) + ' %', min: 1 },
  { key: 'mem', title: 'Memory', series: ['used'], fmt: bytes, min: 1e6 },
  { key: 'net', title: 'Network (per second)', series: ['rx', 'tx'], fmt: bytes, min: 1000 },
  { key: 'blkio', title: 'Block I/O (per second)', series: ['read', 'write'], fmt: bytes, min: 1000 },
];
const COLORS = ['#1a73e8', '#e8711a'];

export function StatsTab({ id, running }) {
  const boxes = useRef({});
  const [note, setNote] = useState(running ? '' : 'The container is not running.');
  useEffect(() => {
    const ac = new AbortController();
    const data = { t: [], cpu: [], mem: [], rx: [], tx: [], rd: [], wr: [] };
    const plots = {};
    let prev = null;
    let ro = null;
    (async () => {
      await Promise.all([load('vendor/uplot/uPlot.min.css'), load('vendor/uplot/uPlot.iife.min.js')]);
      if (ac.signal.aborted) return;
      // Canvas knows no CSS variables: the theme's colours, read once.
      const fg = getComputedStyle(document.body).color;
      const grid = { stroke: getComputedStyle(document.documentElement).getPropertyValue('--line').trim() || '#ccc', width: 1 };
      for (const c of CHARTS) {
        const el = boxes.current[c.key];
        const width = Math.max(300, el.clientWidth - 16);
        plots[c.key] = new window.uPlot({
          width, height: 180,
          series: [{}, ...c.series.map((label, i) => ({ label, stroke: COLORS[i], width: 1.5, value: (u, v) => (v == null ? '—' : c.fmt(v)) }))],
          axes: [{ stroke: fg, grid, ticks: grid, space: 90, values: (u, vs) => vs.map(clock) }, { stroke: fg, grid, ticks: grid, size: 70, values: (u, vs) => vs.map(c.tick || c.fmt) }],
          legend: { show: false },
          scales: { x: { time: true, range: (u, lo, hi) => (hi == null ? [lo, hi] : [Math.min(lo, hi - 60), hi]) }, y: { range: (u, lo, hi) => [0, Math.max(c.min || 1, (hi || 0) * 1.1)] } },
        }, [[]].concat(c.series.map(() => [])), el.querySelector('.plot'));
      }
      ro = new ResizeObserver(() => {
        for (const c of CHARTS) if (plots[c.key]) plots[c.key].setSize({ width: Math.max(300, boxes.current[c.key].clientWidth - 16), height: 180 });
      });
      for (const c of CHARTS) ro.observe(boxes.current[c.key]);
      const r = await call('GET', `/containers/${id}/stats?stream=1`, { signal: ac.signal });
      await readJSONLines(r, (s) => {
        const t = Date.parse(s.read) / 1000 || Date.now() / 1000;
        const now = sums(s);
        const dt = prev ? Math.max(0.001, t - prev.t) : 0;
        data.t.push(t);
        data.cpu.push(cpuPercent(s));
        data.mem.push(memUsed(s));
        const rate = (k) => (prev && dt ? Math.max(0, (now[k] - prev[k]) / dt) : 0);
        data.rx.push(rate('rx')); data.tx.push(rate('tx')); data.rd.push(rate('rd')); data.wr.push(rate('wr'));
        prev = { t, ...now };
        while (data.t.length && data.t[0] < t - WINDOW) for (const k of Object.keys(data)) data[k].shift();
        plots.cpu.setData([data.t, data.cpu]);
        plots.mem.setData([data.t, data.mem]);
        plots.net.setData([data.t, data.rx, data.tx]);
        plots.blkio.setData([data.t, data.rd, data.wr]);
        const last = { cpu: [data.cpu], mem: [data.mem], net: [data.rx, data.tx], blkio: [data.rd, data.wr] };
        for (const c of CHARTS) {
          const box = boxes.current[c.key];
          box.setAttribute('data-points', String(data.t.length));
          const now = box.querySelector('h3 > .muted');
          if (now) now.textContent = ' now ' + last[c.key].map((a) => c.fmt(a[a.length - 1])).join(' / ');
        }
      });
    })().catch((e) => { if (!ac.signal.aborted) setNote(e.message); });
    return () => { ac.abort(); if (ro) ro.disconnect(); for (const p of Object.values(plots)) p.destroy(); };
  }, [id, running]);
  return html`<div>
    ${note ? html`<p class="muted">${note}</p>` : null}
    <div class="charts">${CHARTS.map((c) => html`<div class="chart" data-testid=${'chart-' + c.key} data-points="0" ref=${(el) => { if (el) boxes.current[c.key] = el; }}>
      <h3>${c.title}${c.series.length > 1 ? c.series.map((l, i) => html` <span class="key" style=${`color:${COLORS[i]}`}>■ ${l}</span>`) : null}
        <span class="muted small" data-testid=${'chart-' + c.key + '-now'}></span></h3><div class="plot"></div></div>`)}</div>
  </div>`;
}
