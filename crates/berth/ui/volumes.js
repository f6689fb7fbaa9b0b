// Volumes: size (from `system/df`), the containers using each, prune.
import { html, useState, useEffect } from './lib.js';
import { getJSON, call, post } from './api.js';
import { ready, bytes } from './util.js';
import { Confirm, ErrorBar } from './dialog.js';

export function VolumesPage() {
  const [vols, setVols] = useState(null);
  const [sizes, setSizes] = useState(new Map());
  const [users, setUsers] = useState(new Map());
  const [confirm, setConfirm] = useState(null);
  const [error, setError] = useState(null);
  const refresh = async () => {
    try {
      const [v, cs] = await Promise.all([getJSON('/volumes'), getJSON('/containers/json?all=1')]);
      const u = new Map();
      for (const c of cs) for (const m of c.Mounts || []) if (m.Type === 'volume') {
        if (!u.has(m.Name)) u.set(m.Name, []);
        u.get(m.Name).push(c);
      }
      setUsers(u);
      setVols((v.Volumes || []).sort((a, b) => a.Name.localeCompare(b.Name)));
    } catch (e) { setError(e); setVols([]); }
    // Sizes are slower (the daemon walks the volumes): after the list.
    getJSON('/system/df?type=volume').then((df) => {
      setSizes(new Map((df.Volumes || []).map((v) => [v.Name, v.UsageData ? v.UsageData.Size : -1])));
    }).catch(() => {});
  };
  useEffect(() => { refresh(); }, []);
  useEffect(() => { if (vols) ready(); }, [vols !== null]);
  if (!vols) return html`<section class="page"><h1>Volumes</h1><p class="muted">Loading…</p></section>`;
  return html`<section class="page">
    <div class="toolbar"><h1>Volumes <span class="muted small">${vols.length}</span></h1>
      <button type="button" data-action="prune-volumes" onClick=${() => setConfirm({ text: 'Remove all unused anonymous volumes?', go: () => post('/volumes/prune').then(refresh) })}>Prune</button></div>
    <${ErrorBar} error=${error} onClose=${() => setError(null)} />
    <table><thead><tr><th>Name</th><th>Driver</th><th class="num">Size</th><th>Used by</th><th>Actions</th></tr></thead>
    <tbody>${vols.map((v) => {
      const us = users.get(v.Name) || [];
      const size = sizes.get(v.Name);
      return html`<tr data-testid="volume-row" data-name=${v.Name}>
        <td class="ellipsis" title=${v.Name}>${v.Name}</td><td>${v.Driver}</td>
        <td class="num">${size === undefined || size < 0 ? '—' : bytes(size)}</td>
        <td class="small">${us.length ? us.map((c) => html`<a href=${'#/containers/' + c.Id}>${(c.Names[0] || '').replace(/^\//, '')}</a> `) : html`<span class="muted">none</span>`}</td>
        <td><button type="button" data-action="remove" onClick=${() => setConfirm({ text: `Remove volume ${v.Name}?`, go: () => call('DELETE', `/volumes/${encodeURIComponent(v.Name)}`).then(refresh) })}>remove</button></td>
      </tr>`;
    })}</tbody></table>
    ${confirm ? html`<${Confirm} text=${confirm.text} onCancel=${() => setConfirm(null)}
      onOk=${() => { const g = confirm.go; setConfirm(null); g().catch(setError); }} />` : null}
  </section>`;
}
