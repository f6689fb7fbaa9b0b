// The Engine API through the dashboard's proxy: every call carries the
// token in X-Berth-Token (the page got it in its URL).
const token = new URLSearchParams(location.search).get('token') || '';
export const TOKEN = token;

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// One Engine API call; resolves to the Response, rejects with the daemon's
// message on an error status.
export async function call(method, path, { body, signal, headers } = {}) {
  const h = { 'X-Berth-Token': token, ...(headers || {}) };
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch('/api/engine' + path, { method, headers: h, body: payload, signal });
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { const j = await r.json(); if (j && j.message) msg = j.message; } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, msg);
  }
  return r;
}

// Many containers' stats in one response (`{"id","stats"}` lines): the
// browser's six connections per host could not carry one fetch per row.
export function streamStats(ids, onSample, signal) {
  const qs = ids.map((id) => 'id=' + encodeURIComponent(id)).join('&');
  fetch('/api/stats?' + qs, { headers: { 'X-Berth-Token': token }, signal })
    .then((r) => (r.ok ? readJSONLines(r, (m) => onSample(m.id, m.stats)) : null))
    .catch(() => { /* aborted, or the daemon went away */ });
}

export async function getJSON(path, signal) {
  const r = await call('GET', path, { signal });
  return r.json();
}

export const post = (path, body) => call('POST', path, { body });
export const del = (path) => call('DELETE', path);

// Reads a response body as it arrives: onChunk(Uint8Array) per piece.
export async function readStream(r, onChunk) {
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onChunk(value);
  }
}

// A stream of JSON documents (events, stats, pull progress): one per line
// (Docker writes them newline-separated).
export async function readJSONLines(r, onObj) {
  const dec = new TextDecoder();
  let buf = '';
  await readStream(r, (chunk) => {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) { try { onObj(JSON.parse(line)); } catch (_) { /* partial or junk */ } }
    }
  });
  const rest = buf.trim();
  if (rest) { try { onObj(JSON.parse(rest)); } catch (_) { /* junk */ } }
}

// GET path as an endless JSON stream until signal aborts; errors other
// than the abort go to onError.
export function streamJSON(path, onObj, signal, onError) {
  call('GET', path, { signal })
    .then((r) => readJSONLines(r, onObj))
    .catch((e) => { if (!signal || !signal.aborted) (onError || console.warn)(e); });
}

export const q = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) p.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  const s = p.toString();
  return s ? '?' + s : '';
};

// As streamJSON, but reconnecting (2 s later) when the stream ends or
// fails, e.g. across a daemon restart; onOpen runs on every connection so
// the caller can reload what it may have missed.
export function followJSON(path, onObj, signal, onOpen) {
  const go = () => {
    call('GET', path, { signal })
      .then((r) => { if (onOpen) onOpen(); return readJSONLines(r, onObj); })
      .catch(() => {})
      .finally(() => { if (!signal.aborted) setTimeout(() => { if (!signal.aborted) go(); }, 2000); });
  };
  go();
}
