// The Strata web console (docs/console.md): a single page over the REST API of
// docs/http.md, and nothing else. No framework and no external resources.
//
// Safety: every text that comes from the server (names, schemas, messages, records) enters
// the DOM as a text node or an attribute value set through the DOM API, never as HTML.
//
// Values (PState contents, depot records) are parsed with a lossless JSON reader that keeps
// numbers as their text and objects as ordered entries, so an int64 beyond 2^53, the
// difference between 1 and 1.0, and the key order of a map are shown exactly as the server
// sent them.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------------------------------
  // DOM helpers

  // el('td', {class: 'x'}, 'text', node, ...): children that are strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  function replaceChildren(node, ...children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    append(node, children);
  }
  function $(id) {
    return document.getElementById(id);
  }

  // ---------------------------------------------------------------------------------------
  // Lossless JSON (docs/values.md, JSON form)

  class JNum {  // a number, kept as the text the server sent ("1", "1.0", "12345678901234567890")
    constructor(text) { this.text = text; }
  }
  class JObj {  // an object, its entries in the order sent
    constructor(entries) { this.entries = entries; }
    get(key) {
      const entry = this.entries.find(([k]) => k === key);
      return entry ? entry[1] : undefined;
    }
  }

  function parseJson(text) {
    let i = 0;
    const fail = (what) => {
      throw new SyntaxError(`${what} at character ${i + 1}`);
    };
    const ws = () => {
      while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
    };
    const value = () => {
      ws();
      const c = text[i];
      if (c === '{') {
        i++;
        const entries = [];
        ws();
        if (text[i] === '}') { i++; return new JObj(entries); }
        for (;;) {
          ws();
          if (text[i] !== '"') fail('expected a string key');
          const key = string();
          ws();
          if (text[i] !== ':') fail('expected ":"');
          i++;
          entries.push([key, value()]);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; return new JObj(entries); }
          fail('expected "," or "}"');
        }
      }
      if (c === '[') {
        i++;
        const items = [];
        ws();
        if (text[i] === ']') { i++; return items; }
        for (;;) {
          items.push(value());
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === ']') { i++; return items; }
          fail('expected "," or "]"');
        }
      }
      if (c === '"') return string();
      for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
        if (text.startsWith(word, i)) { i += word.length; return v; }
      }
      const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
      if (m && m[0]) { i += m[0].length; return new JNum(m[0]); }
      fail(i >= text.length ? 'unexpected end' : `unexpected "${text[i]}"`);
    };
    const string = () => {
      // JSON.parse reads the string literal itself (escapes included).
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      if (i >= text.length) fail('unterminated string');
      i++;
      try {
        return JSON.parse(text.slice(start, i));
      } catch (e) {
        i = start;
        fail('bad string');
      }
    };
    const result = value();
    ws();
    if (i < text.length) fail('unexpected text after the value');
    return result;
  }

  function toJson(v) {
    if (v === null) return 'null';
    if (v === true || v === false) return String(v);
    if (v instanceof JNum) return v.text;
    if (typeof v === 'number') return String(v);
    if (typeof v === 'string') return JSON.stringify(v);
    if (Array.isArray(v)) return '[' + v.map(toJson).join(',') + ']';
    if (v instanceof JObj) {
      return '{' + v.entries.map(([k, x]) => JSON.stringify(k) + ':' + toJson(x)).join(',') + '}';
    }
    return JSON.stringify(v);
  }

  // A tagged object of the JSON form ({"$set": …}, {"$map": …}, {"$bytes": …}, …) is one
  // value, not a map: a map's entries are [[key, value], …] or null when `v` is no map.
  function mapEntries(v) {
    if (!(v instanceof JObj)) return null;
    if (v.entries.length === 1) {
      const [tag, inner] = v.entries[0];
      if (tag === '$map' && Array.isArray(inner)) return inner.map((e) => [e[0], e[1]]);
      if (['$set', '$bytes', '$double', '$string'].includes(tag)) return null;
    }
    return v.entries.map(([k, x]) => [k, x]);
  }
  function setElements(v) {
    if (v instanceof JObj && v.entries.length === 1 && v.entries[0][0] === '$set' &&
        Array.isArray(v.entries[0][1])) {
      return v.entries[0][1];
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // The REST API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // A name in a URL path: percent-encoded, but `$` and `*` as typed (docs/http.md).
  function seg(name) {
    return encodeURIComponent(name).replace(/%24/g, '$');
  }

  // Sends a request; resolves to the parsed body (lossless when `lossless`), rejects with an
  // ApiError carrying the {"error": {"code", "message"}} of a failed request.
  async function api(method, path, body, lossless) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body === undefined ? {} : {'Content-Type': 'application/json'},
        body,
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'UNREACHABLE', `cannot reach the server (${e.message})`);
    }
    const text = await response.text();
    let parsed;
    try {
      parsed = lossless ? parseJson(text) : JSON.parse(text);
    } catch (e) {
      throw new ApiError(response.status, 'BAD_RESPONSE',
                         `the server answered ${response.status} with a body that is not JSON: ` +
                         text.slice(0, 200));
    }
    if (!response.ok) {
      const error = lossless ? null : parsed && parsed.error;
      const errObj = lossless && parsed instanceof JObj ? parsed.get('error') : null;
      const code = error ? error.code : errObj instanceof JObj ? errObj.get('code') : undefined;
      const message =
          error ? error.message : errObj instanceof JObj ? errObj.get('message') : undefined;
      throw new ApiError(response.status, code || `HTTP ${response.status}`,
                         message || text.slice(0, 200));
    }
    return parsed;
  }

  function errorBox(error) {
    if (!(error instanceof ApiError)) {
      return el('div', {class: 'error', role: 'alert'}, el('strong', {}, 'Error'), ' ',
                String(error && error.message || error));
    }
    return el('div', {class: 'error', role: 'alert'},
              el('strong', {class: 'error-code'}, error.code),
              error.status ? el('span', {class: 'error-status'}, ` (HTTP ${error.status})`) : '',
              el('div', {class: 'error-message'}, error.message));
  }

  // ---------------------------------------------------------------------------------------
  // The URL hash: the state of the page (docs/console.md lists the keys)

  const HASH_KEYS = ['module', 'pstate', 'op', 'path', 'key', 'limit',
                     'depot', 'partition', 'from', 'count'];

  function readHash() {
    const params = {};
    for (const part of location.hash.replace(/^#/, '').split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      const raw = eq < 0 ? '' : part.slice(eq + 1);
      let value = raw;
      try {
        value = decodeURIComponent(raw);
      } catch (e) {
        // a stray "%" typed by hand: keep the text as it is
      }
      params[name] = value;
    }
    return params;
  }
  function hashOf(params) {
    const parts = [];
    for (const name of HASH_KEYS) {
      const value = params[name];
      if (value === undefined || value === null || value === '') continue;
      // Readable where it is safe: names and JSON punctuation stay as typed.
      const enc = encodeURIComponent(value).replace(/%(24|5B|5D|2C|3A|7B|7D|2A)/g,
                                                    (m) => decodeURIComponent(m));
      parts.push(`${name}=${enc}`);
    }
    return '#' + parts.join('&');
  }
  // Shows the state `params` (a user action: the panel it fills is scrolled into view).
  function navigate(params) {
    state.scrollTo = params.pstate ? 'section-pstate-browser' :
                     params.depot ? 'section-depot-viewer' : null;
    // Routed here rather than by the hashchange event: setting a hash equal to the current
    // one (after the browser's own percent-encoding) fires no event.
    location.hash = hashOf(params);
    state.navigatedHash = location.hash;
    route();
  }
  function onHashChange() {
    const routed = location.hash === state.navigatedHash;
    state.navigatedHash = null;
    if (!routed) route();
  }

  // ---------------------------------------------------------------------------------------
  // State

  const state = {
    modules: [],        // GET /rest/modules
    modulesError: null,
    shownModule: null,  // the module whose page is rendered
    info: null,         // its GET /rest/MODULE
    failuresFrom: 0,
    refreshTimer: null,
    pageTokens: [],     // browse: the token of each page shown so far ('' for the first)
    scrollTo: null,     // the id of the section the next route scrolls to (set by navigate)
    navigatedHash: null,  // the hash navigate() set and routed; its hashchange is skipped
    live: null,         // the live updates of the select shown: {source, status, value, why}
    browseSeq: 0,       // runBrowser calls so far: a later one supersedes an earlier
  };

  // ---------------------------------------------------------------------------------------
  // Sidebar and overview

  async function loadModules() {
    try {
      const answer = await api('GET', '/rest/modules');
      state.modules = answer.modules || [];
      state.modulesError = null;
    } catch (e) {
      state.modulesError = e;
    }
  }

  function renderSidebar(current) {
    const list = el('ul', {class: 'module-list'});
    list.appendChild(el('li', {class: current ? '' : 'active'},
                        el('a', {href: '#'}, 'All modules')));
    for (const m of state.modules) {
      list.appendChild(el('li', {class: m.name === current ? 'active' : ''},
                          el('a', {href: hashOf({module: m.name}), class: 'module-link'},
                             el('span', {class: 'module-name'}, m.name),
                             el('span', {class: 'badge'}, `v${m.version}`),
                             m.load_error ? el('span', {class: 'badge bad'}, 'failed') : '')));
    }
    replaceChildren($('sidebar'), el('h2', {}, 'Modules'),
                    state.modulesError ? errorBox(state.modulesError) : '',
                    state.modules.length || state.modulesError ? '' :
                        el('p', {class: 'muted'}, 'No module is deployed.'),
                    list);
  }

  async function renderOverview() {
    state.shownModule = null;
    const main = $('main');
    replaceChildren(main, el('h1', {}, 'Modules'));
    let stats = null;
    try {
      stats = await api('GET', '/rest/stats?failures_limit=0');
    } catch (e) {
      main.appendChild(errorBox(e));
    }
    if (stats && stats.server) {
      const s = stats.server;
      main.appendChild(el('p', {class: 'muted server-figures'},
                          `Up ${formatDuration(s.uptime_ms)} · ${s.connections} connections open · ` +
                          `${s.total_connections} since start · ${s.requests} requests`));
    }
    const byName = {};
    for (const ms of (stats && stats.modules) || []) byName[ms.module] = ms;
    const grid = el('div', {class: 'cards'});
    for (const m of state.modules) {
      const ms = byName[m.name];
      const lag = ms ? (ms.topologies || []).reduce((sum, t) => sum + t.lag, 0) : null;
      grid.appendChild(el('a', {class: 'card card-link', href: hashOf({module: m.name})},
                          el('h3', {}, m.name, ' ', el('span', {class: 'badge'}, `v${m.version}`)),
                          m.load_error ? el('div', {class: 'error'}, m.load_error) : '',
                          el('dl', {class: 'facts'},
                             fact('partitions', m.partitions),
                             fact('depots', (m.depots || []).length),
                             fact('PStates', (m.pstates || []).length),
                             fact('topologies', (m.topologies || []).length),
                             fact('queries', (m.queries || []).length),
                             lag === null ? '' : fact('lag', `${lag} records`),
                             ms ? fact('failures', ms.failures) : '')));
    }
    main.appendChild(grid);
  }

  function fact(name, value) {
    return [el('dt', {}, name), el('dd', {}, String(value))];
  }

  // ---------------------------------------------------------------------------------------
  // A module's page

  async function renderModule(name) {
    const main = $('main');
    state.shownModule = name;
    state.info = null;
    state.failuresFrom = 0;
    replaceChildren(main, el('h1', {}, name), el('p', {class: 'muted'}, 'Loading…'));
    let info;
    try {
      info = await api('GET', `/rest/${seg(name)}`);
    } catch (e) {
      replaceChildren(main, el('h1', {}, name), errorBox(e));
      return false;
    }
    if (state.shownModule !== name) return false;
    state.info = info;
    replaceChildren(
        main,
        el('h1', {}, info.name, ' ', el('span', {class: 'badge'}, `version ${info.version}`), ' ',
           el('span', {class: 'badge'}, `${info.partitions} partitions`)),
        info.load_error ?
            el('div', {class: 'error'}, el('strong', {}, 'Failed to load'),
               el('div', {class: 'error-message'}, info.load_error)) : '',
        el('nav', {class: 'jump'},
           ['Lag', 'Failures', 'PState browser', 'Depot viewer', 'Definitions'].map(
               (title) => el('button', {type: 'button', class: 'link',
                                        onclick: () => $(sectionId(title)).scrollIntoView()},
                             title))),
        section('Lag', el('div', {id: 'lag-charts', class: 'charts'},
                          el('p', {class: 'muted'}, 'Loading…')),
                el('div', {id: 'progress'})),
        section('Failures', el('div', {id: 'failures'})),
        section('PState browser', browserForm(info)),
        section('Depot viewer', depotForm(info)),
        section('Definitions', definitions(info)));
    return true;
  }

  function sectionId(title) {
    return 'section-' + title.toLowerCase().replace(/[^a-z]+/g, '-');
  }
  function section(title, ...children) {
    return el('section', {id: sectionId(title)}, el('h2', {}, title), children);
  }

  function definitions(info) {
    const link = (target) => el('a', {href: hashOf({module: target})}, target);
    return el('div', {class: 'definitions'},
      el('h3', {}, 'Depots'),
      table(['name', 'partitioning', 'schema', ''], (info.depots || []).map((d) => [
        el('code', {}, d.name), d.partitioning, el('code', {class: 'schema'}, d.record_schema_text),
        el('button', {type: 'button', onclick: () => navigate({module: info.name, depot: d.name,
                                                              partition: '0'})}, 'view')])),
      el('h3', {}, 'PStates'),
      table(['name', 'schema', ''], (info.pstates || []).map((p) => [
        el('code', {}, p.name), el('code', {class: 'schema'}, p.schema_text),
        el('button', {type: 'button', onclick: () => navigate({module: info.name, pstate: p.name,
                                                              op: 'page'})}, 'browse')])),
      el('h3', {}, 'Topologies'),
      table(['name', 'kind', 'sources'], (info.topologies || []).map((t) => [
        el('code', {}, t.name), t.kind, (t.sources || []).join(', ')])),
      el('h3', {}, 'Queries'),
      (info.queries || []).length === 0 ? el('p', {class: 'muted'}, 'None.') :
        table(['name', 'parameters'], info.queries.map((q) => [
          el('code', {}, q.name),
          (q.params || []).map((p, i) => [i ? ', ' : '', el('code', {}, p.name), ': ',
                                          el('code', {class: 'schema'}, p.schema_text)])])),
      el('h3', {}, 'Dependencies'),
      el('p', {}, 'Depends on: ',
         (info.depends_on || []).length ? info.depends_on.map((n, i) => [i ? ', ' : '', link(n)]) :
                                          el('span', {class: 'muted'}, 'nothing')),
      el('p', {}, 'Used by: ',
         (info.dependents || []).length ? info.dependents.map((n, i) => [i ? ', ' : '', link(n)]) :
                                          el('span', {class: 'muted'}, 'no module')));
  }

  function table(headers, rows, attrs) {
    return el('table', attrs || {},
              el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
              el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c) => el('td', {}, c))))));
  }

  // ---------------------------------------------------------------------------------------
  // Lag charts, progress and failures (refreshed every REFRESH_MS)

  async function refreshLiveSections() {
    const name = state.shownModule;
    if (!name || !state.info) return;
    const [lag, stats] = await Promise.all([
      api('GET', `/rest/${seg(name)}/lag`).catch((e) => e),
      api('GET', `/rest/${seg(name)}/stats?failures_from=${state.failuresFrom}&failures_limit=50`)
          .catch((e) => e),
    ]);
    if (state.shownModule !== name || !$('lag-charts')) return;
    renderCharts(lag);
    renderProgress(stats);
    renderFailures(stats);
  }

  function renderCharts(lag) {
    const box = $('lag-charts');
    if (lag instanceof Error) return replaceChildren(box, errorBox(lag));
    const topologies = (state.info.topologies || []).map((t) => t.name);
    for (const name of Object.keys(lag.topologies || {})) {
      if (!topologies.includes(name)) topologies.push(name);
    }
    if (topologies.length === 0) {
      return replaceChildren(box, el('p', {class: 'muted'}, 'This module has no topologies.'));
    }
    replaceChildren(box, topologies.map((name) => {
      const points = (lag.topologies || {})[name] || [];
      const now = points.length ? points[points.length - 1][1] : null;
      return el('figure', {class: 'chart', 'data-topology': name},
                el('figcaption', {}, el('code', {}, name),
                   el('span', {class: 'chart-now'},
                      now === null ? 'no sample yet' : `lag now: ${now} records`)),
                lagChart(points, lag.interval_ms));
    }));
  }

  // An inline SVG line chart of [[unix_ms, lag], …]: time on x, records on y.
  function lagChart(points, intervalMs) {
    const W = 520, H = 190, left = 56, right = 14, top = 12, bottom = 40;
    const plotW = W - left - right, plotH = H - top - bottom;
    const root = svg('svg', {class: 'lag-chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H,
                             role: 'img', 'aria-label': 'lag over time'});
    const tMax = points.length ? points[points.length - 1][0] : Date.now();
    // At least the last minute, so a young history does not stretch one point over the axis.
    const span = Math.max(60000, points.length ? tMax - points[0][0] : 0, intervalMs || 0);
    const tMin = tMax - span;
    const maxLag = Math.max(0, ...points.map((p) => p[1]));
    const yTicks = niceTicks(maxLag);
    const yMax = yTicks[yTicks.length - 1];
    const x = (t) => left + ((t - tMin) / span) * plotW;
    const y = (v) => top + plotH - (v / yMax) * plotH;

    for (const v of yTicks) {
      root.appendChild(svg('line', {class: 'grid', x1: left, x2: left + plotW, y1: y(v), y2: y(v)}));
      root.appendChild(svg('text', {class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end'},
                           formatCount(v)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = tMin + (span * i) / 4;
      root.appendChild(svg('line', {class: 'axis', x1: x(t), x2: x(t), y1: top + plotH,
                                    y2: top + plotH + 4}));
      root.appendChild(svg('text', {class: 'tick', x: x(t), y: top + plotH + 16,
                                    'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle'},
                           formatClock(t)));
    }
    root.appendChild(svg('line', {class: 'axis', x1: left, x2: left + plotW, y1: top + plotH,
                                  y2: top + plotH}));
    root.appendChild(svg('line', {class: 'axis', x1: left, x2: left, y1: top, y2: top + plotH}));
    root.appendChild(svg('text', {class: 'axis-label', x: left + plotW / 2, y: H - 4,
                                  'text-anchor': 'middle'}, 'time'));
    root.appendChild(svg('text', {class: 'axis-label', x: 12, y: top + plotH / 2,
                                  'text-anchor': 'middle',
                                  transform: `rotate(-90 12 ${top + plotH / 2})`}, 'records'));
    if (points.length) {
      const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
                    .join(' ');
      const area = `${d} L${x(tMax).toFixed(1)},${y(0)} L${x(points[0][0]).toFixed(1)},${y(0)} Z`;
      root.appendChild(svg('path', {class: 'lag-area', d: area}));
      root.appendChild(svg('path', {class: 'lag-line', d, 'data-points': points.length}));
      const last = points[points.length - 1];
      root.appendChild(svg('circle', {class: 'lag-point', cx: x(last[0]), cy: y(last[1]), r: 3.5},
                           svg('title', {}, `${formatClock(last[0])}: ${last[1]} records`)));
    }
    return root;
  }

  // 0 and 3–5 round steps up to at least `max` (at least 1).
  function niceTicks(max) {
    if (max <= 0) return [0, 1];
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const stepInt = Math.max(1, Math.ceil(step));
    const ticks = [];
    for (let v = 0; v < max + stepInt; v += stepInt) {
      ticks.push(v);
      if (v >= max) break;
    }
    return ticks;
  }
  function formatCount(v) {
    if (v >= 1e9) return (v / 1e9).toFixed(v % 1e9 ? 1 : 0) + 'G';
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
    if (v >= 1e4) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
    return String(v);
  }
  function formatClock(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
        .map((n) => String(n).padStart(2, '0')).join(':');
  }
  function formatDuration(ms) {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function renderProgress(stats) {
    const box = $('progress');
    if (stats instanceof Error) return replaceChildren(box, errorBox(stats));
    const rows = (stats.topologies || []).map((t) => {
      const end = t.processed_offset + t.lag;
      const pct = end > 0 ? (100 * t.processed_offset) / end : 100;
      return [el('code', {}, t.topology), el('code', {}, t.depot), String(t.partition),
              String(t.processed_offset), String(end), String(t.lag),
              el('div', {class: 'bar', title: `${pct.toFixed(1)}% processed`},
                 el('div', {class: 'bar-fill', style: `width:${pct.toFixed(1)}%`}))];
    });
    // A long table starts folded; a person's choice to open or fold it survives the refresh.
    const previous = box.querySelector('details.progress');
    const open = previous ? previous.open : rows.length <= 16;
    const lagged = (stats.topologies || []).filter((t) => t.lag > 0).length;
    replaceChildren(box,
        el('details', {class: 'progress', open},
           el('summary', {}, el('h3', {}, 'Progress per partition'),
              el('span', {class: 'muted'},
                 ` ${rows.length} topology partition${rows.length === 1 ? '' : 's'}, ` +
                 `${lagged} behind`)),
           rows.length ? table(['topology', 'depot', 'partition', 'processed', 'end', 'lag', ''],
                               rows, {class: 'progress-table'}) :
                         el('p', {class: 'muted'}, 'No topology progress.')),
        (stats.rebuilds || []).length ? [el('h3', {}, 'Rebuilds running'),
            table(['kind', 'names', 'done', 'total'], stats.rebuilds.map((r) => [
              r.kind, (r.names || []).join(', '), String(r.records_done),
              String(r.records_total)]))] : '',
        (stats.microbatches || []).length ? [el('h3', {}, 'Microbatches'),
            table(['topology', 'last batch', 'stalled'], stats.microbatches.map((m) => [
              el('code', {}, m.topology), String(m.batch),
              m.stalled ? el('span', {class: 'bad-text'}, m.stalled) : 'no']))] : '');
  }

  function renderFailures(stats) {
    const box = $('failures');
    if (stats instanceof Error) return replaceChildren(box, errorBox(stats));
    const page = stats.failure_page || [];
    const module = state.shownModule;
    const pager = el('div', {class: 'pager'},
        el('button', {type: 'button', disabled: state.failuresFrom === 0,
                      onclick: () => { state.failuresFrom = Math.max(0, state.failuresFrom - 50);
                                       refreshLiveSections(); }}, '‹ previous'),
        el('span', {class: 'muted'},
           page.length ? `${state.failuresFrom + 1}–${state.failuresFrom + page.length} of ` +
                         `${stats.failures}` : ''),
        el('button', {type: 'button', disabled: state.failuresFrom + page.length >= stats.failures,
                      onclick: () => { state.failuresFrom += 50; refreshLiveSections(); }},
           'next ›'));
    replaceChildren(box,
        el('p', {}, stats.failures === 0 ? 'No failures.' :
                    `${stats.failures} record${stats.failures === 1 ? '' : 's'} failed.`),
        page.length ? [table(['topology', 'depot', 'partition', 'offset', 'message'],
            page.map((f) => [el('code', {}, f.topology), el('code', {}, f.depot),
                             String(f.partition),
                             el('a', {href: hashOf({module, depot: f.depot,
                                                    partition: String(f.partition),
                                                    from: String(f.offset), count: '1'}),
                                      title: 'show the record'}, String(f.offset)),
                             el('span', {class: 'message'}, f.message)]),
            {class: 'failures-table'}), stats.failures > 50 ? pager : ''] : '');
  }

  // ---------------------------------------------------------------------------------------
  // PState browser

  const PATH_EXAMPLES = [
    ['[]', 'the whole value (with browse: each partition\'s entries)'],
    ['[["key","fox"]]', 'the value at key "fox"'],
    ['[["key","bob"],["range",{"limit":20}],["all"]]', 'the first 20 entries under "bob"'],
    ['[["map_keys"]]', 'the keys (with browse)'],
    ['[["key","alice"],["size"]]', 'how many entries "alice" has'],
  ];

  function browserForm(info) {
    const pstates = info.pstates || [];
    return el('form', {id: 'browser-form', class: 'panel', onsubmit: (e) => {
                         e.preventDefault();
                         submitBrowser(e.submitter && e.submitter.value || 'select');
                       }},
      el('div', {class: 'row'},
         el('label', {}, 'PState',
            el('select', {id: 'browser-pstate'},
               pstates.map((p) => el('option', {value: p.name}, p.name)))),
         el('label', {class: 'grow'}, 'Path (JSON)',
            el('input', {id: 'browser-path', type: 'text', spellcheck: 'false', value: '[]',
                         placeholder: '[["key","fox"]]'})),
         el('label', {}, 'Partition key (JSON, optional)',
            el('input', {id: 'browser-key', type: 'text', spellcheck: 'false',
                         placeholder: '"fox"'}))),
      el('div', {class: 'row'},
         el('button', {type: 'submit', value: 'select', class: 'primary'}, 'Select'),
         el('button', {type: 'submit', value: 'selectOne'}, 'Select one'),
         el('button', {type: 'submit', value: 'page'}, 'Browse all partitions'),
         el('label', {class: 'inline'}, 'page size',
            el('input', {id: 'browser-limit', type: 'number', min: 1, max: 10000, value: 100}))),
      el('details', {class: 'hint'},
         el('summary', {}, 'Paths'),
         el('p', {}, 'A path is a JSON list of steps (docs/paths.md, wire form): ',
            el('code', {}, '["key", k]'), ', ', el('code', {}, '["nth", i]'), ', ',
            el('code', {}, '["all"]'), ', ', el('code', {}, '["map_keys"]'), ', ',
            el('code', {}, '["map_vals"]'), ', ', el('code', {}, '["size"]'), ', ',
            el('code', {}, '["range", {"from": v, "to": v, "limit": n, "reverse": true}]'), '. ',
            'Values use the JSON form of docs/values.md (', el('code', {}, '1'), ' is an int, ',
            el('code', {}, '1.0'), ' a double). Select reads one partition: the one of the ',
            'partition key, else of the path\'s first key. Browse reads every partition, a page ',
            'at a time.'),
         el('ul', {}, PATH_EXAMPLES.map(([path, what]) =>
             el('li', {}, el('button', {type: 'button', class: 'link',
                                         onclick: () => { $('browser-path').value = path; }},
                                   el('code', {}, path)), ' — ', what)))),
      el('div', {id: 'browser-result', class: 'result'}));
  }

  function submitBrowser(op) {
    navigate({module: state.shownModule, pstate: $('browser-pstate').value, op,
              path: $('browser-path').value.trim(), key: $('browser-key').value.trim(),
              limit: op === 'page' ? $('browser-limit').value : ''});
  }

  // Runs the browse the hash asks for: {pstate, op, path, key, limit}.
  async function runBrowser(params) {
    stopLive();
    const seq = ++state.browseSeq;
    const result = $('browser-result');
    if (!result) return;
    const pstate = params.pstate;
    const op = ['select', 'selectOne', 'page'].includes(params.op) ? params.op : 'select';
    const pathText = params.path || '[]';
    if (![...$('browser-pstate').options].some((o) => o.value === pstate)) {
      $('browser-pstate').appendChild(el('option', {value: pstate}, pstate));
    }
    $('browser-pstate').value = pstate;
    $('browser-path').value = pathText;
    $('browser-key').value = params.key || '';
    if (params.limit) $('browser-limit').value = params.limit;

    let path, key;
    try {
      path = parseJson(pathText);
    } catch (e) {
      return replaceChildren(result, errorBox(new Error(`the path is not JSON: ${e.message}`)));
    }
    try {
      key = params.key ? parseJson(params.key) : undefined;
    } catch (e) {
      return replaceChildren(result,
                             errorBox(new Error(`the partition key is not JSON: ${e.message}`)));
    }
    const base = `/rest/${seg(state.shownModule)}/pstate/${seg(pstate)}`;
    if (op === 'page') {
      state.pageTokens = [''];
      return showPage(base, path, Number(params.limit) || 100);
    }
    const body = `{"path":${toJson(path)}${key === undefined ? '' : `,"partition_key":${toJson(key)}`}}`;
    replaceChildren(result, el('p', {class: 'muted'}, 'Reading…'));
    const title = `${op === 'selectOne' ? 'Select one' : 'Select'} ${pstate} ${toJson(path)}`;
    try {
      const answer = await api('POST', `${base}/${op}`, body, true);
      showSelected(result, op, title, op === 'selectOne' ? answer.get('value') : answer.get('values') || []);
    } catch (e) {
      return replaceChildren(result, errorBox(e));
    }
    if (state.browseSeq === seq) startLive(result, base, op, title, path, key);
  }

  // A select's answer: `value` is the one value (selectOne) or the list of values (select).
  function showSelected(result, op, title, value) {
    const indicator = liveIndicator();
    if (op === 'selectOne') {
      replaceChildren(result, el('p', {class: 'result-title'}, title, indicator), valueView(value));
    } else {
      const values = Array.isArray(value) ? value : [];
      replaceChildren(result,
          el('p', {class: 'result-title'}, title, el('span', {class: 'muted'},
             ` — ${values.length} value${values.length === 1 ? '' : 's'}`), indicator),
          valuesView(values));
    }
  }

  // ---------------------------------------------------------------------------------------
  // Live updates of a select (docs/http.md, "Subscribe"): an EventSource on …/subscribe with
  // the same path and partition key; each `update` applies its diffs to the value shown and
  // shows it again. One at a time: browsing elsewhere closes it (stopLive).

  function stopLive() {
    if (!state.live) return;
    state.live.source.close();
    state.live = null;
    // A result left on the page is no longer updated: it loses its indicator.
    const indicator = $('browser-live');
    if (indicator) indicator.remove();
  }

  // The indicator of the result title, as the live state says.
  function liveIndicator(live = state.live) {
    if (!live) return '';
    const labels = {connecting: 'connecting…', live: '● live', reconnecting: 'reconnecting…',
                    ended: 'not live', off: 'not live'};
    return el('span', {id: 'browser-live', class: `live live-${live.status}`,
                       title: live.why || 'updated as the PState changes'},
              labels[live.status] || live.status);
  }
  function setLiveStatus(live, status, why) {
    live.status = status;
    live.why = why;
    const old = $('browser-live');
    if (old && state.live === live) old.replaceWith(liveIndicator(live));
  }

  function startLive(result, base, op, title, path, key) {
    stopLive();
    if (typeof EventSource === 'undefined') return;
    const query = `path=${encodeURIComponent(toJson(path))}` +
                  (key === undefined ? '' : `&partition_key=${encodeURIComponent(toJson(key))}`) +
                  `&one=${op === 'selectOne'}`;
    const live = {source: new EventSource(`${base}/subscribe?${query}`), status: 'connecting',
                  value: undefined, why: null};
    state.live = live;
    const current = () => state.live === live;
    const show = () => showSelected(result, op, title, live.value);
    setLiveStatus(live, 'connecting');
    const titleNode = result.querySelector('.result-title');
    if (titleNode && !$('browser-live')) titleNode.appendChild(liveIndicator());
    live.source.addEventListener('subscribed', (e) => {
      if (!current()) return;
      // Also after a reconnection: the whole value again.
      live.value = parseJson(e.data).get('value');
      live.status = 'live';
      live.why = null;
      show();
    });
    live.source.addEventListener('update', (e) => {
      if (!current() || live.value === undefined) return;
      try {
        for (const diff of parseJson(e.data).get('diffs')) live.value = applyDiff(live.value, diff);
      } catch (err) {
        live.source.close();
        setLiveStatus(live, 'off', `an update did not apply (${err.message}); select again`);
        return;
      }
      show();
    });
    live.source.addEventListener('ended', (e) => {
      if (!current()) return;
      const error = parseJson(e.data).get('error');
      live.source.close();
      setLiveStatus(live, 'ended', error instanceof JObj ?
                    `${error.get('code')}: ${error.get('message')}` : 'the subscription ended');
    });
    live.source.onerror = () => {
      if (!current() || live.status === 'ended') return;
      // CLOSED: the server refused the stream (a path a subscription does not take, too many
      // streams); else the browser reconnects by itself and gets a `subscribed` again.
      if (live.source.readyState === EventSource.CLOSED) {
        setLiveStatus(live, 'off', 'the server refused a live subscription of this path (or ' +
                                   'has too many open): this result is not updated');
      } else {
        setLiveStatus(live, 'reconnecting', 'the connection was lost; reconnecting');
      }
    };
  }

  // Diffs (docs/subscriptions.md) on values of the lossless reader: maps are JObj (plain, or
  // {"$map": [[k, v], …]}), sets {"$set": […]}, lists arrays. Keys and elements are compared
  // by their JSON text. Returns the new value; throws when the diff does not fit.
  function applyDiff(value, diff) {
    const op = diff.get('op');
    const at = diff.get('at') || [];
    if (op === 'resync' || (op === 'replace' && at.length === 0)) return diff.get('value');
    const same = (a, b) => toJson(a) === toJson(b);
    const steps = op === 'replace' ? at.slice(0, -1) : at;
    let node = value;
    for (const step of steps) node = childOf(node, step);
    if (op === 'replace') {
      setChild(node, at[at.length - 1], diff.get('value'));
    } else if (op === 'key_set') {
      setChild(node, diff.get('key'), diff.get('value'));
    } else if (op === 'key_removed') {
      const entries = mapEntryList(node);
      const i = entries.findIndex(([k]) => same(k, diff.get('key')));
      if (i >= 0) entries.splice(i, 1);
    } else if (op === 'set_added' || op === 'set_removed') {
      const elements = setElements(node);
      if (elements === null) throw new Error(`${op} on a value that is no set`);
      const i = elements.findIndex((x) => same(x, diff.get('value')));
      if (op === 'set_added' && i < 0) elements.push(diff.get('value'));
      if (op === 'set_removed' && i >= 0) elements.splice(i, 1);
    } else if (op === 'seq_insert' || op === 'seq_remove') {
      if (!Array.isArray(node)) throw new Error(`${op} on a value that is no list`);
      const index = Number(diff.get('index').text);
      if (op === 'seq_insert') node.splice(index, 0, diff.get('value'));
      else node.splice(index, 1);
    } else {
      throw new Error(`unknown diff op ${op}`);
    }
    return value;
  }
  // The [key, value] pairs of a map, as stored in the JObj (changing them changes the map).
  function mapEntryList(node) {
    if (!(node instanceof JObj)) throw new Error('a step into a value that is no map');
    if (node.entries.length === 1 && node.entries[0][0] === '$map') return node.entries[0][1];
    return node.entries;
  }
  function childOf(node, step) {
    if (Array.isArray(node)) {
      const child = node[Number(step instanceof JNum ? step.text : step)];
      if (child === undefined) throw new Error('a list index out of range');
      return child;
    }
    const entry = mapEntryList(node).find(([k]) => toJson(k) === toJson(step));
    if (!entry) throw new Error(`no key ${toJson(step)}`);
    return entry[1];
  }
  function setChild(node, key, child) {
    if (Array.isArray(node)) {
      node[Number(key instanceof JNum ? key.text : key)] = child;
      return;
    }
    const tagged = node instanceof JObj && node.entries.length === 1 && node.entries[0][0] === '$map';
    if (!tagged && typeof key !== 'string' && node instanceof JObj) {
      // A key that is not a string: the map takes the tagged form.
      node.entries = [['$map', node.entries.map(([k, x]) => [k, x])]];
    }
    const entries = mapEntryList(node);
    const entry = entries.find(([k]) => toJson(k) === toJson(key));
    if (entry) {
      entry[1] = child;
    } else if (typeof key === 'string' && !tagged) {
      // Plain maps are shown in key order, as the server sends them.
      const i = entries.findIndex(([k]) => k > key);
      entries.splice(i < 0 ? entries.length : i, 0, [key, child]);
    } else {
      entries.push([key, child]);
    }
  }

  // Shows the page whose token is the last of state.pageTokens.
  async function showPage(base, path, limit) {
    const result = $('browser-result');
    const token = state.pageTokens[state.pageTokens.length - 1];
    const body = `{"path":${toJson(path)},"limit":${limit}${token ? `,"token":${JSON.stringify(token)}` : ''}}`;
    replaceChildren(result, el('p', {class: 'muted'}, 'Reading…'));
    let answer;
    try {
      answer = await api('POST', `${base}/page`, body, true);
    } catch (e) {
      return replaceChildren(result, errorBox(e));
    }
    const values = answer.get('values') || [];
    const next = answer.get('next_token');
    const pageNo = state.pageTokens.length;
    // A page of the root's entries is one map per partition part: shown as one table.
    const merged = values.every((v) => mapEntries(v) !== null) ?
        [values.flatMap((v) => mapEntries(v))] : null;
    replaceChildren(result,
        el('p', {class: 'result-title'}, `Browse all partitions, page ${pageNo}`,
           el('span', {class: 'muted'}, ` — path ${toJson(path)}, ${limit} entries per page, ` +
                                        'in key order within each partition, partition after partition')),
        merged ? entriesTable(merged[0]) : valuesView(values),
        el('div', {class: 'pager'},
           el('button', {type: 'button', disabled: pageNo <= 1,
                         onclick: () => { state.pageTokens.pop(); showPage(base, path, limit); }},
              '‹ previous page'),
           el('button', {type: 'button', disabled: !(typeof next === 'string' && next),
                         id: 'browser-next',
                         onclick: () => { state.pageTokens.push(next); showPage(base, path, limit); }},
              'next page ›'),
           typeof next === 'string' && next ? '' : el('span', {class: 'muted'}, 'last page')));
  }

  // ---------------------------------------------------------------------------------------
  // Value rendering: tables for maps and lists of records, JSON text for the rest

  function jsonCell(v) {
    return el('code', {class: 'json'}, toJson(v));
  }
  function isRecordMap(v) {  // a map with string keys: its keys can be columns
    return v instanceof JObj && mapEntries(v) !== null && v.entries.every(([k]) => !k.startsWith('$'));
  }

  // The values of a select.
  function valuesView(values) {
    if (values.length === 0) return el('p', {class: 'muted'}, 'No value.');
    if (values.length === 1) return valueView(values[0]);
    return listTable(values);
  }

  // One value: a map as key/value rows, a list of records with their keys as columns, any
  // other list or set one row per element, a scalar as its JSON text.
  function valueView(v) {
    const entries = mapEntries(v);
    if (entries !== null) {
      return entries.length ? entriesTable(entries) : el('p', {class: 'muted'}, 'An empty map.');
    }
    const elements = Array.isArray(v) ? v : setElements(v);
    if (elements !== null) {
      return elements.length ? listTable(elements) :
                               el('p', {class: 'muted'}, Array.isArray(v) ? 'An empty list.' : 'An empty set.');
    }
    return el('pre', {class: 'json scalar'}, toJson(v));
  }

  function entriesTable(entries) {
    return table(['key', 'value'], entries.map(([k, x]) => [jsonCell(k), jsonCell(x)]),
                 {class: 'values-table'});
  }
  function listTable(items) {
    if (items.length && items.every(isRecordMap)) {
      const columns = [];
      for (const item of items) {
        for (const [k] of item.entries) if (!columns.includes(k)) columns.push(k);
      }
      return table(columns, items.map((item) => columns.map((c) => {
        const x = item.get(c);
        return x === undefined ? '' : jsonCell(x);
      })), {class: 'values-table'});
    }
    return table(['#', 'value'], items.map((x, i) => [String(i), jsonCell(x)]),
                 {class: 'values-table'});
  }

  // ---------------------------------------------------------------------------------------
  // Depot viewer

  function depotForm(info) {
    const depots = info.depots || [];
    const partitions = [];
    for (let p = 0; p < (info.partitions || 1); p++) partitions.push(p);
    return el('form', {id: 'depot-form', class: 'panel', onsubmit: (e) => {
                         e.preventDefault();
                         submitDepot(Number($('depot-from').value) || 0);
                       }},
      el('div', {class: 'row'},
         el('label', {}, 'Depot',
            el('select', {id: 'depot-name'}, depots.map((d) => el('option', {value: d.name}, d.name)))),
         el('label', {}, 'Partition',
            el('select', {id: 'depot-partition'},
               partitions.map((p) => el('option', {value: p}, String(p))))),
         el('label', {}, 'From offset',
            el('input', {id: 'depot-from', type: 'number', min: 0, value: 0})),
         el('label', {}, 'Limit',
            el('input', {id: 'depot-limit', type: 'number', min: 1, max: 10000, value: 50})),
         el('button', {type: 'submit', class: 'primary'}, 'Read')),
      el('div', {id: 'depot-result', class: 'result'}));
  }

  function submitDepot(from) {
    navigate({module: state.shownModule, depot: $('depot-name').value,
              partition: $('depot-partition').value, from: String(Math.max(0, from)),
              count: $('depot-limit').value});
  }

  // Reads what the hash asks for: {depot, partition, from, count}.
  async function runDepot(params) {
    const result = $('depot-result');
    if (!result) return;
    const depot = params.depot;
    const partition = Number(params.partition) || 0;
    const from = Math.max(0, Number(params.from) || 0);
    const limit = Math.max(1, Number(params.count) || 50);
    if (![...$('depot-name').options].some((o) => o.value === depot)) {
      $('depot-name').appendChild(el('option', {value: depot}, depot));
    }
    $('depot-name').value = depot;
    $('depot-partition').value = String(partition);
    $('depot-from').value = from;
    $('depot-limit').value = limit;
    replaceChildren(result, el('p', {class: 'muted'}, 'Reading…'));
    let answer;
    try {
      answer = await api('GET', `/rest/${seg(state.shownModule)}/depot/${seg(depot)}` +
                                `?partition=${partition}&from=${from}&limit=${limit}`, undefined, true);
    } catch (e) {
      return replaceChildren(result, errorBox(e));
    }
    const records = answer.get('records') || [];
    const next = answer.get('next');
    const nextFrom = next instanceof JNum ? Number(next.text) : from + records.length;
    replaceChildren(result,
        el('p', {class: 'result-title'}, `${depot}, partition ${partition}`,
           el('span', {class: 'muted'}, records.length ?
               ` — offsets ${toJson(records[0].get('offset'))} to ` +
               `${toJson(records[records.length - 1].get('offset'))}` :
               ` — no record from offset ${from}`)),
        records.length ? table(['offset', 'value'], records.map((r) => [
          el('code', {}, toJson(r.get('offset'))), jsonCell(r.get('value'))]),
          {class: 'values-table depot-table'}) : '',
        el('div', {class: 'pager'},
           el('button', {type: 'button', disabled: from === 0,
                         onclick: () => submitDepot(from - limit)}, '‹ previous'),
           el('button', {type: 'button', disabled: records.length === 0,
                         onclick: () => submitDepot(nextFrom)}, 'next ›')));
  }

  // ---------------------------------------------------------------------------------------
  // Routing

  let routing = Promise.resolve();
  function route() {
    // One route at a time, in order: a fast second hash change waits for the first.
    routing = routing.then(routeNow, routeNow);
    return routing;
  }
  async function routeNow() {
    const params = readHash();
    if (!params.pstate || params.module !== state.shownModule) stopLive();
    await loadModules();
    renderSidebar(params.module);
    if (!params.module) {
      await renderOverview();
      return;
    }
    if (state.shownModule !== params.module || !state.info) {
      if (!(await renderModule(params.module))) return;
      await refreshLiveSections();
    }
    if (state.scrollTo && $(state.scrollTo)) $(state.scrollTo).scrollIntoView();
    state.scrollTo = null;
    const work = [];
    if (params.pstate) work.push(runBrowser(params));
    if (params.depot) work.push(runDepot(params));
    await Promise.all(work);
  }

  function start() {
    window.addEventListener('hashchange', onHashChange);
    route();
    state.refreshTimer = setInterval(async () => {
      if (document.hidden) return;
      await loadModules();
      renderSidebar(readHash().module);
      await refreshLiveSections();
    }, REFRESH_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
