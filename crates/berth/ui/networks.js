import { html, useEffect } from './lib.js';
import { ready } from './util.js';

export function NetworksPage() {
  useEffect(() => { ready(); }, []);
  return html`<section class="page"><h1>Networks</h1></section>`;
}
