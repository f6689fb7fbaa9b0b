// Browsing a container's files through the archive API: a directory is
// listed from the tar headers of `archive?path=<dir>` (read as it streams,
// data skipped, stopped after 64 MB); a file downloads as its bytes taken
// out of `archive?path=<file>`.
import { html, useEffect, useState } from './lib.js';
import { call, readStream, q } from './api.js';
import { bytes } from './util.js';
import { TarReader } from './tar.js';

const LIMIT = 64 << 20;

const join = (dir, name) => (dir === '/' ? '/' + name : dir + '/' + name);
const parent = (p) => (p.lastIndexOf('/') <= 0 ? '/' : p.slice(0, p.lastIndexOf('/')));
const base = (p) => p.slice(p.lastIndexOf('/') + 1);

// The entry's path below `dir`, as components: the archive names the root
// `/…` and any other directory `<basename>/…`.
function rel(dir, name) {
  let n = name.replace(/^\.?\//, '').replace(/\/$/, '');
  const parts = n ? n.split('/') : [];
  if (dir !== '/' && parts[0] === base(dir)) parts.shift();
  return parts;
}

export function FilesTab({ id }) {
  const [dir, setDir] = useState('/');
  const [entries, setEntries] = useState(null);
  const [partial, setPartial] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ac = new AbortController();
    setEntries(null); setError(null); setPartial(false);
    const found = new Map();
    let read = 0;
    const tar = new TarReader((e) => {
      const parts = rel(dir, e.name);
      if (parts.length === 0) return false;
      const name = parts[0];
      const isDir = parts.length > 1 || e.type === '5';
      if (!found.has(name) || parts.length === 1) {
        found.set(name, { name, dir: isDir, link: e.type === '2' ? e.linkname : '', size: parts.length === 1 ? e.size : 0, mtime: e.mtime });
      }
      return false;
    });
    call('GET', `/containers/${id}/archive` + q({ path: dir }), { signal: ac.signal })
      .then((r) => readStream(r, (c) => {
        read += c.length;
        tar.feed(c);
        if (read > LIMIT || tar.ended) { setPartial(read > LIMIT); ac.abort(); }
      }))
      .catch((e) => { if (!ac.signal.aborted) setError(e); })
      .finally(() => { if (!error) setEntries([...found.values()].sort((a, b) => (b.dir - a.dir) || a.name.localeCompare(b.name))); });
    return () => ac.abort();
  }, [id, dir]);

  const download = async (path) => {
    try {
      const r = await call('GET', `/containers/${id}/archive` + q({ path }));
      let blob = null;
      const tar = new TarReader(() => true, (e, data) => { if (!blob && e.type !== '5') blob = new Blob([data]); });
      await readStream(r, (c) => tar.feed(c));
      if (!blob) throw new Error('nothing to download');
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = base(path);
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) { setError(e); }
  };

  return html`<div data-testid="files" data-dir=${dir}>
    <div class="toolbar"><strong>${dir}</strong>
      ${dir !== '/' ? html`<button type="button" data-testid="files-up" onClick=${() => setDir(parent(dir))}>↑ up</button>` : null}
      ${partial ? html`<span class="muted small">(listing cut at 64 MB of archive)</span>` : null}</div>
    ${error ? html`<p class="error" role="alert">${error.message}</p>` : null}
    ${entries === null ? html`<p class="muted">Loading…</p>` : html`<table><tbody>
      ${entries.map((e) => html`<tr data-testid="file-entry" data-path=${join(dir, e.name)} data-dir=${e.dir ? '1' : '0'}>
        <td>${e.dir
          ? html`<button type="button" class="link" onClick=${() => setDir(join(dir, e.name))}>📁 ${e.name}/</button>`
          : html`<span>${e.name}</span>${e.link ? html` <span class="muted">→ ${e.link}</span>` : null}`}</td>
        <td class="num small">${e.dir ? '' : bytes(e.size)}</td>
        <td>${e.dir || e.link ? null : html`<button type="button" aria-label=${'Download ' + e.name} onClick=${() => download(join(dir, e.name))}>download</button>`}</td>
      </tr>`)}</tbody></table>`}
  </div>`;
}
