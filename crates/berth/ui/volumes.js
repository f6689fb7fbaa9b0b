import { html, useEffect } from './lib.js';
import { ready } from './util.js';

export function VolumesPage() {
  useEffect(() => { ready(); }, []);
  return html`<section class="page"><h1>Volumes</h1></section>`;
}
