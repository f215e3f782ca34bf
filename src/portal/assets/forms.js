// The webhook form (create and edit): URL, event types picked from the tenant's
// catalogue, description, channels, custom headers (stored values stay masked as
// "****", which the API keeps as they are), the delivery options (payload filter,
// ordering) and enabled.

import { api, seg } from './api.js';
import { h, append, replace, field, notice } from './dom.js';

/** Renders the form for a new webhook (`existing` null) or an edit. */
export async function webhookForm(ctx, existing, knownTypes) {
  const types = knownTypes || await api('GET', '/v1/event-types').then((p) => p.data.map((t) => t.name));
  const chosen = new Set(existing ? existing.event_types : []);
  const url = h('input', { type: 'url', id: 'wh-url', required: true, value: existing ? existing.url : '', placeholder: 'https://example.com/webhooks', autocomplete: 'off' });
  const all = h('input', { type: 'checkbox', id: 'wh-type-all', value: '*', checked: chosen.has('*') });
  const boxes = types.map((t) => h('input', { type: 'checkbox', class: 'wh-type', value: t, checked: chosen.has(t) }));
  // Filters the API holds that the catalogue lacks (e.g. "prefix.*") stay chosen.
  const extra = [...chosen].filter((t) => t !== '*' && !types.includes(t))
    .map((t) => h('input', { type: 'checkbox', class: 'wh-type', value: t, checked: true }));
  const picker = h('fieldset', { id: 'wh-types' },
    h('legend', { text: 'Event types' }),
    h('div', { class: 'checks' },
      h('label', {}, all, 'All event types'),
      [...boxes, ...extra].map((b) => h('label', {}, b, b.value))),
    types.length ? null : h('p', { class: 'muted', text: 'The catalogue is empty: choose all event types.' }));
  const description = h('textarea', { id: 'wh-description', rows: 2 });
  description.value = existing && existing.description ? existing.description : '';
  const channels = h('input', { type: 'text', id: 'wh-channels', value: existing ? existing.channels.join(', ') : '', placeholder: 'optional, comma separated' });
  const enabled = h('input', { type: 'checkbox', id: 'wh-enabled', checked: existing ? existing.enabled : true });
  const filter = h('textarea', { id: 'wh-filter', rows: 3, spellcheck: 'false', placeholder: '{"data.amount": {"$gte": 100}}' });
  filter.value = existing && existing.filter ? JSON.stringify(existing.filter, null, 2) : '';
  const ordering = h('select', { id: 'wh-ordering' },
    h('option', { value: 'none', text: 'Concurrent (fastest)' }),
    h('option', { value: 'fifo', text: 'One at a time, in event order (FIFO)' }));
  ordering.value = existing && existing.ordering ? existing.ordering : 'none';
  const headerRows = h('div', { id: 'wh-headers' });
  const addHeader = (name = '', value = '') => {
    const row = h('div', { class: 'header-row' },
      h('input', { type: 'text', class: 'hdr-name', 'aria-label': 'Header name', placeholder: 'X-Header', value: name }),
      h('input', { type: 'password', class: 'hdr-value', 'aria-label': 'Header value', placeholder: 'value', value, autocomplete: 'off' }),
      h('button', { type: 'button', class: 'secondary', text: 'Remove', onclick: () => row.remove() }));
    append(headerRows, [row]);
  };
  for (const [k, v] of Object.entries(existing ? existing.headers : {})) addHeader(k, v);
  const msg = h('div', { id: 'form-msg' });

  const form = h('form', { class: 'card', id: 'webhook-form', novalidate: true },
    h('h1', { text: existing ? 'Edit webhook' : 'Add a webhook' }),
    field('Endpoint URL', url, 'Where events are sent (HTTPS).'),
    picker,
    h('div', { class: 'grid' },
      field('Description', description),
      field('Channels', channels, 'Only events sent to one of these channels; empty for all.')),
    h('fieldset', {},
      h('legend', { text: 'Custom headers' }),
      h('p', { class: 'muted', text: 'Sent with every request. Saved values are masked (****) and kept unless you change them.' }),
      headerRows,
      h('button', { type: 'button', class: 'secondary', id: 'add-header', text: 'Add header', onclick: () => addHeader() })),
    h('div', { id: 'wh-delivery-options', class: 'grid' },
      field('Payload filter (JSON)', filter, 'Only events whose body matches, e.g. {"data.amount": {"$gte": 100}}; empty for all.'),
      field('Ordering', ordering, 'FIFO waits for each delivery to succeed or give up before the next.')),
    h('label', { class: 'row' }, enabled, 'Enabled'),
    msg,
    h('div', { class: 'row' },
      h('button', { type: 'submit', id: 'save', text: existing ? 'Save changes' : 'Create webhook' }),
      h('a', { class: 'button secondary', href: existing ? `/portal/webhooks/${seg(existing.id)}` : '/portal', text: 'Cancel' })));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const picked = all.checked ? ['*'] : [...boxes, ...extra].filter((b) => b.checked).map((b) => b.value);
    const headers = {};
    for (const row of headerRows.querySelectorAll('.header-row')) {
      const name = row.querySelector('.hdr-name').value.trim();
      if (name) headers[name] = row.querySelector('.hdr-value').value;
    }
    let parsedFilter = null;
    if (filter.value.trim()) {
      try {
        parsedFilter = JSON.parse(filter.value);
      } catch (e) {
        replace(msg, notice('error', 'The payload filter is not valid JSON.', [String(e.message)]));
        return;
      }
    }
    const body = {
      url: url.value.trim(),
      event_types: picked,
      description: description.value.trim() || null,
      channels: channels.value.split(',').map((c) => c.trim()).filter(Boolean),
      headers,
      filter: parsedFilter,
      ordering: ordering.value,
      enabled: enabled.checked,
    };
    const save = form.querySelector('#save');
    save.disabled = true;
    try {
      const w = existing
        ? await api('PATCH', `/v1/webhooks/${seg(existing.id)}`, body)
        : await api('POST', '/v1/webhooks', body);
      ctx.go(`/portal/webhooks/${seg(w.id)}`);
    } catch (e) {
      replace(msg, notice('error', e.message, e.reasons));
      save.disabled = false;
    }
  });
  replace(ctx.main, form);
  url.focus();
}
