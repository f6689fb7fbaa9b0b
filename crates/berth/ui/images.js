// Images: size, tags, layers (history), the containers using each; pull
// with per-layer progress from the JSON progress stream; tag, remove, prune.
import { html, useState, useEffect } from './lib.js';
import { getJSON, call, post, readJSONLines, q } from './api.js';
import { ready, bytes, short, ago } from './util.js';
import { Confirm, ErrorBar } from './dialog.js';

// `name[:tag]` (a registry's `host:port/` is not a tag; `@digest` passes).
export function splitRef(ref) {
  ref = ref.trim();
  if (ref.includes('@')) return { fromImage: ref };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { fromImage: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { fromImage: ref, tag: 'latest' };
}

function Pull({ onDone }) {
  const [ref, setRef] = useState('');
  const [layers, setLayers] = useState(new Map());
  const [status, setStatus] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    if (!ref.trim() || busy) return;
    setBusy(true);
    const map = new Map();
    setLayers(new Map());
    setStatus({ text: 'Pulling ' + ref.trim() + '…', error: false });
    let last = null, err = null;
    try {
      const r = await call('POST', '/images/create' + q(splitRef(ref)));
      await readJSONLines(r, (m) => {
        if (m.error || m.errorDetail) { err = m.error || m.errorDetail.message; return; }
        if (m.id && m.status && !/^Pulling from /.test(m.status)) {
          map.set(m.id, m);
          setLayers(new Map(map));
        } else if (m.status) {
          last = m.id && /^Pulling from /.test(m.status) ? `${m.id}: ${m.status}` : m.status;
          setStatus({ text: last, error: false });
        }
      });
      if (err) setStatus({ text: err, error: true });
      else setStatus({ text: last || 'Done', error: false });
      onDone();
    } catch (x) {
      setStatus({ text: x.message, error: true });
    }
    setBusy(false);
  };
  return html`<form class="toolbar" onSubmit=${submit} aria-label="Pull an image">
      <input data-testid="pull-input" placeholder="image[:tag], e.g. busybox:latest" aria-label="Image to pull" value=${ref} onInput=${(e) => setRef(e.target.value)} size="40" />
      <button type="submit" data-testid="pull-submit" disabled=${busy}>Pull</button>
    </form>
    <div data-testid="pull-progress">
      ${[...layers.values()].map((l) => {
        const d = l.progressDetail || {};
        const pct = d.total ? Math.min(100, (100 * d.current) / d.total) : (/complete|exists/i.test(l.status) ? 100 : 0);
        return html`<div data-testid="pull-layer" data-layer=${l.id} class="small">
          <code>${l.id}</code> <span class="progress" role="progressbar" aria-valuenow=${Math.round(pct)} aria-valuemin="0" aria-valuemax="100"><span style=${`width:${pct}%`}></span></span>
          ${' '}${l.status} ${d.total ? `${bytes(d.current)} / ${bytes(d.total)}` : ''}</div>`;
      })}
      ${status ? html`<div data-testid="pull-status" data-error=${status.error ? '1' : undefined} class=${status.error ? 'error' : 'muted'}>${status.text}</div>` : null}
    </div>`;
}

function History({ id }) {
  const [h, setH] = useState(null);
  useEffect(() => { getJSON(`/images/${id}/history`).then(setH).catch((e) => setH({ error: e.message })); }, [id]);
  if (!h) return html`<p class="muted">Loading…</p>`;
  if (h.error) return html`<p class="error">${h.error}</p>`;
  return html`<table class="small" data-testid="image-history"><tbody>${h.map((l) => html`<tr>
    <td class="num">${bytes(l.Size)}</td><td class="ellipsis" title=${l.CreatedBy}>${l.CreatedBy}</td><td>${l.Created ? ago(l.Created) : ''}</td></tr>`)}</tbody></table>`;
}

export function ImagesPage() {
  const [images, setImages] = useState(null);
  const [users, setUsers] = useState(new Map());
  const [open, setOpen] = useState(null);
  const [confirm, setConfirm] = useState(null);
  const [error, setError] = useState(null);
  const refresh = async () => {
    try {
      const [imgs, cs] = await Promise.all([getJSON('/images/json'), getJSON('/containers/json?all=1')]);
      const u = new Map();
      for (const c of cs) { if (!u.has(c.ImageID)) u.set(c.ImageID, []); u.get(c.ImageID).push(c); }
      setUsers(u);
      setImages(imgs.sort((a, b) => b.Created - a.Created));
    } catch (e) { setError(e); setImages([]); }
  };
  useEffect(() => { refresh(); }, []);
  useEffect(() => { if (images) ready(); }, [images !== null]);
  const ask = (text, go) => setConfirm({ text, go });
  const tag = (img) => {
    const to = prompt('New tag (repository[:tag]) for ' + short(img.Id));
    if (!to) return;
    const { fromImage, tag: t } = splitRef(to);
    post(`/images/${img.Id}/tag` + q({ repo: fromImage, tag: t })).then(refresh).catch(setError);
  };
  if (!images) return html`<section class="page"><h1>Images</h1><p class="muted">Loading…</p></section>`;
  const total = images.reduce((n, i) => n + (i.Size || 0), 0);
  return html`<section class="page">
    <div class="toolbar"><h1>Images <span class="muted small">${images.length} · ${bytes(total)}</span></h1>
      <button type="button" data-action="prune-images" onClick=${() => ask('Remove all dangling images?', () => post('/images/prune').then(refresh))}>Prune</button></div>
    <${Pull} onDone=${refresh} />
    <${ErrorBar} error=${error} onClose=${() => setError(null)} />
    <table><thead><tr><th>Tags</th><th>ID</th><th class="num">Size</th><th>Created</th><th>Used by</th><th>Actions</th></tr></thead>
    <tbody>${images.map((img) => {
      const us = users.get(img.Id) || [];
      return html`<tr data-testid="image-row" data-id=${img.Id}>
        <td>${(img.RepoTags && img.RepoTags.length ? img.RepoTags : ['<none>']).map((t) => html`<div>${t}</div>`)}</td>
        <td><code>${short(img.Id)}</code></td>
        <td class="num">${bytes(img.Size)}</td>
        <td class="small">${ago(img.Created)}</td>
        <td class="small">${us.length ? us.map((c) => html`<a href=${'#/containers/' + c.Id}>${(c.Names[0] || '').replace(/^\//, '')}</a> `) : html`<span class="muted">none</span>`}</td>
        <td class="actions">
          <button type="button" aria-expanded=${open === img.Id ? 'true' : 'false'} onClick=${() => setOpen(open === img.Id ? null : img.Id)}>layers</button>
          <button type="button" onClick=${() => tag(img)}>tag</button>
          <button type="button" data-action="remove" onClick=${() => ask(`Remove image ${short(img.Id)}?`, () => call('DELETE', `/images/${img.Id}`).then(refresh))}>remove</button>
          ${open === img.Id ? html`<${History} id=${img.Id} />` : null}
        </td></tr>`;
    })}</tbody></table>
    ${confirm ? html`<${Confirm} text=${confirm.text} onCancel=${() => setConfirm(null)}
      onOk=${() => { const g = confirm.go; setConfirm(null); g().catch(setError); }} />` : null}
  </section>`;
}
