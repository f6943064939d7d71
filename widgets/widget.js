/* acquisition site widget: messenger buttons that carry the page's attribution.
 * Served as GET /w/<widget_id>.js: minified (rjsmin only strips whitespace and comments, so every
 * other byte here ships: keep it compact), with the two tokens in the last line replaced by the
 * widget's config (JSON) and the minified widget.css (a JSON string). No dependencies, no cookies,
 * no storage, no requests but the beacon and the QR image; the DOM is built with createElement and
 * textContent only, and styles are a constructed stylesheet: it runs under a strict CSP.
 * widgets/README.md documents the embed, the CSP, the events and the beacon payloads. */
(function (config, css) {
  'use strict';
  const d = document, w = window, nav = navigator;
  if (!config || !w.URLSearchParams || !d.documentElement.attachShadow) return;

  const TEXTS = {
    en: {cta: 'Message us', title: 'Choose your messenger', qr: 'Scan with your phone', close: 'Close',
      consent: 'I agree to receive messages', open: 'Open on this device', back: 'Back'},
    ru: {cta: 'Напишите нам', title: 'Выберите мессенджер', qr: 'Отсканируйте телефоном', close: 'Закрыть',
      consent: 'Я согласен получать сообщения', open: 'Открыть на этом устройстве', back: 'Назад'}
  };
  // 24×24 glyphs drawn white on the messenger's colour: "stroked path|filled path".
  const PHONE = '|M9 7.3c-.7 0-1.6.8-1.5 2.1.2 2.6 3.6 6.3 7 6.6 1.4.1 2-.9 2-1.6l-2.2-1.1-1 .9c-1.3-.6-2.4-1.7-3-3l.9-1-1-2.3c-.2-.5-.6-.6-1.2-.6Z';
  const ICONS = {
    telegram: '|M20.7 4.2 2.9 11c-1.1.4-1 1.1-.1 1.4l4.6 1.4 1.8 5.4c.2.6.6.7 1 .3l2.6-2.2 4.8 3.5c.7.4 1.2.2 1.4-.7l3-14c.3-1.2-.4-1.7-1.3-1.3ZM9.6 18.3l.3-4.1 7.5-6.7-9.4 6.1Z',
    whatsapp: 'M4 20l1.3-4.3a8.3 8.3 0 1 1 3 3Z' + PHONE,
    viber: 'M12 3.3c5.7 0 7.8 2.2 7.8 6.8s-2.1 6.8-7.8 6.8h-1.3L8 19.7v-3.2c-2.6-1-3.8-3-3.8-6.4 0-4.6 2.1-6.8 7.8-6.8Zm.8 3.2a3.6 3.6 0 0 1 3.3 3.3' + PHONE,
    messenger: 'M12 3.3c-4.9 0-8.7 3.6-8.7 8.3 0 2.5 1 4.7 2.8 6.2v3.1l2.8-1.6c1 .3 2 .4 3.1.4 4.9 0 8.7-3.6 8.7-8.1S16.9 3.3 12 3.3Z|M6.7 14.4l3.3-5 3 2.3 3.3-2.3-3.3 5-3-2.3Z',
    instagram: 'M8 3.5h8A4.5 4.5 0 0 1 20.5 8v8a4.5 4.5 0 0 1-4.5 4.5H8A4.5 4.5 0 0 1 3.5 16V8A4.5 4.5 0 0 1 8 3.5Zm4 4.8a3.7 3.7 0 1 0 .1 0M17 7h0',
    vk: 'M3 7.5l3.6 9 3.6-9m3.3 0v9m5.5-9L14.5 12l4.5 4.5',
    chat: 'M20.5 11.5a8.5 8.5 0 0 1-12.3 7.6l-4.7 1.4 1.4-4.6a8.5 8.5 0 1 1 15.6-4.4Z',
    x: 'M6.5 6.5l11 11m0-11-11 11'
  };
  const KEYS = 'utm_source utm_medium utm_campaign utm_content utm_term gclid yclid fbclid ttclid msclkid wbraid gbraid'.split(' ');

  const id = String(config.id), cv = config.consent_version, own = config.texts || {};
  const web = (u) => { try { return /^https?:$/.test(new URL(u).protocol); } catch (e) { return false; } };
  const buttons = (config.buttons || []).filter((b) => web(b.href));
  let lang = config.lang == 'auto' ? (nav.language || '').slice(0, 2).toLowerCase() : config.lang;
  if (!TEXTS[lang] && !own[lang]) lang = 'en';
  const T = Object.assign({}, TEXTS.en, TEXTS[lang], own[lang]);
  const links = [];
  let host, root, panel, list, qrView, toggle, box, opener, isOpen, shown;

  // Phone-only messengers (button.qr set) get a QR on desktop. Desktop = a fine pointer and no
  // mobile browser in the UA; iPadOS claims to be a Mac, so a Mac UA with multi-touch is mobile.
  const desktop = () => {
    const ua = nav.userAgent;
    return w.matchMedia('(pointer:fine)').matches && !/Mobi|Android|iPhone|iPad/i.test(ua) &&
      !(/Mac/.test(ua) && nav.maxTouchPoints > 1);
  };
  // Path globs: `*` matches anything, the rest is literal; the whole path must match.
  const matches = (globs, path) => (globs || []).some((g) =>
    new RegExp('^' + String(g).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$').test(path));

  const el = (tag, parent, attrs, text, ns) => {
    const e = ns ? d.createElementNS(ns, tag) : d.createElement(tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  };
  const on = (e, type, fn) => e.addEventListener(type, fn);
  const icon = (name, parent) => {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = el('svg', parent, {viewBox: '0 0 24 24', 'aria-hidden': 'true'}, null, ns);
    (ICONS.hasOwnProperty(name) ? ICONS[name] : ICONS.chat).split('|').forEach((p, i) => p && el('path', svg, {d: p, class: i ? 'f' : 's'}, null, ns));
  };

  // What travels with every click, QR and beacon: the page's UTM and click ids, the referrer, the
  // page (without its #fragment), the widget and, once ticked, the consent version.
  const attribution = () => {
    const q = new URLSearchParams(location.search), a = new URLSearchParams();
    const put = (k, v) => v && a.set(k, String(v).slice(0, 300));
    KEYS.forEach((k) => put(k, q.get(k)));
    put('ref_url', d.referrer);
    put('page', location.href.split('#')[0]);
    put('w', id);
    if (cv && box.checked) put('cv', cv);
    return a;
  };
  const tracked = (url) => {
    const u = new URL(url);
    attribution().forEach((v, k) => u.searchParams.set(k, v));
    return u.href;
  };

  const beacon = (t, m) => {
    const url = config.beacon;
    // A string body goes as text/plain: a CORS-safelisted type, so no preflight.
    const body = JSON.stringify(Object.assign(Object.fromEntries(attribution()), {t, m}));
    if (!web(url)) return;
    try { if (nav.sendBeacon(url, body)) return; } catch (e) { /* no sendBeacon: fetch below */ }
    if (w.fetch) fetch(url, {method: 'POST', body, keepalive: true, credentials: 'omit', mode: 'no-cors'}).catch(() => 0);
  };
  const emit = (name, detail, cancelable) => d.dispatchEvent(
    new CustomEvent('acquisition:' + name, {detail: Object.assign({widget: id}, detail), cancelable}));
  const push = (event, messenger) => {
    const dl = w.dataLayer;
    if (dl && dl.push) dl.push(Object.assign({event, widget: id}, messenger && {messenger}));
  };

  const focusFirst = () => {
    const first = (list.hidden ? qrView : list).querySelector('input,a,button');
    if (first) first.focus();
  };
  const showList = () => {
    qrView.hidden = true;
    qrView.textContent = '';
    list.hidden = false;
  };
  const open = (from) => {
    if (isOpen) return;
    isOpen = true;
    opener = from;
    panel.classList.add('o');
    if (toggle) toggle.setAttribute('aria-expanded', true);
    emit('open');
    push('acquisition_open');
  };
  const close = (refocus) => {
    if (!isOpen) return;
    isOpen = false;
    panel.classList.remove('o');
    if (toggle) toggle.setAttribute('aria-expanded', false);
    showList();
    if (refocus) opener.focus();
    emit('close');
  };

  // A real <a href> to our short link. The tracked href is written on render and refreshed on
  // focus and pointerdown, so middle-click, "copy link" and in-app browsers carry it too. No
  // target: deep links must open the app from the same tab.
  const anchor = (b, parent, attrs, direct) => {
    const a = el('a', parent, Object.assign({rel: 'noopener'}, attrs));
    const refresh = () => { a.href = tracked(b.href); };
    refresh();
    on(a, 'focus', refresh);
    on(a, 'pointerdown', refresh);
    on(a, 'click', (e) => {
      if (cv && !box.checked) {
        e.preventDefault();
        open(a);
        box.focus();
        root.classList.add('z');
      } else if (!direct && b.qr && desktop()) {
        e.preventDefault();
        showQr(b, a);
      } else {
        refresh();
        if (!emit('click', {messenger: b.messenger, href: a.href}, true)) return e.preventDefault();
        beacon('click', b.messenger);
        push('acquisition_click', b.messenger);
      }
    });
    if (direct) return a;
    if (cv) a.setAttribute('aria-disabled', true);
    if (b.qr && desktop()) a.setAttribute('aria-haspopup', 'dialog');
    links.push((enabled) => { a.setAttribute('aria-disabled', !enabled); refresh(); });
    return a;
  };
  const badge = (b, parent) => icon(b.messenger, el('span', parent, {class: 'ic b-' + b.messenger}));

  // Desktop hand-off: the QR encodes the same short link with the same attribution; its image is
  // requested only now. A plain link stays for people who have the desktop app.
  const showQr = (b, from) => {
    open(from);
    showList();
    list.hidden = true;
    qrView.hidden = false;
    on(el('button', qrView, {class: 'k', type: 'button'}, T.back), 'click', () => { showList(); focusFirst(); });
    const head = el('p', qrView, {class: 'qh', tabindex: -1});
    badge(b, head);
    el('span', head, 0, b.label);
    const img = el('img', qrView, {width: 176, height: 176, alt: T.qr + ': ' + b.label});
    if (web(b.qr)) img.src = tracked(b.qr);
    el('p', qrView, {class: 'qt'}, T.qr);
    anchor(b, qrView, {class: 'n'}, true).textContent = T.open;
    head.focus();
    beacon('qr', b.messenger);
    emit('qr', {messenger: b.messenger});
  };

  const render = (shadow) => {
    root = el('div', shadow, {class: config.position == 'left' ? 'r L' : 'r', lang});
    panel = el('div', root, {class: 'p', id: 'p', role: 'dialog', 'aria-labelledby': 't'});
    const head = el('div', panel, {class: 'h'});
    el('h2', head, {id: 't'}, T.title);
    const x = el('button', head, {class: 'x', type: 'button', 'aria-label': T.close});
    icon('x', x);
    on(x, 'click', () => close(true));
    list = el('div', panel, {class: 'v'});
    if (cv) {
      const label = el('label', list, {class: 'c'});
      box = el('input', label, {type: 'checkbox'});
      el('span', label, 0, T.consent);
      on(box, 'change', () => { links.forEach((sync) => sync(box.checked)); root.classList.remove('z'); });
    }
    buttons.forEach((b) => {
      const a = anchor(b, list, {class: 'b'});
      badge(b, a);
      el('span', a, 0, b.label);
    });
    qrView = el('div', panel, {class: 'q', hidden: ''});

    if (config.layout == 'buttons') {
      const stack = el('div', root, {class: 'st', role: 'group', 'aria-label': T.cta});
      buttons.forEach((b) => icon(b.messenger,
        anchor(b, stack, {class: 'l b-' + b.messenger, 'aria-label': b.label, title: b.label})));
    } else {
      toggle = el('button', root, {class: 'l', type: 'button', 'aria-expanded': false, 'aria-controls': 'p'});
      icon('chat', toggle);
      icon('x', toggle);
      el('span', toggle, {class: 'tip'}, T.cta);
      on(toggle, 'click', () => {
        if (isOpen) return close();
        open(toggle);
        focusFirst();
      });
    }
    on(root, 'keydown', (e) => e.key == 'Escape' && close(true));
    // Events from inside the shadow root reach the document retargeted to the host.
    on(d, 'pointerdown', (e) => e.target != host && close());
  };

  const start = () => {
    const path = location.pathname, inc = config.include || [];
    if (!buttons.length || matches(config.exclude, path) || (inc.length && !matches(inc, path))) return;
    // Included twice (or two copies waiting for DOMContentLoaded): the first host wins.
    for (const h of d.querySelectorAll('[data-acquisition-widget]')) if (h.getAttribute('data-acquisition-widget') == id) return;
    host = el('div', d.body, {'data-acquisition-widget': id});
    const shadow = host.attachShadow({mode: 'open'});
    // A constructed stylesheet needs no <style> element or style attribute, so no CSP style-src.
    try {
      if (!shadow.adoptedStyleSheets) throw 0;
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      shadow.adoptedStyleSheets = [sheet];
    } catch (e) {
      el('style', shadow, 0, css);
    }
    // CSSOM setProperty is not a style attribute: CSP style-src does not govern it.
    [['--acq-color', config.color], ['--acq-text', config.text_color]].forEach(([k, v]) =>
      /^#[0-9a-f]{3,8}$/i.test(v) && host.style.setProperty(k, v, 'important'));
    // Shown after `delay` seconds and once `scroll` % of the page has been scrolled.
    const need = +config.scroll || 0;
    const check = () => {
      const max = d.documentElement.scrollHeight - w.innerHeight;
      if (shown || (max > 0 && w.scrollY / max * 100 < need)) return;
      shown = true;
      w.removeEventListener('scroll', check);
      render(shadow);
      // Unstyled (the <style> fallback blocked by a strict CSP): better nothing than a broken page.
      if (getComputedStyle(root).position != 'fixed') return host.remove();
      emit('show');
      beacon('impression');
    };
    setTimeout(() => {
      if (need) w.addEventListener('scroll', check, {passive: true});
      check();
    }, (+config.delay || 0) * 1000);
  };

  if (d.body) start();
  else d.addEventListener('DOMContentLoaded', start);
})(__ACQUISITION_CONFIG__, __ACQUISITION_CSS__);
