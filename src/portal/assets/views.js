// The portal's pages: the webhook list with health, a webhook's page (secret,
// test send, recover, its delivery log with filters) and a delivery's attempts.
// Everything shown comes from the /v1 API and is inserted as text (dom.js).

import { api, query, seg, session } from './api.js';
import {
  h, append, replace, time, stateBadge, field, section, notice, button,
  localToRfc3339, dateToLocal,
} from './dom.js';
import { webhookForm } from './forms.js';

const HEALTH_SAMPLE = 20;
const FAILED = new Set(['failed', 'exhausted']);

/** Health from a webhook's latest deliveries: last state and recent failures. */
async function health(id) {
  const page = await api('GET', `/v1/webhooks/${seg(id)}/deliveries${query({ limit: HEALTH_SAMPLE })}`);
  const last = page.data[0];
  return {
    last,
    failures: page.data.filter((d) => FAILED.has(d.status)).length,
  };
}

function healthCell(td, id) {
  health(id).then(({ last, failures }) => {
    replace(td,
      last ? stateBadge(last.status) : h('span', { class: 'muted', text: 'no deliveries yet' }),
      last && last.last_status_code ? h('span', { class: 'muted', text: ` HTTP ${last.last_status_code}` }) : null,
      failures ? h('div', { class: 'bad-count', text: `${failures} failed of last ${HEALTH_SAMPLE}` }) : null);
  }, () => replace(td, h('span', { class: 'muted', text: 'unknown' })));
}

/** `/portal`: the webhooks, a page at a time. */
export async function webhookList(ctx, cursor) {
  const page = await api('GET', `/v1/webhooks${query({ limit: 20, cursor })}`);
  const head = h('div', { class: 'row spread' },
    h('h1', { text: 'Webhooks' }),
    session.read_only ? null : h('a', { class: 'button', href: '/portal/webhooks/new', id: 'new-webhook', text: 'Add webhook' }));
  if (page.data.length === 0 && !cursor) {
    replace(ctx.main, head, h('div', { class: 'card empty', id: 'empty' },
      h('p', { text: 'No webhooks yet.' }),
      session.read_only ? null : h('p', { text: 'Add one to start receiving events.' })));
    return;
  }
  const rows = page.data.map((w) => {
    const healthTd = h('td', { 'data-label': 'Health', class: 'health' }, h('span', { class: 'muted', text: '…' }));
    healthCell(healthTd, w.id);
    return h('tr', { 'data-id': w.id },
      h('td', { 'data-label': 'URL', class: 'url' },
        h('a', { href: `/portal/webhooks/${seg(w.id)}`, text: w.url }),
        w.description ? h('div', { class: 'muted', text: w.description }) : null),
      h('td', { 'data-label': 'Events', text: w.event_types.join(', ') }),
      h('td', { 'data-label': 'State' },
        w.enabled ? h('span', { class: 'badge ok', text: 'enabled' }) : h('span', { class: 'badge bad', text: 'disabled' })),
      healthTd);
  });
  const table = h('table', { class: 'stack', id: 'webhooks' },
    h('thead', {}, h('tr', {}, ['URL', 'Events', 'State', 'Health'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows));
  const more = page.next_cursor
    ? button('Next page', () => webhookList(ctx, page.next_cursor), { class: 'secondary', id: 'next-page' })
    : null;
  replace(ctx.main, head, h('div', { class: 'card' }, table), more);
}

/** The facts about one webhook. */
function facts(w) {
  const row = (k, v) => [h('dt', { text: k }), h('dd', {}, v)];
  return h('dl', { class: 'facts' },
    row('Id', h('code', { text: w.id })),
    row('Events', w.event_types.join(', ')),
    w.channels.length ? row('Channels', w.channels.join(', ')) : null,
    w.description ? row('Description', w.description) : null,
    Object.keys(w.headers).length ? row('Headers', Object.entries(w.headers).map(([k, v]) => h('div', { text: `${k}: ${v}` }))) : null,
    w.filter ? row('Payload filter', h('code', { id: 'webhook-filter', text: JSON.stringify(w.filter) })) : null,
    row('Ordering', w.ordering === 'fifo' ? 'one at a time, in event order (FIFO)' : 'concurrent'),
    row('State', w.enabled ? 'enabled' : `disabled${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`),
    row('Created', time(w.created_at)),
    row('Updated', time(w.updated_at)));
}

/** `/portal/webhooks/{id}`. */
export async function webhookPage(ctx, id) {
  const w = await api('GET', `/v1/webhooks/${seg(id)}`);
  const types = await api('GET', '/v1/event-types').then((p) => p.data.map((t) => t.name), () => []);
  const msg = h('div', { id: 'webhook-msg' });
  const actions = session.read_only ? null : h('div', { class: 'row' },
    button('Edit', () => webhookForm(ctx, w, types), { class: 'secondary', id: 'edit' }),
    button(w.enabled ? 'Disable' : 'Enable', async () => {
      try {
        await api('PATCH', `/v1/webhooks/${seg(id)}`, { enabled: !w.enabled });
        await webhookPage(ctx, id);
      } catch (e) { replace(msg, notice('error', e.message, e.reasons)); }
    }, { class: 'secondary', id: 'toggle' }),
    deleteButton(ctx, id, msg));
  replace(ctx.main,
    h('p', {}, h('a', { href: '/portal', text: '← All webhooks' })),
    h('h1', { class: 'url', id: 'webhook-url', text: w.url }),
    h('section', { class: 'card' }, facts(w), actions, msg),
    session.read_only ? null : secretSection(id),
    session.read_only ? null : testSection(id, w, types),
    session.read_only ? null : recoverSection(id),
    deliveriesSection(id, w, types));
}

function deleteButton(ctx, id, msg) {
  const wrap = h('span', {});
  const ask = button('Delete', () => {
    replace(wrap, h('span', { text: 'Delete this webhook? ' }),
      button('Yes, delete', async () => {
        try {
          await api('DELETE', `/v1/webhooks/${seg(id)}`);
          ctx.go('/portal');
        } catch (e) { replace(msg, notice('error', e.message, e.reasons)); }
      }, { class: 'danger', id: 'confirm-delete' }),
      ' ',
      button('Cancel', () => replace(wrap, ask), { class: 'secondary' }));
  }, { class: 'danger', id: 'delete' });
  return append(wrap, [ask]);
}

function secretSection(id) {
  const out = h('div', { id: 'secrets' });
  const grace = h('select', {},
    h('option', { value: '0', text: 'none: the old secret stops now' }),
    h('option', { value: '3600', text: '1 hour' }),
    h('option', { value: '86400', text: '24 hours', selected: true }));
  const show = (s, note) => replace(out,
    note ? notice('ok', note) : null,
    s.secrets.map((x, i) => h('code', { class: 'secret', text: `${i === 0 ? 'current' : 'previous'}: ${x}` })));
  return section('Signing secret',
    h('p', { class: 'muted', text: 'Verify each request with this secret (Standard Webhooks). During a rotation the previous one signs too, for the grace period.' }),
    h('div', { class: 'row' },
      button('Reveal secret', async () => {
        try { show(await api('GET', `/v1/webhooks/${seg(id)}/secrets`)); } catch (e) { replace(out, notice('error', e.message, e.reasons)); }
      }, { class: 'secondary', id: 'reveal' }),
      button('Rotate secret', async () => {
        try {
          const s = await api('POST', `/v1/webhooks/${seg(id)}/secrets/rotate`, { grace_seconds: Number(grace.value) });
          show(s, 'Rotated: a new secret signs from now on.');
        } catch (e) { replace(out, notice('error', e.message, e.reasons)); }
      }, { class: 'secondary', id: 'rotate' })),
    field('Grace period for the previous secret', grace),
    out);
}

function attemptView(a) {
  const status = a.status_code ? `HTTP ${a.status_code}` : (a.error || 'no answer');
  return h('div', { class: 'attempt' },
    h('p', {}, h('strong', { text: status }), h('span', { class: 'muted', text: ` in ${a.latency_ms} ms, ` }), time(a.at)),
    a.error && a.status_code ? h('p', { class: 'muted', text: a.error }) : null,
    h('pre', { class: 'response-body', text: a.response_body || '(empty body)' }));
}

function testSection(id, w, types) {
  const out = h('div', { id: 'test-result' });
  const choices = types.length ? types : w.event_types.filter((t) => !t.includes('*'));
  const select = h('select', { id: 'test-type' }, choices.map((t) => h('option', { value: t, text: t })));
  return section('Send a test event',
    field('Event type', select),
    button('Send test event', async () => {
      replace(out, h('p', { class: 'muted', text: 'Sending…' }));
      try {
        const a = await api('POST', `/v1/webhooks/${seg(id)}/test`, { event_type: select.value });
        const ok = a.status_code >= 200 && a.status_code < 300;
        replace(out, notice(ok ? 'ok' : 'error', ok ? 'Delivered.' : 'The endpoint did not accept it.'), attemptView(a));
      } catch (e) { replace(out, notice('error', e.message, e.reasons)); }
    }, { id: 'send-test' }),
    out);
}

function recoverSection(id) {
  const out = h('div', { id: 'recover-result' });
  const since = h('input', { type: 'datetime-local', id: 'recover-since', value: dateToLocal(new Date(Date.now() - 24 * 3600 * 1000)) });
  return section('Recover failed deliveries',
    h('p', { class: 'muted', text: 'Send again every failed delivery since a time. You see how many first.' }),
    field('Since', since),
    button('Count failures', async () => {
      const at = localToRfc3339(since.value);
      if (!at) { replace(out, notice('error', 'Pick a date and time.')); return; }
      try {
        const dry = await api('POST', `/v1/webhooks/${seg(id)}/recover`, { since: at, dry_run: true });
        if (dry.requeued === 0) { replace(out, notice('info', 'No failed deliveries since then.')); return; }
        replace(out,
          notice('info', `${dry.requeued} failed ${dry.requeued === 1 ? 'delivery' : 'deliveries'} since then will be sent again.`),
          button(`Recover ${dry.requeued}`, async () => {
            try {
              const r = await api('POST', `/v1/webhooks/${seg(id)}/recover`, { since: at });
              replace(out, notice('ok', `Re-queued ${r.requeued} ${r.requeued === 1 ? 'delivery' : 'deliveries'}.`));
            } catch (e) { replace(out, notice('error', e.message, e.reasons)); }
          }, { id: 'recover-confirm' }));
      } catch (e) { replace(out, notice('error', e.message, e.reasons)); }
    }, { class: 'secondary', id: 'recover-count' }),
    out);
}

function deliveriesSection(id, w, types) {
  const list = h('div', { id: 'deliveries' });
  const status = h('select', { id: 'filter-status' },
    h('option', { value: '', text: 'any' }),
    ['succeeded', 'pending', 'failed', 'exhausted', 'cancelled'].map((s) => h('option', { value: s, text: s })));
  const typeSel = h('select', { id: 'filter-type' },
    h('option', { value: '', text: 'any' }),
    (types.length ? types : w.event_types).map((t) => h('option', { value: t, text: t })));
  const since = h('input', { type: 'datetime-local', id: 'filter-since' });
  const until = h('input', { type: 'datetime-local', id: 'filter-until' });
  const filters = () => ({
    status: status.value,
    event_type: typeSel.value,
    since: localToRfc3339(since.value),
    until: localToRfc3339(until.value),
  });
  const load = async (cursor) => {
    const body = cursor ? list.querySelector('tbody') : null;
    let page;
    try {
      page = await api('GET', `/v1/webhooks/${seg(id)}/deliveries${query({ ...filters(), limit: 20, cursor })}`);
    } catch (e) { replace(list, notice('error', e.message, e.reasons)); return; }
    const rows = page.data.map((d) => h('tr', { 'data-id': d.id, 'data-status': d.status },
      h('td', { 'data-label': 'Created' }, h('a', { href: `/portal/deliveries/${seg(d.id)}` }, time(d.created_at))),
      h('td', { 'data-label': 'Event type', text: d.event_type }),
      h('td', { 'data-label': 'State' }, stateBadge(d.status)),
      h('td', { 'data-label': 'Last answer', text: d.last_status_code ? `HTTP ${d.last_status_code}` : (d.last_error || '—') }),
      h('td', { 'data-label': 'Attempts', text: d.attempts })));
    if (body) {
      append(body, rows);
      list.querySelector('.more')?.remove();
    } else if (rows.length === 0) {
      replace(list, h('p', { class: 'empty', id: 'no-deliveries', text: 'No deliveries match.' }));
      return;
    } else {
      replace(list, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, ['Created', 'Event type', 'State', 'Last answer', 'Attempts'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows)));
    }
    if (page.next_cursor) {
      append(list, [button('Load more', () => load(page.next_cursor), { class: 'secondary more', id: 'more-deliveries' })]);
    }
  };
  const form = h('form', { class: 'filters', id: 'filters' },
    field('Status', status), field('Event type', typeSel), field('From', since), field('To', until),
    h('div', { class: 'field' }, h('button', { type: 'submit', text: 'Filter' })));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  load();
  return section('Deliveries', form,
    button('Refresh', () => load(), { class: 'secondary', id: 'refresh-deliveries' }), list);
}

/** `/portal/deliveries/{id}`: a delivery and every attempt. */
export async function deliveryPage(ctx, id) {
  const d = await api('GET', `/v1/deliveries/${seg(id)}`);
  const msg = h('div', { id: 'delivery-msg' });
  const attempts = d.attempts.length
    ? h('ol', { class: 'attempts', id: 'attempts', reversed: true },
      d.attempts.slice().reverse().map((a) => h('li', { 'data-status': a.status_code ?? '' },
        h('p', { class: 'muted', text: `Attempt ${a.number} (${a.trigger})` }), attemptView(a))))
    : h('p', { class: 'empty', text: 'No attempts yet.' });
  const row = (k, v) => [h('dt', { text: k }), h('dd', {}, v)];
  replace(ctx.main,
    h('p', {}, h('a', { href: `/portal/webhooks/${seg(d.webhook_id)}`, text: '← Webhook' })),
    h('h1', { text: `Delivery ${d.id}` }),
    h('section', { class: 'card' },
      h('dl', { class: 'facts' },
        row('State', stateBadge(d.status)),
        row('Event type', d.event_type),
        row('Event id', h('code', { text: d.event_id })),
        row('Created', time(d.created_at)),
        d.next_attempt_at ? row('Next attempt', time(d.next_attempt_at)) : null),
      session.read_only ? null : h('div', { class: 'row' },
        button('Resend now', async () => {
          try {
            const r = await api('POST', `/v1/deliveries/${seg(id)}/retry`);
            await deliveryPage(ctx, id);
            const ok = r.attempt.status_code >= 200 && r.attempt.status_code < 300;
            replace(document.getElementById('delivery-msg'), notice(ok ? 'ok' : 'error', ok ? 'Resent: delivered.' : 'Resent: the endpoint did not accept it.'));
          } catch (e) { replace(msg, notice('error', e.message, e.reasons)); }
        }, { id: 'resend' })),
      msg),
    section('Attempts', attempts));
}
