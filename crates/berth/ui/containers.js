// The containers list: one `containers/json?all=1`, then the events stream
// (each event re-fetches just the containers it names, batched). CPU and
// memory come from one stats stream per row in view (at most 50),
// opened and aborted as rows scroll in and out.
import { html, Component, useState, useEffect, useRef, useMemo } from './lib.js';
import { getJSON, call, readJSONLines, streamStats, q } from './api.js';
import { ready, cname, short, bytes, batch, cpuPercent, memUsed } from './util.js';
import { Confirm, ErrorBar } from './dialog.js';

const MAX_STREAMS = 50;
const FIRST_SLICE = 120;
const SLICE = 250;
const DESTRUCTIVE = new Set(['stop', 'kill', 'remove', 'restart']);

// Live stats of the rows in view: id → latest {cpu, mem}; cells subscribe.
// One `/api/stats` response carries the visible running rows (at most 50);
// it is replaced (debounced) when that set changes.
class LiveStats {
  constructor() { this.values = new Map(); this.subs = new Map(); this.visible = new Set(); this.key = ''; this.ac = null; this.timer = null; }
  sub(id, fn) {
    if (!this.subs.has(id)) this.subs.set(id, new Set());
    this.subs.get(id).add(fn);
    return () => this.subs.get(id).delete(fn);
  }
  set(id, v) { this.values.set(id, v); for (const f of this.subs.get(id) || []) f(v); }
  reconcile(running) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.apply(running), 200);
  }
  apply(running) {
    const want = [...this.visible].filter((id) => running.has(id)).sort().slice(0, MAX_STREAMS);
    const key = want.join(',');
    if (key === this.key) return;
    this.key = key;
    if (this.ac) this.ac.abort();
    this.ac = null;
    if (!want.length) return;
    this.ac = new AbortController();
    streamStats(want, (id, s) => this.set(id, { cpu: cpuPercent(s), mem: memUsed(s) }), this.ac.signal);
  }
  close() { clearTimeout(this.timer); if (this.ac) this.ac.abort(); this.ac = null; this.key = ''; }
}

function StatCells({ live, id, running }) {
  const [v, setV] = useState(live.values.get(id));
  useEffect(() => live.sub(id, setV), [id]);
  if (!running || !v) return html`<td class="num" data-col="cpu">—</td><td class="num" data-col="mem">—</td>`;
  return html`<td class="num" data-col="cpu">${v.cpu.toFixed(1)} %</td><td class="num" data-col="mem">${bytes(v.mem)}</td>`;
}

function actionsFor(state) {
  switch (state) {
    case 'running': return ['stop', 'restart', 'pause', 'kill', 'remove'];
    case 'paused': return ['unpause', 'stop', 'kill', 'remove'];
    case 'restarting': return ['stop', 'kill', 'remove'];
    default: return ['start', 'remove'];
  }
}

export async function act(c, action) {
  const id = c.Id;
  if (action === 'remove') {
    const force = ['running', 'paused', 'restarting'].includes(c.State);
    return call('DELETE', `/containers/${id}${force ? '?force=1' : ''}`);
  }
  return call('POST', `/containers/${id}/${action}`);
}

function ports(c) {
  const seen = new Set();
  const out = [];
  for (const p of c.Ports || []) {
    if (!p.PublicPort) continue;
    const k = `${p.PublicPort}/${p.Type}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const label = `${p.PublicPort}→${p.PrivatePort}/${p.Type}`;
    out.push(p.Type === 'tcp'
      ? html`<a href=${`http://${location.hostname}:${p.PublicPort}/`} target="_blank" rel="noopener noreferrer">${label}</a> `
      : html`<span>${label} </span>`);
  }
  return out;
}

class Row extends Component {
  shouldComponentUpdate(n) { return n.c !== this.props.c; }
  componentDidMount() { this.props.io.observe(this.el); }
  componentWillUnmount() {
    this.props.io.unobserve(this.el);
    this.props.live.visible.delete(this.props.c.Id);
  }
  render({ c, live, ask }) {
    const name = cname(c);
    const running = c.State === 'running';
    return html`<tr data-testid="container-row" data-id=${c.Id} data-name=${name} ref=${(el) => { if (el) this.el = el; }}>
      <td><a data-testid="container-link" href=${'#/containers/' + c.Id}>${name}</a>
        <div class="muted small">${short(c.Id)}</div></td>
      <td><span class=${'state ' + c.State} data-testid="container-state">${c.State}</span></td>
      <td class="small">${c.Status}</td>
      <td class="small ellipsis" title=${c.Image}>${c.Image}</td>
      <td class="small">${ports(c)}</td>
      <${StatCells} live=${live} id=${c.Id} running=${running} />
      <td class="actions">${actionsFor(c.State).map((a) => html`<button type="button" data-action=${a} onClick=${() => ask(c, a)}>${a}</button>`)}</td>
    </tr>`;
  }
}

const PROJECT = 'com.docker.compose.project';

// Newest first, then by name (plain comparison: localeCompare over a
// thousand rows costs more than the whole render).
function byAge(a, b) {
  if (a.Created !== b.Created) return b.Created - a.Created;
  const x = a.Names && a.Names[0], y = b.Names && b.Names[0];
  return x < y ? -1 : x > y ? 1 : 0;
}

export function ContainersPage() {
  const [list, setList] = useState(null);
  const [search, setSearch] = useState('');
  const [stateFilter, setStateFilter] = useState('all');
  const [confirm, setConfirm] = useState(null);
  const [error, setError] = useState(null);
  // Rows render in slices (the first at once, the rest a frame apart), so
  // a thousand containers neither delay the first paint nor freeze input.
  const [limit, setLimit] = useState(FIRST_SLICE);
  const [folded, setFolded] = useState(() => new Set());
  const fold = (p) => setFolded((f) => { const n = new Set(f); if (n.has(p)) n.delete(p); else n.add(p); return n; });
  const live = useMemo(() => new LiveStats(), []);
  const runningRef = useRef(new Set());
  const io = useMemo(() => new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.id;
      if (e.isIntersecting) live.visible.add(id); else live.visible.delete(id);
    }
    live.reconcile(runningRef.current);
  }), []);

  useEffect(() => {
    const ac = new AbortController();
    let map = new Map();
    const pending = new Set();
    // One re-fetch at a time, so an older answer never lands last.
    let chain = Promise.resolve();
    const refetch = batch(() => { chain = chain.then(update); }, 150);
    const update = async () => {
      const ids = [...pending];
      pending.clear();
      if (!ids.length) return;
      try {
        const got = await getJSON('/containers/json' + q({ all: 1, filters: { id: ids } }), ac.signal);
        const byId = new Map(got.map((c) => [c.Id, c]));
        for (const id of ids) { if (byId.has(id)) map.set(id, byId.get(id)); else map.delete(id); }
        setList(new Map(map));
      } catch (e) { if (!ac.signal.aborted) setError(e); }
    };
    // Events first, so nothing between the list and the stream is missed;
    // if the stream ends (the daemon restarted), both again a moment later.
    let retry = null;
    const again = (ms) => {
      if (retry === null && !ac.signal.aborted) retry = setTimeout(() => { retry = null; connect(); }, ms);
    };
    const connect = () => {
      call('GET', '/events' + q({ filters: { type: ['container'] } }), { signal: ac.signal })
        .then((r) => {
          readJSONLines(r, (ev) => {
            const action = ev.Action || ev.status || '';
            if (action.startsWith('exec_') || action.startsWith('archive') || action === 'top') return;
            const id = (ev.Actor && ev.Actor.ID) || ev.id;
            if (id) { pending.add(id); refetch(); }
          }).catch(() => {}).finally(() => again(2000));
          // In the re-fetch queue: an event's answer never lands before it.
          const whole = chain.then(() => getJSON('/containers/json?all=1', ac.signal)).then((cs) => {
            map = new Map(cs.map((c) => [c.Id, c]));
            setList(new Map(map));
          });
          chain = whole.catch(() => {});
          return whole;
        })
        .catch((e) => {
          if (ac.signal.aborted) return;
          setError(e);
          setList((l) => l || new Map());
          again(5000);
        });
    };
    connect();
    return () => { ac.abort(); clearTimeout(retry); live.close(); io.disconnect(); };
  }, []);

  useEffect(() => {
    if (list === null) return;
    runningRef.current = new Set([...list.values()].filter((c) => c.State === 'running').map((c) => c.Id));
    live.reconcile(runningRef.current);
    ready();
  }, [list]);

  const ask = (c, action) => {
    if (!DESTRUCTIVE.has(action)) { act(c, action).catch(setError); return; }
    setConfirm({ c, action });
  };

  // `/` jumps to the search box, as on many list pages.
  useEffect(() => {
    const slash = (e) => {
      const t = e.target;
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable))) return;
      const box = document.querySelector('[data-testid="container-search"]');
      if (box) { box.focus(); e.preventDefault(); }
    };
    addEventListener('keydown', slash);
    return () => removeEventListener('keydown', slash);
  }, []);

  useEffect(() => {
    if (list === null || limit >= list.size) return undefined;
    const t = requestAnimationFrame(() => setLimit((l) => l + SLICE));
    return () => cancelAnimationFrame(t);
  }, [list, limit]);

  if (list === null) return html`<p class="muted">Loading containers…</p>`;

  const needle = search.trim().toLowerCase();
  const rows = [...list.values()]
    .filter((c) => stateFilter === 'all' || c.State === stateFilter)
    .filter((c) => !needle || cname(c).toLowerCase().includes(needle) || c.Image.toLowerCase().includes(needle) || c.Id.startsWith(needle))
    .sort(byAge)
    .slice(0, limit);
  const groups = new Map();
  const loose = [];
  for (const c of rows) {
    const p = c.Labels && c.Labels[PROJECT];
    if (p) { if (!groups.has(p)) groups.set(p, []); groups.get(p).push(c); } else loose.push(c);
  }
  const row = (c) => html`<${Row} key=${c.Id} c=${c} live=${live} io=${io} ask=${ask} />`;
  const keys = (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const links = [...e.currentTarget.querySelectorAll('a[data-testid="container-link"]')];
    const i = links.indexOf(document.activeElement);
    const j = i < 0 ? 0 : Math.min(links.length - 1, Math.max(0, i + (e.key === 'ArrowDown' ? 1 : -1)));
    if (links[j]) { links[j].focus(); e.preventDefault(); }
  };
  const counts = {};
  for (const c of list.values()) counts[c.State] = (counts[c.State] || 0) + 1;

  return html`<section class="page">
    <div class="toolbar">
      <h1>Containers <span class="muted small">${list.size} · ${counts.running || 0} running</span></h1>
      <input type="search" data-testid="container-search" placeholder="Search name, image or ID  ( / )" aria-label="Search containers"
        value=${search} onInput=${(e) => setSearch(e.target.value)} />
      <select aria-label="Filter by state" data-testid="container-state-filter" value=${stateFilter} onChange=${(e) => setStateFilter(e.target.value)}>
        ${['all', 'running', 'paused', 'exited', 'created', 'restarting', 'dead'].map((s) => html`<option value=${s}>${s}${s !== 'all' && counts[s] ? ` (${counts[s]})` : ''}</option>`)}
      </select>
    </div>
    <${ErrorBar} error=${error} onClose=${() => setError(null)} />
    <table class="list" onKeyDown=${keys}>
      <colgroup><col class="c-name" /><col class="c-state" /><col class="c-status" /><col class="c-image" /><col class="c-ports" /><col class="c-cpu" /><col class="c-mem" /><col class="c-actions" /></colgroup>
      <thead><tr><th>Name</th><th>State</th><th>Status</th><th>Image</th><th>Ports</th><th class="num">CPU</th><th class="num">Memory</th><th>Actions</th></tr></thead>
      ${[...groups.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([p, cs]) => html`<tbody key=${'p:' + p} data-testid="compose-group" data-project=${p}>
        <tr class="group"><th colspan="8" scope="rowgroup">
          <button type="button" class="link" aria-expanded=${folded.has(p) ? 'false' : 'true'} data-testid="compose-toggle" onClick=${() => fold(p)}>${folded.has(p) ? '▸' : '▾'} ${p}</button>
          <span class="muted small"> compose project · ${cs.length} · ${cs.filter((c) => c.State === 'running').length} running</span></th></tr>
        ${folded.has(p) ? null : cs.map(row)}
      </tbody>`)}
      <tbody key="loose">${loose.map(row)}</tbody>
    </table>
    ${rows.length === 0 ? html`<p class="muted">No containers${needle || stateFilter !== 'all' ? ' match' : ''}.</p>` : null}
    ${confirm ? html`<${Confirm} text=${`${confirm.action} ${cname(confirm.c)}?`}
      onCancel=${() => setConfirm(null)}
      onOk=${() => { const { c, action } = confirm; setConfirm(null); act(c, action).catch(setError); }} />` : null}
  </section>`;
}
