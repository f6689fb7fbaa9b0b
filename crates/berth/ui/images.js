import { html, useEffect } from './lib.js';
import { ready } from './util.js';

export function ImagesPage() {
  useEffect(() => { ready(); }, []);
  return html`<section class="page"><h1>Images</h1></section>`;
}
