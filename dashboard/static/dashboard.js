// Braid replica dashboard. Plain JavaScript, no dependencies: it polls this
// replica's own JSON API (/v1/status, /v1/blocks) and draws on <canvas>.
//
// Everything the API returns is untrusted (request operations are arbitrary
// client bytes): it reaches the page only through textContent and
// attributes set via the DOM, never as markup.
'use strict';

(function () {
  const POLL_MS = 1000;          // status poll interval
  const RETRY_MAX_MS = 5000;     // longest wait between failed polls
  const FETCH_TIMEOUT_MS = 3000; // a poll that takes longer has failed
  const HISTORY_MS = 5 * 60 * 1000;
  const HISTORY_MAX = 600;       // samples kept, whatever the poll rate
  const PAGE = 20;               // blocks per page of the explorer
  const BLOCKS_REFRESH_MS = 2000;
  const HEX_PREVIEW = 24;        // bytes of an operation shown (hex, text)

  const $ = (id) => document.getElementById(id);

  // el builds an element; string and number children become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'className') e.className = v;
        else if (k === 'title') e.title = v;
        else if (k.startsWith('data-')) e.setAttribute(k, String(v));
        else throw new Error('el: unknown property ' + k);
      }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function setText(id, v) {
    const e = $(id);
    const s = String(v);
    if (e.textContent !== s) e.textContent = s;
  }

  function td(v, cls) { return el('td', cls ? { className: cls } : null, v); }
  function tag(text, cls) { return el('span', { className: 'tag ' + cls }, text); }

  const fmtInt = (n) => Number(n).toLocaleString('en-US');
  function fmtNum(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }
  const fmtMs = (s) => (s === null || !isFinite(s)) ? '–' : (s * 1000 < 10 ? fmtNum(s * 1000, 2) : fmtNum(s * 1000, 1)) + ' ms';
  const short = (h) => (typeof h === 'string' && h.length > 16) ? h.slice(0, 16) + '…' : String(h);
  const replica = (r) => r < 0 ? 'none' : String(r);

  // parseJSON keeps integers above 2^53 (request numbers, client ids are
  // any uint64) exact, as BigInt, where the browser gives a reviver the
  // number's source text; elsewhere they stay (rounded) numbers.
  function parseJSON(text) {
    return JSON.parse(text, (k, v, ctx) =>
      (typeof v === 'number' && !Number.isSafeInteger(v) && ctx && typeof ctx.source === 'string' && /^[0-9]+$/.test(ctx.source)) ? BigInt(ctx.source) : v);
  }

  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(path, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
      let body;
      try { body = parseJSON(await resp.text()); } catch (e) { body = null; }
      if (!resp.ok) {
        const msg = body && typeof body.error === 'string' ? body.error : resp.statusText;
        const err = new Error(resp.status + ' ' + msg);
        err.status = resp.status;
        throw err;
      }
      if (body === null || typeof body !== 'object') throw new Error('answer is not a JSON object');
      return body;
    } catch (e) {
      if (e.name === 'AbortError') throw new Error('no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s');
      if (e instanceof TypeError) throw new Error('cannot connect (' + e.message + ')'); // fetch's network failure
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- history and rates ----

  // samples: {t, executed, latency} as read; points: derived rates between
  // consecutive samples, null where a poll failed (a gap in the charts).
  let last = null;
  const points = [];

  function totalExecuted(st) {
    let n = 0;
    for (const i of st.instances || []) n += Number(i.executed_requests) || 0;
    return n;
  }

  // quantile estimates the q-quantile of the observations between two
  // readings of a cumulative histogram, interpolating inside the bucket as
  // Prometheus' histogram_quantile does.
  function quantile(q, prev, cur) {
    const n = cur.count - prev.count;
    if (n <= 0 || !Array.isArray(cur.buckets) || !Array.isArray(prev.buckets) || prev.buckets.length !== cur.buckets.length) return null;
    const rank = q * n;
    let below = 0, lower = 0;
    for (let i = 0; i < cur.buckets.length; i++) {
      const c = cur.buckets[i].count - prev.buckets[i].count;
      const le = cur.buckets[i].le;
      if (c >= rank) {
        const inBucket = c - below;
        return inBucket > 0 ? lower + (le - lower) * (rank - below) / inBucket : le;
      }
      below = c;
      lower = le;
    }
    return lower; // beyond the last finite bucket: its bound, as Prometheus
  }

  function record(st, t) {
    const s = { t, executed: totalExecuted(st), latency: st.client_latency || null };
    if (last && s.executed >= last.executed && t > last.t) {
      const dt = (t - last.t) / 1000;
      const p = { t, tput: (s.executed - last.executed) / dt, mean: null, p99: null };
      const a = last.latency, b = s.latency;
      if (a && b && b.count > a.count) {
        p.mean = (b.sum - a.sum) / (b.count - a.count);
        p.p99 = quantile(0.99, a, b);
      }
      push(p);
    }
    last = s; // a counter that went down is a restarted replica: start again
  }

  function gap() {
    if (points.length && points[points.length - 1] !== null) push(null);
    last = null;
  }

  function push(p) {
    points.push(p);
    const cut = Date.now() - HISTORY_MS;
    while (points.length > HISTORY_MAX || (points.length && (points[0] === null || points[0].t < cut))) points.shift();
  }

  // ---- charts ----

  // scale picks a round grid step (1, 2 or 5 × 10^k) giving about four
  // lines up to the data's maximum, and the top of the axis.
  function scale(v) {
    if (!(v > 0)) return { step: 0.25, top: 1 };
    const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * p;
    for (const m of [1, 2, 5]) if (raw <= m * p) { step = m * p; break; }
    return { step, top: step * Math.ceil(v / step) };
  }

  // drawChart draws series (each {name, color, key, fmt}) of points over
  // the last HISTORY_MS on canvas.
  function drawChart(canvas, series, unitFmt) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 56, right = 10, top = 22, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    const now = Date.now(), t0 = now - HISTORY_MS;
    let max = 0;
    for (const p of points) if (p) for (const s of series) if (p[s.key] !== null && isFinite(p[s.key])) max = Math.max(max, p[s.key]);
    const sc = scale(max);
    max = sc.top;
    const x = (t) => left + pw * (t - t0) / HISTORY_MS;
    const y = (v) => top + ph * (1 - v / max);

    ctx.font = '11px system-ui, sans-serif';
    ctx.strokeStyle = '#e5e7eb';
    ctx.fillStyle = '#6b7280';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i * sc.step <= max * (1 + 1e-9); i++) {
      const v = i * sc.step, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + pw, yy); ctx.stroke();
      ctx.fillText(unitFmt(v), left - 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let m = 5; m >= 0; m--) {
      const xx = x(now - m * 60000);
      ctx.fillText(m === 0 ? 'now' : '−' + m + ' min', Math.min(Math.max(xx, left + 16), left + pw - 12), top + ph + 5);
    }

    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    let lx = left;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'left';
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let pen = false;
      let lastV = null;
      for (const p of points) {
        const v = p ? p[s.key] : null;
        if (v === null || v === undefined || !isFinite(v) || p.t < t0) { pen = false; continue; }
        const xx = x(p.t), yy = y(v);
        if (pen) ctx.lineTo(xx, yy); else ctx.moveTo(xx, yy);
        pen = true;
        lastV = v;
      }
      ctx.stroke();
      // legend: swatch, name, latest value
      ctx.fillStyle = s.color;
      ctx.fillRect(lx, 6, 10, 10);
      ctx.fillStyle = '#1d2330';
      const label = s.name + ' ' + (lastV === null ? '–' : s.fmt(lastV));
      ctx.fillText(label, lx + 14, 11);
      lx += 14 + ctx.measureText(label).width + 16;
    }
  }

  function drawCharts() {
    drawChart($('chart-tput'), [{ name: 'requests/s', color: '#2563eb', key: 'tput', fmt: (v) => fmtNum(v, 1) }],
      (v) => fmtNum(v, v < 10 ? 1 : 0));
    drawChart($('chart-latency'), [
      { name: 'mean', color: '#2563eb', key: 'mean', fmt: fmtMs },
      { name: 'p99', color: '#d97706', key: 'p99', fmt: fmtMs },
    ], (v) => fmtNum(v * 1000, v * 1000 < 10 ? 1 : 0));
  }

  // ---- status ----

  let status = null;

  function renderStatus(st) {
    document.title = 'Braid replica ' + st.id;
    setText('title', 'replica ' + st.id);
    setText('cluster', 'n=' + st.n + ' m=' + st.m + ' policy ' + st.policy);
    setText('height', fmtInt(st.height));
    setText('round', fmtInt(st.round));
    setText('checkpoint', fmtInt(st.stable_checkpoint));
    $('checkpoint').disabled = !(st.stable_checkpoint > 0);
    setText('lag', fmtInt(st.checkpoint_lag) + (st.checkpoint_lag === 1 ? ' round' : ' rounds'));
    setText('executed', fmtInt(totalExecuted(st)));
    setText('clients', fmtInt(st.clients_connected));
    setText('head', st.head);
    $('head').title = String(st.head);
    const failed = Array.isArray(st.failed_replicas) ? st.failed_replicas : [];
    setText('failed', failed.length ? failed.join(', ') : 'none');
    setText('transfer', st.state_transfer ? 'under way' : 'no');
    const p = points.length ? points[points.length - 1] : null;
    setText('tput', p ? fmtNum(p.tput, 1) + ' req/s' : '–');
    setText('latency', !p ? '–' : p.mean !== null ? fmtMs(p.mean) + ' / ' + fmtMs(p.p99) : 'no requests');
    $('failstop').hidden = !st.failed;
    setText('failstop-reason', st.failed || '');

    const rows = [];
    for (const i of st.instances || []) {
      const state = [];
      let cls = '';
      if (i.primary_failed) { state.push(tag('primary failed', 'bad')); cls = 'bad'; }
      if (i.view_changing) {
        state.push(tag('view change' + (i.view_change_reason ? ': ' + i.view_change_reason : ''), 'warn'));
        cls = cls || 'warn';
      }
      if (i.skipping) state.push(tag('skipping', 'muted'));
      if (!state.length) state.push(tag('ok', 'good'));
      const tr = el('tr', { 'data-instance': i.instance },
        td(i.instance), td(fmtInt(i.last_decided)), td(fmtInt(i.view)), td(replica(i.primary)), el('td', { className: 'text' }, ...state),
        td(fmtInt(i.decided)), td(fmtInt(i.executed_requests)), td(fmtInt(i.view_changes)), td(fmtInt(i.failures)),
        td(i.resume_at ? fmtInt(i.resume_at) : '–'), td(fmtInt(i.low_watermark)));
      if (cls) tr.className = cls;
      rows.push(tr);
    }
    $('instances').tBodies[0].replaceChildren(...rows);

    const peers = [];
    for (const p of st.peers || []) {
      peers.push(el('tr', null, td(p.id), td(fmtInt(p.egress_frames)), td(fmtInt(p.egress_bytes)), td(fmtInt(p.ingress_frames))));
    }
    $('peers').tBodies[0].replaceChildren(...peers);
  }

  function setConnected(ok, reason, retryMs) {
    const c = $('conn');
    c.dataset.state = ok ? 'live' : 'down';
    c.textContent = ok ? 'live' : 'unreachable';
    $('unreachable').hidden = ok;
    document.body.classList.toggle('stale', !ok);
    if (!ok) {
      setText('unreachable-reason', reason);
      setText('unreachable-retry', 'in ' + Math.round(retryMs / 1000) + ' s');
    }
  }

  let failures = 0;

  async function poll() {
    let wait = POLL_MS;
    try {
      const st = await getJSON('/v1/status');
      status = st;
      failures = 0;
      record(st, Date.now());
      renderStatus(st);
      setConnected(true);
      setText('updated', 'updated ' + new Date().toLocaleTimeString());
      maybeRefreshBlocks();
    } catch (e) {
      failures++;
      wait = Math.min(POLL_MS * Math.pow(2, failures - 1), RETRY_MAX_MS);
      gap();
      setConnected(false, e.message || String(e), wait);
    }
    drawCharts();
    setTimeout(poll, wait);
  }

  // ---- block explorer ----

  // follow: the list shows the newest blocks and follows the head;
  // otherwise it stays on the page ending at pageTo.
  let follow = true;
  let pageTo = 0;
  let shownTo = -1;
  let blocksAt = 0;
  let blocksBusy = false;
  let selected = 0;

  function maybeRefreshBlocks() {
    if (!follow || blocksBusy || !status) return;
    if (status.height === shownTo && Date.now() - blocksAt < 30000) return;
    if (Date.now() - blocksAt < BLOCKS_REFRESH_MS) return;
    loadBlocks(status.height);
  }

  async function loadBlocks(to) {
    if (to < 1) {
      $('blocks').tBodies[0].replaceChildren();
      setText('blocks-state', 'the ledger is empty');
      shownTo = 0;
      return;
    }
    blocksBusy = true;
    blocksAt = Date.now();
    const from = Math.max(1, to - PAGE + 1);
    try {
      const bs = await getJSON('/v1/blocks?from=' + from + '&to=' + to);
      const rows = [];
      const blocks = Array.isArray(bs.blocks) ? bs.blocks.slice().reverse() : [];
      for (const b of blocks) {
        const n = Array.isArray(b.requests) ? b.requests.length : 0;
        const cert = b.certificate && Array.isArray(b.certificate.signatures) ? b.certificate.signatures.length : 0;
        const tr = el('tr', { 'data-height': b.height, 'data-requests': n, 'data-cert': cert ? 1 : 0, title: 'open block ' + b.height },
          td(fmtInt(b.height)), td(fmtInt(b.round)), td(fmtInt(n)), td(short(b.hash), 'hash'),
          el('td', { className: 'text' }, cert ? tag(cert + ' signers', 'good') : ''));
        if (Number(b.height) === selected) tr.classList.add('selected');
        rows.push(tr);
      }
      $('blocks').tBodies[0].replaceChildren(...rows);
      shownTo = bs.to;
      pageTo = bs.to;
      setText('blocks-state', 'blocks ' + fmtInt(bs.from) + '–' + fmtInt(bs.to) + ' of ' + fmtInt(bs.height) + (follow ? ', following the head' : ''));
    } catch (e) {
      setText('blocks-state', 'could not read blocks: ' + (e.message || e));
    } finally {
      blocksBusy = false;
    }
  }

  function hexPreview(b64) {
    if (typeof b64 !== 'string') return { size: 0, hex: '', text: '' };
    let bin;
    try { bin = atob(b64); } catch (e) { return { size: NaN, hex: '(not base64)', text: '' }; }
    let hex = '', text = '';
    for (let i = 0; i < Math.min(bin.length, HEX_PREVIEW); i++) {
      const c = bin.charCodeAt(i);
      hex += c.toString(16).padStart(2, '0') + ' ';
      text += c >= 0x20 && c < 0x7f ? bin[i] : '·';
    }
    const more = bin.length > HEX_PREVIEW ? ' …' : '';
    return { size: bin.length, hex: hex.trim() + more, text: text + more };
  }

  let detailSeq = 0;

  async function openBlock(h) {
    if (!(h >= 1)) return;
    const seq = ++detailSeq;
    selected = h;
    for (const tr of $('blocks').tBodies[0].rows) tr.classList.toggle('selected', Number(tr.dataset.height) === h);
    let b;
    try {
      b = await getJSON('/v1/blocks/' + h);
    } catch (e) {
      if (seq !== detailSeq) return;
      setText('blocks-state', 'could not read block ' + h + ': ' + (e.message || e));
      return;
    }
    if (seq !== detailSeq) return; // a later click won
    renderBlock(b);
    if (location.hash !== '#block=' + b.height) history.replaceState(null, '', '#block=' + b.height);
  }

  function renderBlock(b) {
    const d = $('block-detail');
    d.dataset.height = String(b.height);
    setText('bd-height', fmtInt(b.height));
    setText('bd-round', fmtInt(b.round));
    setText('bd-hash', b.hash);
    setText('bd-prev', b.height > 1 ? b.prev : b.prev + ' (genesis)');
    $('bd-prev').disabled = !(b.height > 1);
    setText('bd-results', b.results_digest);
    setText('bd-state', b.state_digest);
    const reqs = Array.isArray(b.requests) ? b.requests : [];
    setText('bd-nreq', fmtInt(reqs.length));
    const rows = reqs.map((r, i) => {
      const op = hexPreview(r.op);
      return el('tr', null, td(i + 1), td(r.client), td(r.number), td(r.instance), td(r.outcome, 'text'),
        td(r.summary, 'text'), td(isNaN(op.size) ? '?' : fmtInt(op.size)), el('td', { className: 'bytes' }, el('div', null, op.hex), el('div', { className: 'muted' }, op.text)));
    });
    $('block-requests').tBodies[0].replaceChildren(...rows);
    const c = b.certificate;
    $('bd-nocert').hidden = !!c;
    $('bd-cert').hidden = !c;
    if (c) {
      const sigs = Array.isArray(c.signatures) ? c.signatures : [];
      setText('bd-cert-round', fmtInt(c.round));
      setText('bd-cert-state', short(c.state_digest));
      $('bd-cert-state').title = String(c.state_digest);
      setText('bd-nsig', sigs.length);
      $('block-signers').tBodies[0].replaceChildren(...sigs.map((s) =>
        el('tr', { 'data-from': s.from }, td(s.from), td(s.instance), td(fmtInt(s.seq)), td(short(s.state), 'hash'), td(short(s.sig), 'hash'))));
    } else {
      $('block-signers').tBodies[0].replaceChildren();
    }
    d.hidden = false;
  }

  function setup() {
    $('blocks').tBodies[0].addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-height]');
      if (tr) openBlock(Number(tr.dataset.height));
    });
    $('checkpoint').addEventListener('click', () => { if (status) openBlock(status.stable_checkpoint); });
    $('bd-prev').addEventListener('click', () => { const h = Number($('block-detail').dataset.height); if (h > 1) openBlock(h - 1); });
    $('bd-close').addEventListener('click', () => {
      $('block-detail').hidden = true;
      selected = 0;
      detailSeq++;
      for (const tr of $('blocks').tBodies[0].rows) tr.classList.remove('selected');
      history.replaceState(null, '', location.pathname);
    });
    $('blocks-newest').addEventListener('click', () => { follow = true; blocksAt = 0; if (status) loadBlocks(status.height); });
    $('blocks-older').addEventListener('click', () => {
      if (pageTo <= PAGE) return;
      follow = false;
      loadBlocks(pageTo - PAGE);
    });
    $('blocks-newer').addEventListener('click', () => {
      if (!status) return;
      const to = pageTo + PAGE;
      follow = to >= status.height;
      loadBlocks(Math.min(to, status.height));
    });
    $('goto').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('goto-height').value.trim();
      if (/^[0-9]{1,15}$/.test(v)) openBlock(Number(v));
      else setText('blocks-state', 'a height is a decimal number');
    });
    window.addEventListener('resize', drawCharts);
    const m = /^#block=([0-9]{1,15})$/.exec(location.hash);
    if (m) openBlock(Number(m[1]));
    poll();
  }

  setup();
})();
