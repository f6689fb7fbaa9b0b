// Networks: a picture (networks in the left column, containers in the
// right, an edge per attachment labelled with its IPv4 address) and a table.
import { html, useState, useEffect } from './lib.js';
import { getJSON } from './api.js';
import { ready, short } from './util.js';

const ROW = 44, NW = 190, CW = 210, GAP = 260, PAD = 16;

function Graph({ nets, ctrs }) {
  const ids = [...ctrs.keys()].sort((a, b) => ctrs.get(a).name.localeCompare(ctrs.get(b).name));
  const cy = new Map(ids.map((id, i) => [id, PAD + i * ROW]));
  const height = PAD * 2 + Math.max(nets.length, ids.length, 1) * ROW;
  const x2 = PAD + NW + GAP;
  return html`<svg data-testid="network-graph" role="img" aria-label="Which containers sit on which network"
      viewBox=${`0 0 ${x2 + CW + PAD} ${height}`} width=${x2 + CW + PAD} height=${height}>
    ${nets.map((n, i) => Object.entries(n.Containers || {}).map(([id, e]) => {
      if (!cy.has(id)) return null;
      const y1 = PAD + i * ROW + 15, y2 = cy.get(id) + 15;
      const ip = (e.IPv4Address || '').split('/')[0];
      return html`<g data-testid="net-edge" data-network=${n.Name} data-id=${id}>
        <line class="edge" x1=${PAD + NW} y1=${y1} x2=${x2} y2=${y2} />
        <text class="halo" x=${x2 - 0.25 * GAP} y=${y1 + 0.75 * (y2 - y1) - 3} text-anchor="middle">${ip}</text></g>`;
    }))}
    ${nets.map((n, i) => html`<g class="netnode" data-testid="net-node" data-network=${n.Name} transform=${`translate(${PAD},${PAD + i * ROW})`}>
      <rect width=${NW} height="30" rx="6" /><text x="10" y="19">${n.Name} (${n.Driver})</text></g>`)}
    ${ids.map((id) => html`<g class="ctrnode" data-testid="ctr-node" data-id=${id} transform=${`translate(${x2},${cy.get(id)})`}>
      <rect width=${CW} height="30" rx="6" /><a href=${'#/containers/' + id}><text x="10" y="19">${ctrs.get(id).name}</text></a></g>`)}
  </svg>`;
}

export function NetworksPage() {
  const [nets, setNets] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ac = new AbortController();
    getJSON('/networks', ac.signal)
      .then((list) => Promise.all(list.map((n) => getJSON(`/networks/${n.Id}`, ac.signal).catch(() => n))))
      .then((full) => setNets(full.sort((a, b) => a.Name.localeCompare(b.Name))))
      .catch((e) => { if (!ac.signal.aborted) { setError(e); setNets([]); } });
    return () => ac.abort();
  }, []);
  useEffect(() => { if (nets) ready(); }, [nets !== null]);
  if (!nets) return html`<section class="page"><h1>Networks</h1><p class="muted">Loading…</p></section>`;
  const ctrs = new Map();
  for (const n of nets) for (const [id, e] of Object.entries(n.Containers || {})) ctrs.set(id, { name: e.Name || short(id) });
  return html`<section class="page">
    <div class="toolbar"><h1>Networks <span class="muted small">${nets.length}</span></h1></div>
    ${error ? html`<p class="error" role="alert">${error.message}</p>` : null}
    <div class="graph"><${Graph} nets=${nets} ctrs=${ctrs} /></div>
    <table><thead><tr><th>Name</th><th>Driver</th><th>Subnet</th><th>Gateway</th><th>Containers</th></tr></thead>
    <tbody>${nets.map((n) => {
      const cfg = ((n.IPAM || {}).Config || [])[0] || {};
      return html`<tr data-testid="network-row" data-name=${n.Name}><td>${n.Name}</td><td>${n.Driver}</td>
        <td>${cfg.Subnet || ''}</td><td>${cfg.Gateway || ''}</td>
        <td class="small">${Object.entries(n.Containers || {}).map(([id, e]) => html`<div><a href=${'#/containers/' + id}>${e.Name}</a> ${e.IPv4Address}</div>`)}</td></tr>`;
    })}</tbody></table>
  </section>`;
}
