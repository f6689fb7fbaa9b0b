// An interactive shell: `POST /containers/{id}/exec` with a TTY, then the
// dashboard's WebSocket bridged to the hijacked exec stream; xterm.js (DOM
// renderer) draws it; the fit addon sizes it and `exec/{id}/resize` follows.
import { html, useEffect, useRef } from './lib.js';
import { post, TOKEN } from './api.js';
import { load } from './util.js';

export function TerminalTab({ id, running }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    const setState = (s) => el.setAttribute('data-state', s);
    if (!running) { setState('closed'); el.textContent = 'The container is not running.'; return undefined; }
    let done = false;
    let term = null, fit = null, ws = null, execId = null;
    const enc = new TextEncoder();
    const resize = () => {
      if (!fit || done) return;
      try { fit.fit(); } catch (_) { return; }
      if (execId && ws && ws.readyState === 1) post(`/exec/${execId}/resize?h=${term.rows}&w=${term.cols}`).catch(() => {});
    };
    const start = async (cmd) => {
      const r = await post(`/containers/${id}/exec`, {
        AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Cmd: cmd,
        Env: ['TERM=xterm-256color'], ConsoleSize: [term.rows, term.cols],
      });
      const ex = await r.json();
      if (done) return;
      execId = ex.Id;
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      const sock = new WebSocket(`${proto}://${location.host}/api/ws/exec/${execId}?token=${encodeURIComponent(TOKEN)}`);
      ws = sock;
      sock.binaryType = 'arraybuffer';
      let opened = false, got = false;
      sock.onopen = () => { opened = true; setState('open'); resize(); term.focus(); };
      sock.onmessage = (e) => { got = true; term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data)); };
      sock.onclose = () => {
        if (done) return;
        // No /bin/sh in the image: try `sh` from PATH once.
        if (!got && cmd[0] === '/bin/sh' && !opened) { start(['sh']).catch(fail); return; }
        setState('closed');
        term.write('\r\n[session closed]\r\n');
      };
    };
    const fail = (e) => { if (!done) { setState('closed'); if (term) term.write(`\r\n${e.message}\r\n`); } };
    setState('connecting');
    Promise.all([load('vendor/xterm/xterm.css'), load('vendor/xterm/xterm.js'), load('vendor/addon-fit/addon-fit.js')])
      .then(() => {
        if (done) return undefined;
        term = new window.Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, fontFamily: 'ui-monospace, monospace' });
        fit = new window.FitAddon.FitAddon();
        term.loadAddon(fit);
        term.open(el);
        try { fit.fit(); } catch (_) { /* not laid out yet */ }
        term.onData((d) => { if (ws && ws.readyState === 1) ws.send(enc.encode(d)); });
        return start(['/bin/sh']);
      })
      .catch(fail);
    const ro = new ResizeObserver(() => resize());
    ro.observe(el);
    addEventListener('resize', resize);
    return () => {
      done = true;
      removeEventListener('resize', resize);
      ro.disconnect();
      if (ws) ws.close();
      if (term) term.dispose();
    };
  }, [id, running]);
  return html`<div class="terminal" data-testid="terminal" data-state="connecting" ref=${box}></div>`;
}
