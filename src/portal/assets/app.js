// The portal's entry point: takes the session token from the URL fragment, checks
// the session, and routes by path (/portal, /portal/webhooks/{id},
// /portal/deliveries/{id}) with the History API so deep links and Back work.

import { takeToken, loadSession, session } from './api.js';
import { h, replace, notice } from './dom.js';
import { webhookList, webhookPage, deliveryPage } from './views.js';
import { webhookForm } from './forms.js';

const main = document.getElementById('main');

/** Shows a page-wide message in place of the content (expired links, errors). */
export function fatal(title, message) {
  document.body.dataset.state = 'error';
  replace(main, h('section', { class: 'card', id: 'fatal' },
    h('h1', { text: title }),
    notice('error', message)));
}

/** Navigates inside the portal without a reload. */
export function go(path) {
  window.history.pushState(null, '', path);
  render();
}

async function render() {
  const parts = window.location.pathname.replace(/\/+$/, '').split('/').slice(2);
  const ctx = { main, go, fatal };
  document.body.dataset.state = 'loading';
  try {
    if (parts.length === 0) {
      await webhookList(ctx);
    } else if (parts[0] === 'webhooks' && parts[1] === 'new' && !session.read_only) {
      await webhookForm(ctx, null);
    } else if (parts[0] === 'webhooks' && parts.length === 2) {
      await webhookPage(ctx, decodeURIComponent(parts[1]));
    } else if (parts[0] === 'deliveries' && parts.length === 2) {
      await deliveryPage(ctx, decodeURIComponent(parts[1]));
    } else {
      fatal('Page not found', 'There is no such page in this portal.');
      return;
    }
    document.body.dataset.state = 'ready';
  } catch (e) {
    showError(e);
  }
  main.focus({ preventScroll: true });
}

/** An API failure shown as a page: 401 means the link is no longer valid. */
export function showError(e) {
  if (e && e.status === 401) {
    fatal('This link is no longer valid', `${e.message}. Links expire; ask the service that sent you here for a new one.`);
  } else if (e && e.status === 404) {
    fatal('Not found', e.message || 'It does not exist, or it belongs to someone else.');
  } else {
    fatal('Something went wrong', (e && e.message) || String(e));
  }
}

// In-portal links navigate without a reload (keyboard activation included).
document.addEventListener('click', (ev) => {
  const a = ev.target.closest && ev.target.closest('a[href^="/portal"]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  ev.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

async function start() {
  const token = takeToken();
  if (!token) {
    fatal('No portal session', 'Open this page with the link you were given: it carries your access.');
    return;
  }
  try {
    await loadSession();
  } catch (e) {
    showError(e);
    return;
  }
  if (session.read_only) {
    document.getElementById('mode').hidden = false;
    document.body.dataset.readOnly = 'true';
  }
  await render();
}

start();
