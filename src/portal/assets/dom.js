// DOM helpers for the portal. Every value from the API or the URL goes into the
// page as text (textContent, attribute values); nothing here parses markup, so a
// receiver's response body such as <script> is shown, never run.

/** Creates an element; `attrs` keys are attributes, except `on*` (listeners),
 *  `text` (textContent) and boolean properties `hidden`, `disabled`, `checked`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (k === 'hidden' || k === 'disabled' || k === 'checked' || k === 'selected') {
      el[k] = Boolean(v);
    } else if (k === 'value') {
      el.value = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes as they are, strings as text nodes, arrays flattened. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the content of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
});

/** An RFC 3339 time in the viewer's zone, in a <time> element. */
export function time(rfc3339) {
  if (!rfc3339) return h('span', { class: 'muted', text: '—' });
  const d = new Date(rfc3339);
  const shown = Number.isNaN(d.getTime()) ? rfc3339 : timeFormat.format(d);
  return h('time', { datetime: rfc3339, text: shown });
}

/** A `datetime-local` input value (viewer's zone) as RFC 3339 UTC, or null. */
export function localToRfc3339(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** A Date as a `datetime-local` value in the viewer's zone. */
export function dateToLocal(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A coloured badge for a delivery state or an HTTP status. */
export function stateBadge(state) {
  const kind = {
    succeeded: 'ok',
    pending: 'wait',
    failed: 'bad',
    exhausted: 'bad',
    cancelled: 'muted',
  }[state] || 'muted';
  return h('span', { class: `badge ${kind}`, 'data-state': state, text: state });
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('small', { class: 'muted', text: hint }) : null);
}

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', { text: title }), ...children);
}

/** A message box: kind is 'error', 'info' or 'ok'. */
export function notice(kind, message, reasons = []) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', { text: message }),
    reasons.length ? h('ul', {}, reasons.map((r) => h('li', { text: r }))) : null);
}

/** A button that runs `action` (async), disabled while it runs. */
export function button(label, action, attrs = {}) {
  const b = h('button', { type: 'button', ...attrs, text: label });
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await action(b);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
