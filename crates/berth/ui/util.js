// Small shared helpers: readiness for the tests, formatting, lazy scripts.
export function ready() { document.body.dataset.ready = '1'; }
export function notReady() { delete document.body.dataset.ready; }

export function bytes(n) {
  if (n === undefined || n === null || isNaN(n)) return '—';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? String(+n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) : String(Math.round(n))) + ' ' + u[i];
}

export function ago(sec) {
  const d = Math.max(0, Date.now() / 1000 - sec);
  if (d < 60) return Math.round(d) + ' s ago';
  if (d < 3600) return Math.round(d / 60) + ' min ago';
  if (d < 86400) return Math.round(d / 3600) + ' h ago';
  return Math.round(d / 86400) + ' days ago';
}

const two = (n) => String(n).padStart(2, '0');
// A chart's time axis: seconds since the epoch as local hh:mm:ss.
export const clock = (t) => { const d = new Date(t * 1000); return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`; };

export const short = (id) => (id || '').replace(/^sha256:/, '').slice(0, 12);
export const cname = (c) => ((c.Names && c.Names[0]) || '').replace(/^\//, '');

const loaded = new Map();
// Loads a vendored classic script (UMD) or stylesheet once.
export function load(path) {
  if (!loaded.has(path)) {
    loaded.set(path, new Promise((ok, fail) => {
      const css = path.endsWith('.css');
      const el = document.createElement(css ? 'link' : 'script');
      if (css) { el.rel = 'stylesheet'; el.href = '/assets/' + path; } else { el.src = '/assets/' + path; }
      el.onload = () => ok();
      el.onerror = () => fail(new Error('cannot load ' + path));
      document.head.appendChild(el);
    }));
  }
  return loaded.get(path);
}

// Calls fn at most once per `ms`, with the latest arguments.
export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// Runs fn once, `ms` after the first of a burst of calls.
export function batch(fn, ms) {
  let t = null;
  return () => { if (t === null) t = setTimeout(() => { t = null; fn(); }, ms); };
}

// CPU % the way `docker stats` computes it.
export function cpuPercent(s) {
  const c = s.cpu_stats, p = s.precpu_stats;
  if (!c || !p || !c.cpu_usage || !p.cpu_usage) return 0;
  const cd = c.cpu_usage.total_usage - p.cpu_usage.total_usage;
  const sd = (c.system_cpu_usage || 0) - (p.system_cpu_usage || 0);
  const n = c.online_cpus || (c.cpu_usage.percpu_usage || []).length || 1;
  return sd > 0 && cd > 0 ? (cd / sd) * n * 100 : 0;
}

// Memory in use without the page cache, as `docker stats` shows it.
export function memUsed(s) {
  const m = s.memory_stats || {};
  const st = m.stats || {};
  let u = m.usage || 0;
  const cache = st.inactive_file !== undefined ? st.inactive_file : st.total_inactive_file;
  if (cache !== undefined && cache < u) u -= cache;
  return u;
}
