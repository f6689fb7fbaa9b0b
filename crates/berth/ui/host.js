// The host: `info`, berth's own metrics, `system df` as bars, the last
// hour of events then the live stream.
import { html, useState, useEffect } from './lib.js';
import { getJSON, streamJSON, q } from './api.js';
import { ready, bytes } from './util.js';
import { BerthMetrics } from './metrics.js';

function DfChart({ df }) {
  const sum = (xs, f) => (xs || []).reduce((n, x) => n + (f(x) || 0), 0);
  const rows = [
    ['Images', sum(df.Images, (i) => i.Size), (df.Images || []).length],
    ['Containers', sum(df.Containers, (c) => c.SizeRw), (df.Containers || []).length],
    ['Volumes', sum(df.Volumes, (v) => v.UsageData && v.UsageData.Size > 0 ? v.UsageData.Size : 0), (df.Volumes || []).length],
    ['Build cache', sum(df.BuildCache, (b) => b.Size), (df.BuildCache || []).length],
  ];
  const max = Math.max(1, ...rows.map((r) => r[1]));
  return html`<svg data-testid="df-chart" role="img" aria-label="Disk usage" width="520" height=${rows.length * 30 + 10}>
    ${rows.map(([label, size, n], i) => html`<g data-kind=${label} transform=${`translate(0,${i * 30 + 5})`}>
      <text x="0" y="16">${label} (${n})</text>
      <rect class="bar" x="120" y="4" height="16" width=${Math.max(1, (300 * size) / max)} />
      <text x=${128 + (300 * size) / max} y="16">${bytes(size)}</text></g>`)}
  </svg>`;
}

export function HostPage() {
  const [info, setInfo] = useState(null);
  const [df, setDf] = useState(null);
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ac = new AbortController();
    getJSON('/info', ac.signal).then(setInfo).catch((e) => { if (!ac.signal.aborted) { setError(e); setInfo({}); } });
    getJSON('/system/df', ac.signal).then(setDf).catch(() => setDf({}));
    const now = Math.floor(Date.now() / 1000);
    let list = [];
    const push = (ev) => { list = [ev, ...list].slice(0, 300); setEvents(list); };
    streamJSON('/events' + q({ since: now - 3600 }), push, ac.signal, () => {});
    return () => ac.abort();
  }, []);
  useEffect(() => { if (info) ready(); }, [info !== null]);
  if (!info) return html`<section class="page"><h1>Host</h1><p class="muted">Loading…</p></section>`;
  const facts = [
    ['Name', info.Name], ['Server version', info.ServerVersion], ['OS', info.OperatingSystem], ['Kernel', info.KernelVersion],
    ['CPUs', info.NCPU], ['Memory', bytes(info.MemTotal)], ['Storage driver', info.Driver], ['Cgroup', `${info.CgroupDriver || ''} v${info.CgroupVersion || ''}`],
    ['Containers', `${info.Containers} (${info.ContainersRunning} running, ${info.ContainersPaused} paused, ${info.ContainersStopped} stopped)`],
    ['Images', info.Images], ['Data root', info.DockerRootDir], ['Runtimes', Object.keys(info.Runtimes || {}).join(', ')],
  ];
  return html`<section class="page">
    <h1>Host</h1>
    ${error ? html`<p class="error" role="alert">${error.message}</p>` : null}
    <div class="kv" data-testid="host-info">${facts.map(([k, v]) => html`<div class="muted">${k}</div><div>${v === undefined ? '—' : String(v)}</div>`)}</div>
    <${BerthMetrics} />
    <h2>Disk usage</h2>
    ${df ? html`<${DfChart} df=${df} />` : html`<p class="muted">Loading…</p>`}
    <h2>Events <span class="muted small">(last hour, live)</span></h2>
    <ol class="timeline" data-testid="event-timeline" reversed>
      ${events.map((e) => html`<li>${new Date((e.timeNano ? e.timeNano / 1e6 : e.time * 1000)).toLocaleTimeString()} ${e.Type} ${e.Action} ${(e.Actor && e.Actor.Attributes && e.Actor.Attributes.name) || (e.Actor && e.Actor.ID ? e.Actor.ID.slice(0, 12) : '')}</li>`)}
    </ol>
  </section>`;
}
