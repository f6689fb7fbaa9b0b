// The confirmation dialog for destructive actions, and the error banner.
import { html, useEffect, useRef } from './lib.js';

export function Confirm({ text, onOk, onCancel }) {
  const ok = useRef(null);
  useEffect(() => { if (ok.current) ok.current.focus(); }, []);
  const key = (e) => { if (e.key === 'Escape') onCancel(); };
  return html`<div class="backdrop" onKeyDown=${key}>
    <div class="dialog" role="alertdialog" aria-modal="true" aria-label="Confirm" data-testid="confirm">
      <p>${text}</p>
      <div class="buttons">
        <button type="button" data-testid="confirm-cancel" onClick=${onCancel}>Cancel</button>
        <button type="button" class="danger" data-testid="confirm-ok" ref=${ok} onClick=${onOk}>OK</button>
      </div>
    </div>
  </div>`;
}

export function ErrorBar({ error, onClose }) {
  if (!error) return null;
  return html`<div class="error" role="alert" data-testid="error">
    <span>${String(error.message || error)}</span>
    <button type="button" aria-label="Dismiss" onClick=${onClose}>×</button>
  </div>`;
}
