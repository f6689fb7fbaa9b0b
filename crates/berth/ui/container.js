import { html, useEffect } from './lib.js';
import { ready } from './util.js';

export function ContainerPage({ arg }) {
  useEffect(() => { ready(); }, []);
  return html`<section class="page" data-testid="container-page" data-id=${arg}><h1>${arg}</h1></section>`;
}
