// The portal's API client. The session token comes from the URL fragment
// (#token=...), which browsers never send to a server; it is moved to
// sessionStorage and removed from the address bar, and sent only in the
// Authorization header. It never goes in a query string.

const KEY = 'hookbox.portal.token';

/** Takes the token out of the fragment (if any) and returns the session's. */
export function takeToken() {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const fromHash = hash.get('token');
  if (fromHash) {
    window.sessionStorage.setItem(KEY, fromHash);
    window.history.replaceState(null, '', window.location.pathname);
  }
  return window.sessionStorage.getItem(KEY);
}

/** An answer that was not a success. */
export class ApiError extends Error {
  constructor(status, message, reasons) {
    super(message);
    this.status = status;
    this.reasons = reasons || [];
  }
}

/** Calls the API; resolves to the parsed body (null for 204), throws ApiError. */
export async function api(method, path, body) {
  const token = window.sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${token || ''}` };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'The server cannot be reached. Check your connection and try again.');
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.message || `The server answered ${resp.status}`, err.reasons);
  }
  return data;
}

/** Builds a query string from the non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The calling session: { tenant, read_only, expires_at }. */
export const session = { read_only: true, tenant: '', expires_at: null };

/** Reads the calling session (401 when the link expired or was revoked). */
export async function loadSession() {
  Object.assign(session, await api('GET', '/v1/portal/sessions'));
  return session;
}

/** `/v1/...` path segment encoding. */
export const seg = (s) => encodeURIComponent(s);
