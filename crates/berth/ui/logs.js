// A container's logs: `logs?follow=1&tail=500`, Docker's stdcopy frames
// taken apart unless the container has a TTY (then the stream is raw).
// Search filters the lines shown; download saves what is loaded.
import { html, useEffect, useRef, useState } from './lib.js';
import { call, readStream, q } from './api.js';

const MAX_LINES = 10000;

// Docker's multiplexed stream: 8-byte header [stream,0,0,0,size BE u32].
export class Demux {
  constructor(out) { this.buf = new Uint8Array(0); this.out = out; }
  feed(chunk) {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    let at = 0;
    while (b.length - at >= 8) {
      const n = ((b[at + 4] << 24) >>> 0) + (b[at + 5] << 16) + (b[at + 6] << 8) + b[at + 7];
      if (b.length - at - 8 < n) break;
      this.out(b[at], b.subarray(at + 8, at + 8 + n));
      at += 8 + n;
    }
    this.buf = b.slice(at);
  }
}

export function LogsTab({ id, tty, name }) {
  const [follow, setFollow] = useState(true);
  const [stamps, setStamps] = useState(false);
  const [search, setSearch] = useState('');
  const [error, setError] = useState(null);
  const pre = useRef(null);
  const lines = useRef([]);
  const needle = useRef('');
  const frame = useRef(0);

  const paint = () => {
    frame.current = 0;
    const el = pre.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    const n = needle.current.toLowerCase();
    const shown = n ? lines.current.filter((l) => l.toLowerCase().includes(n)) : lines.current;
    el.textContent = shown.join('\n');
    if (atBottom) el.scrollTop = el.scrollHeight;
  };
  const schedule = () => { if (!frame.current) frame.current = requestAnimationFrame(paint); };

  useEffect(() => { needle.current = search; schedule(); }, [search]);

  useEffect(() => {
    const ac = new AbortController();
    lines.current = [];
    setError(null);
    schedule();
    const partial = ['', ''];
    const decoders = [new TextDecoder(), new TextDecoder()];
    const take = (stream, bytes) => {
      const k = stream === 2 ? 1 : 0;
      const text = partial[k] + decoders[k].decode(bytes, { stream: true });
      const parts = text.split('\n');
      partial[k] = parts.pop();
      for (const p of parts) lines.current.push(p.replace(/\r$/, ''));
      if (lines.current.length > MAX_LINES) lines.current.splice(0, lines.current.length - MAX_LINES);
      schedule();
    };
    const demux = new Demux(take);
    const path = `/containers/${id}/logs` + q({ follow: follow ? 1 : 0, stdout: 1, stderr: 1, tail: 500, timestamps: stamps ? 1 : 0 });
    call('GET', path, { signal: ac.signal })
      .then((r) => readStream(r, (c) => (tty ? take(1, c) : demux.feed(c))))
      .then(() => {
        for (const k of [0, 1]) if (partial[k]) { lines.current.push(partial[k]); partial[k] = ''; }
        schedule();
      })
      .catch((e) => { if (!ac.signal.aborted) setError(e); });
    return () => { ac.abort(); if (frame.current) { cancelAnimationFrame(frame.current); frame.current = 0; } };
  }, [id, follow, stamps]);

  const download = (e) => {
    const blob = new Blob([lines.current.join('\n') + '\n'], { type: 'text/plain' });
    e.currentTarget.href = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(e.currentTarget ? e.currentTarget.href : ''), 10000);
  };

  return html`<div>
    <div class="toolbar">
      <label><input type="checkbox" data-testid="logs-follow" checked=${follow} onChange=${(e) => setFollow(e.target.checked)} /> follow</label>
      <label><input type="checkbox" data-testid="logs-timestamps" checked=${stamps} onChange=${(e) => setStamps(e.target.checked)} /> timestamps</label>
      <input type="search" data-testid="logs-search" placeholder="Search logs" aria-label="Search logs" value=${search} onInput=${(e) => setSearch(e.target.value)} />
      <a data-testid="logs-download" href="#" download=${`${name || id}.log`} onClick=${download}>Download</a>
    </div>
    ${error ? html`<p class="error" role="alert">${error.message}</p>` : null}
    <pre class="logs" data-testid="logs" tabindex="0" aria-label="Logs" ref=${pre}></pre>
  </div>`;
}
