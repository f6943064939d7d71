/* The admin's progressive enhancements. Every page works without this file; with it:
 * - copy buttons, focus on the first error after a failed submit;
 * - the dashboard refreshes its numbers, charts and table every few seconds while the period
 *   includes today (a short poll of /admin/live; the server renders the HTML);
 * - the QR designer redraws its preview as the settings change (logo included);
 * - the widget builder shows the real widget with the current settings, live.
 * No inline code, no eval, no innerHTML of anything but our own server's fragments parsed by
 * DOMParser (inert: scripts in it never run). Works under the admin's strict CSP. */
(function () {
  'use strict';
  const d = document;
  const $ = (sel, root) => (root || d).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || d).querySelectorAll(sel));
  const debounce = (fn, ms) => {
    let timer = 0;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  };

  // --- copy buttons (hidden without JS: the value is selectable text anyway) ----------------
  const copy = () => {
    for (const button of $$('[data-copy]')) {
      if (!navigator.clipboard) continue;
      button.hidden = false;
      const label = button.textContent;
      button.addEventListener('click', () => {
        navigator.clipboard.writeText(button.getAttribute('data-copy')).then(() => {
          button.textContent = '✓';
          setTimeout(() => { button.textContent = label; }, 1500);
        }, () => 0);
      });
    }
  };

  // --- after a failed submit, take keyboard and screen-reader users to the problem ----------
  const focusErrors = () => {
    const alert = $('[data-focus]');
    if (!alert) return;
    const invalid = $('[aria-invalid="true"]');
    (invalid || alert).focus();
  };

  // --- dashboard: live refresh --------------------------------------------------------------
  const live = () => {
    const root = $('[data-live-url]');
    if (!root) return;
    const url = root.getAttribute('data-live-url');
    if (!url) return;
    const every = Math.max(5, +root.getAttribute('data-live-every') || 10) * 1000;
    const parser = new DOMParser();
    const replace = (name, html) => {
      const target = $('[data-live="' + name + '"]', root);
      if (!target || target.contains(d.activeElement)) return; // never pull focus from under someone
      const parsed = parser.parseFromString('<div>' + html + '</div>', 'text/html').body.firstChild;
      if (target.firstElementChild && parsed && target.innerHTML.trim() === parsed.innerHTML.trim()) return;
      target.replaceChildren(...Array.from(parsed.childNodes).map((node) => d.importNode(node, true)));
    };
    const tick = () => {
      if (d.visibilityState !== 'visible') return;
      fetch(url, {credentials: 'same-origin', headers: {accept: 'application/json'}})
        .then((r) => (r.ok && (r.headers.get('content-type') || '').includes('json') ? r.json() : null))
        .then((data) => {
          if (!data) return;
          for (const name in data.sections) replace(name, data.sections[name]);
        })
        .catch(() => 0);
    };
    setInterval(tick, every);
    d.addEventListener('visibilitychange', tick);
  };

  // --- QR designer: live preview ------------------------------------------------------------
  const qrDesigner = () => {
    const form = $('[data-qr-designer]');
    if (!form) return;
    const img = $('[data-qr-preview]', form);
    const error = $('[data-qr-error]', form);
    const size = $('[data-qr-size]', form);
    const sizeText = size ? size.textContent : '';
    let seq = 0;
    const refresh = () => {
      const body = new FormData(form);
      body.set('action', 'preview');
      body.delete('format');
      const mine = ++seq;
      img.setAttribute('data-busy', '');
      fetch(form.getAttribute('action').split('#')[0], {
        method: 'POST', body, credentials: 'same-origin', headers: {accept: 'application/json'}
      })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => {
          if (mine !== seq || !data) return;
          img.removeAttribute('data-busy');
          for (const field of $$('[aria-invalid="true"]', form)) field.removeAttribute('aria-invalid');
          if (data.ok) {
            img.src = data.src;
            error.hidden = true;
            const mm = (form.elements.size_mm || {}).value;
            if (size && mm) size.textContent = sizeText.replace(/[\d.,]+(?=\s*mm|\s*мм)/, mm);
          } else {
            const messages = [];
            for (const name in data.errors) {
              messages.push(data.errors[name]);
              const field = form.elements[name];
              if (field && field.setAttribute) field.setAttribute('aria-invalid', 'true');
            }
            error.textContent = messages.join(' ');
            error.hidden = false;
          }
        })
        .catch(() => img.removeAttribute('data-busy'));
    };
    const later = debounce(refresh, 300);
    form.addEventListener('input', later);
    form.addEventListener('change', later);
    const button = $('[data-qr-refresh]', form);
    if (button) {
      button.addEventListener('click', (event) => { event.preventDefault(); refresh(); });
    }
  };

  // --- widget builder: the real widget, live ------------------------------------------------
  const widgetBuilder = () => {
    const form = $('[data-widget-builder]');
    const stage = $('[data-preview-stage]');
    if (!form || !stage) return;
    const error = $('[data-preview-error]');
    const first = stage.getAttribute('data-preview-src');
    const saved = new URL(first, location.href).searchParams.get('id');
    const skip = new Set(['csrf', 'origins', 'include', 'exclude', 'name']);
    // The preview's buttons lead nowhere: a click is cancelled before the widget navigates.
    d.addEventListener('acquisition:click', (event) => {
      if (event.detail && event.detail.widget === 'preview') event.preventDefault();
    });
    d.addEventListener('acquisition:preview-error', (event) => {
      const problems = event.detail || [];
      error.textContent = problems.map((p) => p.message + (p.field ? ' (' + p.field + ')' : '')).join('; ');
      error.hidden = false;
    });
    d.addEventListener('acquisition:preview-ready', () => { error.hidden = true; });
    const load = (src) => {
      for (const old of $$('[data-acquisition-widget="preview"]')) old.remove();
      for (const old of $$('script[data-widget-preview]')) old.remove();
      const script = d.createElement('script');
      script.src = src;
      script.async = true;
      script.setAttribute('data-widget-preview', '');
      d.body.appendChild(script);
    };
    const current = () => {
      const params = new URLSearchParams();
      for (const [key, value] of new FormData(form)) {
        if (!skip.has(key) && typeof value === 'string') params.append(key, value);
      }
      if (saved) params.set('id', saved);
      return '/admin/widgets/preview.js?' + params.toString();
    };
    let shown = current();
    const arrow = $('[data-preview-arrow]');
    const later = debounce(() => {
      const next = current();
      if (next === shown) return; // a blur's change event, or an edit undone: nothing to redo
      shown = next;
      if (arrow && form.elements.position) arrow.textContent = form.elements.position.value === 'left' ? '↙' : '↘';
      load(next);
    }, 400);
    form.addEventListener('input', later);
    form.addEventListener('change', later);
    load(first);
  };

  const start = () => {
    copy();
    focusErrors();
    live();
    qrDesigner();
    widgetBuilder();
  };
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', start);
  else start();
})();
