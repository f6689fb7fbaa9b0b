import { html, useEffect } from './lib.js';
import { ready } from './util.js';

export function HostPage() {
  useEffect(() => { ready(); }, []);
  return html`<section class="page"><h1>Host</h1></section>`;
}
