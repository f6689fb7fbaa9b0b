// The dashboard's shell: hash routes to pages, the nav's current link, the
// theme toggle. Pages other than the containers list load on first use.
import { html, render, useState, useEffect } from './lib.js';
import { notReady } from './util.js';
import { ContainersPage } from './containers.js';

const pages = {
  images: () => import('./images.js').then((m) => m.ImagesPage),
  networks: () => import('./networks.js').then((m) => m.NetworksPage),
  volumes: () => import('./volumes.js').then((m) => m.VolumesPage),
  host: () => import('./host.js').then((m) => m.HostPage),
  container: () => import('./container.js').then((m) => m.ContainerPage),
};

function parse() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const section = parts[0] || 'containers';
  if (section === 'containers' && parts[1]) return { page: 'container', arg: decodeURIComponent(parts[1]), tab: parts[2], nav: 'containers' };
  if (section in pages) return { page: section, nav: section };
  return { page: 'containers', nav: 'containers' };
}

function App() {
  const [route, setRoute] = useState(parse());
  const [Page, setPage] = useState(() => (route.page === 'containers' ? ContainersPage : null));
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    notReady();
    for (const a of document.querySelectorAll('a[data-nav]')) {
      if (a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (route.page === 'containers') { setPage(() => ContainersPage); return; }
    let live = true;
    setPage(null);
    pages[route.page]().then((P) => { if (live) setPage(() => P); });
    return () => { live = false; };
  }, [route.page, route.arg]);
  if (!Page) return html`<p class="muted">Loading…</p>`;
  return html`<${Page} key=${route.page + ':' + (route.arg || '')} arg=${route.arg} tab=${route.tab} />`;
}

function theme() {
  const root = document.documentElement;
  const saved = localStorage.getItem('berth-theme');
  if (saved) root.dataset.theme = saved;
  document.getElementById('theme').addEventListener('click', () => {
    const dark = root.dataset.theme ? root.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    root.dataset.theme = dark ? 'light' : 'dark';
    localStorage.setItem('berth-theme', root.dataset.theme);
  });
}

theme();
const main = document.getElementById('main');
main.textContent = '';
render(html`<${App} />`, main);
