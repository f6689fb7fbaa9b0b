// A container's page: its inspect data (refreshed on its events), the
// actions, and tabs; only the open tab holds streams.
import { html, useState, useEffect } from './lib.js';
import { getJSON, followJSON, q } from './api.js';
import { ready, short } from './util.js';
import { Confirm, ErrorBar } from './dialog.js';
import { act } from './containers.js';
import { StatsTab } from './stats.js';
import { LogsTab } from './logs.js';
import { TerminalTab } from './terminal.js';
import { FilesTab } from './files.js';

const TABS = ['stats', 'logs', 'terminal', 'inspect', 'top', 'diff', 'files'];
const DESTRUCTIVE = new Set(['stop', 'kill', 'remove', 'restart']);

function Tree({ value, name, open }) {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length === 0) return html`<div><span class="k">${name}</span>: ${Array.isArray(value) ? '[]' : '{}'}</div>`;
    return html`<details open=${open}><summary><span class="k">${name}</span> <span class="muted">${Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`}</span></summary>
      ${entries.map(([k, v]) => html`<${Tree} key=${k} name=${k} value=${v} open=${false} />`)}</details>`;
  }
  return html`<div><span class="k">${name}</span>: <span>${JSON.stringify(value)}</span></div>`;
}

function Loaded({ path, children }) {
  const [data, setData] = useState(undefined);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ac = new AbortController();
    getJSON(path, ac.signal).then((d) => setData(d === undefined ? null : d)).catch((e) => { if (!ac.signal.aborted) setError(e); });
    return () => ac.abort();
  }, [path]);
  if (error) return html`<p class="error" role="alert">${error.message}</p>`;
  if (data === undefined) return html`<p class="muted">Loading…</p>`;
  return children(data);
}

function TopTab({ id }) {
  return html`<div data-testid="top"><${Loaded} path=${`/containers/${id}/top`}>${(t) => html`<table>
    <thead><tr>${(t.Titles || []).map((x) => html`<th>${x}</th>`)}</tr></thead>
    <tbody>${(t.Processes || []).map((p) => html`<tr>${p.map((x) => html`<td class="small">${x}</td>`)}</tr>`)}</tbody>
  </table>`}<//></div>`;
}

const KIND = ['C', 'A', 'D'];
function DiffTab({ id }) {
  return html`<div data-testid="diff"><${Loaded} path=${`/containers/${id}/changes`}>${(d) => (d && d.length
    ? html`<ul class="tree">${d.map((c) => html`<li data-kind=${KIND[c.Kind]}><b>${KIND[c.Kind]}</b> ${c.Path}</li>`)}</ul>`
    : html`<p class="muted">No changes.</p>`)}<//></div>`;
}

export function ContainerPage({ arg, tab: first }) {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const [tab, showTab] = useState(TABS.includes(first) ? first : 'stats');
  // The open tab is in the address (a link to it works), without a reload.
  const setTab = (t) => { showTab(t); history.replaceState(null, '', `${location.search}#/containers/${arg}/${t}`); };
  const [confirm, setConfirm] = useState(null);
  useEffect(() => {
    const ac = new AbortController();
    const load = () => getJSON(`/containers/${encodeURIComponent(arg)}/json`, ac.signal)
      .then(setInfo).catch((e) => { if (!ac.signal.aborted) { setError(e); ready(); } });
    load();
    let opened = false;
    followJSON('/events' + q({ filters: { type: ['container'], container: [arg] } }), (ev) => {
      const a = ev.Action || '';
      if (!a.startsWith('exec_') && !a.startsWith('archive') && a !== 'top') load();
    }, ac.signal, () => { if (opened) load(); opened = true; });
    return () => ac.abort();
  }, [arg]);
  useEffect(() => { if (info) ready(); }, [info !== null]);
  if (!info) {
    return html`<section class="page" data-testid="container-page" data-id=${arg}>
      ${error ? html`<p class="error" role="alert">${error.message}</p>` : html`<p class="muted">Loading…</p>`}</section>`;
  }
  const id = info.Id;
  const st = info.State || {};
  const state = st.Status || (st.Running ? 'running' : 'exited');
  const c = { Id: id, State: state };
  const actions = state === 'running' ? ['stop', 'restart', 'pause', 'kill'] : state === 'paused' ? ['unpause', 'stop', 'kill'] : ['start'];
  const run = (a) => {
    const go = () => act(c, a).then(() => { if (a === 'remove') location.hash = '#/containers'; }).catch(setError);
    if (DESTRUCTIVE.has(a)) setConfirm({ a, go }); else go();
  };
  const tabKeys = (e) => {
    const i = TABS.indexOf(tab);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const n = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
      setTab(n);
      const b = e.currentTarget.querySelector(`[data-tab="${n}"]`);
      if (b) b.focus();
    }
  };
  return html`<section class="page" data-testid="container-page" data-id=${id}>
    <div class="toolbar">
      <h1>${info.Name.replace(/^\//, '')} <span class=${'state ' + state} data-testid="container-state">${state}</span>
        <span class="muted small"> ${short(id)} · ${info.Config.Image} · restarts ${info.RestartCount}${st.Health ? ' · ' + st.Health.Status : ''}</span></h1>
      <span class="actions">${[...actions, 'remove'].map((a) => html`<button type="button" data-action=${a} onClick=${() => run(a)}>${a}</button>`)}</span>
    </div>
    <${ErrorBar} error=${error} onClose=${() => setError(null)} />
    <div class="tabs" role="tablist" aria-label="Container views" onKeyDown=${tabKeys}>
      ${TABS.map((t) => html`<button type="button" role="tab" data-tab=${t} aria-selected=${t === tab ? 'true' : 'false'}
        tabindex=${t === tab ? 0 : -1} onClick=${() => setTab(t)}>${t}</button>`)}
    </div>
    <div role="tabpanel">
      ${tab === 'stats' ? html`<${StatsTab} id=${id} running=${state === 'running'} />` : null}
      ${tab === 'logs' ? html`<${LogsTab} id=${id} tty=${!!info.Config.Tty} name=${info.Name.replace(/^\//, '')} />` : null}
      ${tab === 'terminal' ? html`<${TerminalTab} id=${id} running=${state === 'running'} />` : null}
      ${tab === 'inspect' ? html`<div class="tree" data-testid="inspect"><${Tree} name="container" value=${info} open=${true} /></div>` : null}
      ${tab === 'top' ? html`<${TopTab} id=${id} />` : null}
      ${tab === 'diff' ? html`<${DiffTab} id=${id} />` : null}
      ${tab === 'files' ? html`<${FilesTab} id=${id} />` : null}
    </div>
    ${confirm ? html`<${Confirm} text=${`${confirm.a} ${info.Name.replace(/^\//, '')}?`}
      onCancel=${() => setConfirm(null)} onOk=${() => { const g = confirm.go; setConfirm(null); g(); }} />` : null}
  </section>`;
}
