// Tollgate todos: the web page of the exchange service.
//
// The page never sees a token. The exchange keeps the access token in an
// HttpOnly cookie that the browser sends to the todo API (same host name,
// cookies ignore ports) with every request made with credentials: 'include';
// the header X-CSRF: 1 tells the API the request comes from script, which a
// cross-site form cannot fake. When the API answers 401 the page asks the
// exchange for a fresh access token (POST /refreshtoken) once and retries.
//
// Some actions need a stronger or fresher sign-in (RFC 9470 step-up): the
// API answers 401 with error="insufficient_user_authentication" and names
// acr_values and max_age in its WWW-Authenticate challenge. A refresh would
// not help (it keeps the sign-in's acr and auth_time), so the page sends the
// person to /login with them and back here, then finishes the action.

const $ = (id) => document.getElementById(id);

const el = {
  account: $('account'),
  userName: $('user-name'),
  userEmail: $('user-email'),
  signOut: $('sign-out'),
  notice: $('notice'),
  error: $('error'),
  loading: $('loading'),
  signedOut: $('signed-out'),
  signedOutText: $('signed-out-text'),
  app: $('app'),
  form: $('new-todo-form'),
  input: $('new-todo'),
  list: $('todo-list'),
  empty: $('empty'),
  footer: $('footer'),
  count: $('todo-count'),
  clear: $('clear-completed'),
  deleteAll: $('delete-all'),
  hint: $('hint'),
  template: $('todo-template'),
};

const state = {
  apiBase: '',
  todos: [],
  // id -> {etag, updated}: the ETag the API last gave for a todo, and its
  // updated_at then. A list reload keeps it only while updated_at matches.
  etags: new Map(),
  filter: 'all',
  signedOut: false,
  // sub of the person signed in (from /me): a step-up's pending action is
  // finished only for the same person.
  sub: '',
};

const MAX_TITLE = 500;
const MAX_ORDER = 2147483647;

class SignedOutError extends Error {
  constructor() {
    super('signed out');
    this.name = 'SignedOutError';
  }
}

class APIError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'APIError';
    this.status = status;
  }
}

// StepUpError: the API wants a stronger or fresher sign-in for this call.
class StepUpError extends Error {
  constructor(acrValues, maxAge) {
    super('step-up required');
    this.name = 'StepUpError';
    this.acrValues = acrValues;
    this.maxAge = maxAge;
  }
}

// bearerParams reads the parameters of a Bearer challenge (RFC 6750 §3):
// name="quoted value" or name=token pairs after the scheme. null when the
// header holds no Bearer challenge.
function bearerParams(header) {
  const m = /^\s*Bearer(?:\s+|$)/i.exec(header || '');
  if (!m) return null;
  const params = {};
  const pair = /\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/y;
  pair.lastIndex = m[0].length;
  for (let p = pair.exec(header); p; p = pair.exec(header)) {
    const name = p[1].toLowerCase();
    if (!(name in params)) params[name] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
    if (pair.lastIndex >= header.length) break;
  }
  return params;
}

// The forms the exchange's /login accepts: acr values are printable ASCII
// without quotes or backslashes, separated by spaces; max_age is seconds.
const ACR_VALUES = /^[\x21\x23-\x5B\x5D-\x7E]{1,256}(?: [\x21\x23-\x5B\x5D-\x7E]{1,256}){0,9}$/;
const MAX_AGE = /^[0-9]{1,10}$/;

// stepUpOf returns the StepUpError a 401 answer asks for, or null.
function stepUpOf(resp) {
  if (resp.status !== 401) return null;
  const p = bearerParams(resp.headers.get('WWW-Authenticate'));
  if (!p || p.error !== 'insufficient_user_authentication') return null;
  const acrValues = p.acr_values && ACR_VALUES.test(p.acr_values) && p.acr_values.length <= 512 ? p.acr_values : '';
  const maxAge = p.max_age && MAX_AGE.test(p.max_age) ? p.max_age : '';
  return new StepUpError(acrValues, maxAge);
}

// ---- Talking to the exchange and the todo API -------------------------------

let refreshing = null;

// refresh asks the exchange for a fresh access token cookie and says how
// it went: 'ok'; 'ended' when the exchange refused (the refresh token is
// gone, expired or revoked: the person must sign in again); 'unavailable'
// when the exchange or the authorization server did not answer properly,
// which is no reason to show a signed-in person as signed out. Concurrent
// callers share one request.
function refresh() {
  if (!refreshing) {
    refreshing = fetch('/refreshtoken', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF': '1', Accept: 'application/json' },
    })
      .then((resp) => {
        if (resp.ok) return 'ok';
        return resp.status === 401 || resp.status === 403 ? 'ended' : 'unavailable';
      }, () => 'unavailable')
      .finally(() => {
        setTimeout(() => { refreshing = null; }, 0);
      });
  }
  return refreshing;
}

// api calls the todo API. On a 401 it refreshes the access token once and
// retries; when the exchange refuses the refresh it shows "Signed out" and
// throws SignedOutError. A 401 that asks for step-up throws StepUpError,
// without a refresh. Other answers are returned as they are.
async function api(path, { method = 'GET', body, etag } = {}) {
  const url = path.startsWith('http') ? path : state.apiBase + path;
  const headers = { 'X-CSRF': '1', Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (etag) headers['If-Match'] = etag;
  const send = () => fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'include',
    cache: 'no-store',
  });
  let resp;
  let renewed = '';
  try {
    resp = await send();
    if (resp.status === 401 && !stepUpOf(resp)) {
      renewed = await refresh();
      if (renewed === 'ok') resp = await send();
    }
  } catch (err) {
    if (err instanceof TypeError) {
      throw new APIError(`Cannot reach the todo API at ${state.apiBase}. Is it running?`, 0);
    }
    throw err;
  }
  if (renewed === 'unavailable') {
    throw new APIError('Your sign-in could not be renewed just now: the sign-in service is not answering. Try again in a moment.', 503);
  }
  const stepUp = stepUpOf(resp);
  if (stepUp) throw stepUp;
  if (resp.status === 401) {
    showSignedOut('Your session has ended. Sign in again to see your todos.');
    throw new SignedOutError();
  }
  return resp;
}

// problem reads the message of an RFC 9457 problem+json answer.
async function problem(resp) {
  let text = '';
  try {
    const p = await resp.json();
    text = typeof p.detail === 'string' && p.detail ? p.detail : (p.title || '');
    if (Array.isArray(p.errors) && p.errors.length) {
      const fields = p.errors.map((e) => e && e.detail).filter(Boolean);
      if (fields.length) text = fields.join('; ');
    }
  } catch {
    // not JSON: fall back to the status line
  }
  return text || `The todo API answered ${resp.status} ${resp.statusText}.`.replace(' .', '.');
}

async function check(resp) {
  if (!resp.ok) throw new APIError(await problem(resp), resp.status);
  return resp;
}

function itemPath(id) {
  return '/todos/' + encodeURIComponent(id);
}

function rememberETag(resp, todo) {
  const etag = resp.headers.get('ETag');
  if (etag && todo && todo.id) state.etags.set(todo.id, { etag, updated: todo.updated_at });
}

function etagOf(todo) {
  const e = state.etags.get(todo.id);
  return e && e.updated === todo.updated_at ? e.etag : '';
}

// nextLink returns the rel="next" URL of a Link header, if any.
function nextLink(header) {
  if (!header) return '';
  for (const part of header.split(',')) {
    const m = part.match(/<([^>]*)>\s*;\s*rel="?next"?/i);
    if (m) return m[1];
  }
  return '';
}

// ---- Operations ---------------------------------------------------------------

async function loadTodos() {
  const todos = [];
  let next = '/todos?limit=500';
  for (let pages = 0; next && pages < 100; pages++) {
    const resp = await check(await api(next));
    todos.push(...await resp.json());
    next = nextLink(resp.headers.get('Link'));
    // Only follow links to the todo API itself.
    if (next && new URL(next, state.apiBase).origin !== new URL(state.apiBase).origin) next = '';
  }
  state.todos = todos;
  for (const [id, e] of state.etags) {
    const t = todos.find((x) => x.id === id);
    if (!t || t.updated_at !== e.updated) state.etags.delete(id);
  }
  render();
}

async function addTodo(title) {
  const order = state.todos.reduce((max, t) => Math.max(max, t.order), -1) + 1;
  const body = { title };
  if (order <= MAX_ORDER) body.order = order;
  const resp = await check(await api('/todos', { method: 'POST', body }));
  const todo = await resp.json();
  rememberETag(resp, todo);
  state.todos.push(todo);
  render();
}

// patchTodo changes some fields of a todo, with If-Match when the page
// knows the todo's ETag. A 412 means someone changed it meanwhile: reload.
async function patchTodo(todo, changes) {
  const resp = await api(itemPath(todo.id), { method: 'PATCH', body: changes, etag: etagOf(todo) });
  if (resp.status === 412) {
    await loadTodos();
    showNotice('That todo was changed somewhere else, so the list was reloaded. Please try again.');
    return;
  }
  if (resp.status === 404) {
    await loadTodos();
    showNotice('That todo was deleted somewhere else.');
    return;
  }
  await check(resp);
  const updated = await resp.json();
  rememberETag(resp, updated);
  const i = state.todos.findIndex((t) => t.id === todo.id);
  if (i >= 0) state.todos[i] = updated;
  render();
}

async function deleteTodo(todo) {
  const resp = await api(itemPath(todo.id), { method: 'DELETE' });
  if (resp.status !== 404) await check(resp);
  state.todos = state.todos.filter((t) => t.id !== todo.id);
  state.etags.delete(todo.id);
  render();
}

async function clearCompleted() {
  await check(await api('/todos?completed=true', { method: 'DELETE' }));
  for (const t of state.todos) if (t.completed) state.etags.delete(t.id);
  state.todos = state.todos.filter((t) => !t.completed);
  render();
}

// deleteAll deletes every todo: the action the API may guard with step-up.
async function deleteAll() {
  await check(await api('/todos', { method: 'DELETE' }));
  state.todos = [];
  state.etags.clear();
  render();
}

// ---- Step-up ------------------------------------------------------------------

// Actions that may need a step-up and are finished after it, by name (the
// name, never code, is what waits in sessionStorage during the sign-in),
// with what the page says when it has finished one.
const resumable = {
  deleteAll: { run: deleteAll, done: 'Signed in again: every todo was deleted.' },
};
const PENDING = 'tollgate.stepUp';
const PENDING_MAX_AGE = 10 * 60 * 1000; // a sign-in that took longer is not finished for the person
// resumed names the action this page load finished after a step-up: a
// second step-up for it is not started, so a sign-in that cannot satisfy
// the API cannot loop.
let resumed = '';

// stepUp sends the person to sign in again as err asks, coming back to
// this view, and remembers the action to finish then. It reports whether
// the page is leaving.
function stepUp(err, action) {
  if (action && action === resumed) {
    showError('Signing in again was not enough for this action: the sign-in server did not give the kind of sign-in the todo API asks for.');
    return false;
  }
  if (action) {
    try {
      sessionStorage.setItem(PENDING, JSON.stringify({ action, sub: state.sub, at: Date.now() }));
    } catch {
      // Storage refused (private mode): the person repeats the action.
    }
  }
  const q = new URLSearchParams();
  if (err.acrValues) q.set('acr_values', err.acrValues);
  if (err.maxAge) q.set('max_age', err.maxAge);
  q.set('returnTo', location.pathname + location.hash);
  showNotice('This needs a stronger sign-in. Taking you to sign in again…');
  location.assign('/login?' + q.toString());
  return true;
}

// takePending returns the name of the action waiting for this page load
// to finish after a step-up, once, and forgets it. An action asked for by
// someone else (another account signed in at the step-up) is dropped: it
// was confirmed for that person's list, not this one.
function takePending(sub) {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
    sessionStorage.removeItem(PENDING);
  } catch {
    return '';
  }
  if (!pending || typeof pending.action !== 'string' || !Object.hasOwn(resumable, pending.action)) return '';
  const age = Date.now() - Number(pending.at);
  if (!(age >= 0 && age < PENDING_MAX_AGE)) return '';
  if (!sub || pending.sub !== sub) {
    showNotice('You signed in as another account, so what the other account asked for was not done.');
    return '';
  }
  return pending.action;
}

// busy counts operations under way, mirrored in <html data-busy> (which
// starts at 1 until start is done) for tests and styles.
let busy = 1;

function setBusy(delta) {
  busy += delta;
  document.documentElement.dataset.busy = String(busy);
}

// run performs an operation, showing what went wrong. It reports success.
// An operation that needs a step-up sends the person to sign in again;
// when action names it in resumable, it is finished on the way back.
async function run(op, action = '') {
  hideError();
  setBusy(1);
  let leaving = false;
  try {
    await op();
    return true;
  } catch (err) {
    if (err instanceof StepUpError) {
      leaving = stepUp(err, action);
    } else if (!(err instanceof SignedOutError)) {
      showError(err instanceof APIError ? err.message : `Something went wrong: ${err.message}`);
    }
    return false;
  } finally {
    // Leaving for the sign-in: stay busy, so nothing starts meanwhile.
    if (!leaving) setBusy(-1);
  }
}

// ---- Signing in and out ----------------------------------------------------------

// whoami asks the exchange who is signed in: the user, or null.
async function whoami() {
  const get = () => fetch('/me', { credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' });
  let resp = await get();
  if (resp.status === 401) return null;
  if (!resp.ok) throw new APIError(`The exchange answered ${resp.status} for /me.`, resp.status);
  return resp.json();
}

// loadConfig asks the exchange where the todo API is (GET /config.json).
async function loadConfig() {
  const resp = await fetch('/config.json', { credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!resp.ok) throw new APIError(`The exchange answered ${resp.status} for /config.json.`, resp.status);
  const cfg = await resp.json();
  const raw = cfg.todo_api_url || cfg.todoApiUrl || cfg.todo_api || cfg.api_url || '';
  if (!raw) throw new APIError('The exchange did not say where the todo API is.', 0);
  const u = new URL(raw, location.href);
  return u.origin + u.pathname.replace(/\/+$/, '');
}

async function signOut() {
  el.signOut.disabled = true;
  setBusy(1);
  hideError();
  // A refresh still in flight would set fresh cookies after the sign-out
  // cleared them: let it land first.
  if (refreshing) await refreshing;
  let target = '/';
  try {
    const resp = await fetch('/refreshtoken', {
      method: 'DELETE',
      credentials: 'same-origin',
      headers: { 'X-CSRF': '1', Accept: 'application/json' },
    });
    if (!resp.ok) {
      // Still signed in: going "home" would look like nothing happened.
      showError(`Signing out failed: the exchange answered ${resp.status}. Try again.`);
      el.signOut.disabled = false;
      setBusy(-1);
      return;
    }
    if ((resp.headers.get('Content-Type') || '').includes('json')) {
      const body = await resp.json();
      if (body && typeof body.end_session_url === 'string' && body.end_session_url) {
        const u = new URL(body.end_session_url, location.href);
        if (u.protocol === 'https:' || u.protocol === 'http:') target = u.href;
      }
    }
  } catch {
    showError('Could not reach the exchange to sign out. Try again.');
    el.signOut.disabled = false;
    setBusy(-1);
    return;
  }
  location.assign(target);
}

// ---- Rendering -----------------------------------------------------------------

const rows = new Map(); // todo id -> <li>
let titleIds = 0;

function show(which) {
  el.loading.hidden = which !== 'loading';
  el.signedOut.hidden = which !== 'signed-out';
  el.app.hidden = which !== 'app';
  if (which !== 'app') el.hint.hidden = true;
}

function showUser(me) {
  state.sub = typeof me.sub === 'string' ? me.sub : '';
  const name = me.name || me.preferred_username || me.email || me.sub || 'you';
  el.userName.textContent = name;
  el.userEmail.textContent = me.email && me.email !== name ? me.email : '';
  el.account.hidden = false;
}

function showSignedOut(message) {
  state.signedOut = true;
  state.todos = [];
  state.etags.clear();
  for (const li of rows.values()) li.remove();
  rows.clear();
  el.account.hidden = true;
  el.signedOutText.textContent = message || 'Sign in to see and manage your todos.';
  hideNotice();
  show('signed-out');
}

let noticeTimer = 0;

function showNotice(text) {
  el.notice.textContent = text;
  el.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, 8000);
}

function hideNotice() {
  el.notice.hidden = true;
  el.notice.textContent = '';
}

function showError(text) {
  el.error.textContent = text;
  el.error.hidden = false;
}

function hideError() {
  el.error.hidden = true;
  el.error.textContent = '';
}

function visible(todo) {
  if (state.filter === 'active') return !todo.completed;
  if (state.filter === 'completed') return todo.completed;
  return true;
}

function todoOf(li) {
  return li && state.todos.find((t) => t.id === li.dataset.id);
}

function createRow(todo) {
  const li = el.template.content.firstElementChild.cloneNode(true);
  li.dataset.id = todo.id;
  const title = li.querySelector('.todo-title');
  title.id = `todo-title-${++titleIds}`;
  li.querySelector('.toggle').setAttribute('aria-labelledby', title.id);
  rows.set(todo.id, li);
  return li;
}

function updateRow(li, todo) {
  li.classList.toggle('completed', todo.completed);
  const toggle = li.querySelector('.toggle');
  toggle.checked = todo.completed;
  const title = li.querySelector('.todo-title');
  if (title.textContent !== todo.title) title.textContent = todo.title;
  li.querySelector('.edit').setAttribute('aria-label', `Edit “${todo.title}”`);
  li.querySelector('.destroy').setAttribute('aria-label', `Delete “${todo.title}”`);
}

function render() {
  const shown = state.todos.filter(visible);
  const ids = new Set(shown.map((t) => t.id));
  for (const [id, li] of rows) {
    if (!ids.has(id)) {
      li.remove();
      rows.delete(id);
    }
  }
  let prev = null;
  for (const todo of shown) {
    const li = rows.get(todo.id) || createRow(todo);
    if (!li.classList.contains('editing')) updateRow(li, todo);
    const want = prev ? prev.nextSibling : el.list.firstChild;
    if (li !== want) el.list.insertBefore(li, want);
    prev = li;
  }

  const total = state.todos.length;
  const left = state.todos.filter((t) => !t.completed).length;
  const done = total - left;
  el.count.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = String(left);
  el.count.append(strong, left === 1 ? ' item left' : ' items left');
  el.clear.hidden = done === 0;
  el.deleteAll.hidden = total === 0;
  if (total === 0) disarm();
  el.footer.hidden = total === 0;
  el.hint.hidden = total === 0;
  el.empty.hidden = shown.length > 0;
  el.empty.textContent = total === 0
    ? 'Nothing to do yet. Add your first todo above.'
    : state.filter === 'completed' ? 'No completed todos.' : 'Nothing left to do. Well done!';
  for (const a of el.footer.querySelectorAll('.filters a')) {
    if (a.dataset.filter === state.filter) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---- Editing --------------------------------------------------------------------

function startEdit(li) {
  const todo = todoOf(li);
  if (!todo || li.classList.contains('editing') || li.classList.contains('busy')) return;
  li.classList.add('editing');
  const input = document.createElement('input');
  input.className = 'edit-input';
  input.value = todo.title;
  input.maxLength = MAX_TITLE;
  input.setAttribute('aria-label', `Edit “${todo.title}”`);
  input.enterKeyHint = 'done';
  li.querySelector('.view').append(input);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);

  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    const current = todoOf(li) || todo;
    const focusEdit = document.activeElement === input;
    input.remove();
    li.classList.remove('editing');
    if (save && title && title !== current.title) {
      updateRow(li, { ...current, title });
      li.classList.add('busy');
      await run(() => patchTodo(current, { title }));
      li.classList.remove('busy');
    }
    render();
    if (focusEdit && li.isConnected) li.querySelector('.edit').focus();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      finish(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
}

// ---- Events ---------------------------------------------------------------------

function bind() {
  el.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const title = el.input.value.trim();
    if (!title) return;
    el.input.value = '';
    const ok = await run(() => addTodo(title));
    if (!ok && !el.input.value) el.input.value = title;
  });

  el.list.addEventListener('change', async (e) => {
    if (!e.target.classList.contains('toggle')) return;
    const li = e.target.closest('.todo');
    const todo = todoOf(li);
    if (!todo) return;
    const completed = e.target.checked;
    li.classList.toggle('completed', completed);
    await run(() => patchTodo(todo, { completed }));
    render();
  });

  el.list.addEventListener('click', async (e) => {
    const button = e.target.closest('button');
    if (!button) return;
    const li = button.closest('.todo');
    const todo = todoOf(li);
    if (!todo) return;
    if (button.classList.contains('edit')) {
      startEdit(li);
    } else if (button.classList.contains('destroy')) {
      // Keep the keyboard in the list: focus the next row, else the input.
      const next = li.nextElementSibling || li.previousElementSibling;
      li.classList.add('busy');
      const ok = await run(() => deleteTodo(todo));
      li.classList.remove('busy');
      if (ok) (next && next.isConnected ? next.querySelector('.destroy') : el.input).focus();
    }
  });

  el.list.addEventListener('dblclick', (e) => {
    if (!e.target.closest('.todo-title')) return;
    startEdit(e.target.closest('.todo'));
  });

  el.clear.addEventListener('click', async () => {
    el.clear.disabled = true;
    await run(clearCompleted);
    el.clear.disabled = false;
    if (el.clear.hidden) el.input.focus();
  });

  // Delete all takes two clicks: the first arms the button for a few
  // seconds, the second deletes.
  el.deleteAll.addEventListener('click', async () => {
    if (!el.deleteAll.dataset.armed) {
      arm();
      return;
    }
    disarm();
    el.deleteAll.disabled = true;
    const ok = await run(deleteAll, 'deleteAll');
    el.deleteAll.disabled = false;
    if (ok) el.input.focus();
  });

  el.signOut.addEventListener('click', signOut);

  window.addEventListener('hashchange', () => {
    state.filter = filterFromHash();
    render();
  });
}

let armTimer = 0;

function arm() {
  const n = state.todos.length;
  el.deleteAll.dataset.armed = '1';
  el.deleteAll.textContent = `Click again to delete all ${n}`;
  clearTimeout(armTimer);
  armTimer = setTimeout(disarm, 4000);
}

function disarm() {
  clearTimeout(armTimer);
  delete el.deleteAll.dataset.armed;
  el.deleteAll.textContent = 'Delete all';
}

function filterFromHash() {
  const h = location.hash.replace(/^#\/?/, '');
  return h === 'active' || h === 'completed' ? h : 'all';
}

// ---- Start ----------------------------------------------------------------------

async function start() {
  bind();
  state.filter = filterFromHash();
  // The end-session endpoint sends us back with ?state=…, and a failed
  // sign-in may come back with ?error=…: read them, then drop the query so
  // that a reload starts clean.
  const params = new URLSearchParams(location.search);
  if (location.search) history.replaceState(null, '', location.pathname + location.hash);
  try {
    await load();
  } finally {
    setBusy(-1);
  }
  // Fixed wording only: anybody can link here with ?error_description=…,
  // and this page must not say on our origin whatever a stranger wrote.
  const error = params.get('error');
  if (error) {
    showError(error === 'access_denied'
      ? 'Sign-in was cancelled, so you are not signed in.'
      : 'Signing in did not finish. Please sign in again.');
  }
}

async function load() {
  let me;
  try {
    [state.apiBase, me] = await Promise.all([loadConfig(), whoami()]);
  } catch (err) {
    show('signed-out');
    showError(err instanceof APIError ? err.message : 'Cannot reach the exchange service. Reload the page to try again.');
    return;
  }
  if (!me) {
    showSignedOut();
    return;
  }
  showUser(me);
  show('app');
  render();
  // Ready to type at once; but not on a touch screen, where the focus would
  // pull up the on-screen keyboard over the list before anyone asked.
  if (!matchMedia('(pointer: coarse)').matches) el.input.focus();
  const pending = takePending(me.sub);
  if (!await run(loadTodos) || !pending) return;
  // Back from a step-up: finish what the person asked for.
  resumed = pending;
  if (await run(resumable[pending].run, pending)) showNotice(resumable[pending].done);
}

start();
