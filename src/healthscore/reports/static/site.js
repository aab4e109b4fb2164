/* healthscore portfolio site: the index's account table (filter, search, sort, pages). No network, no
   innerHTML: every text from the data goes in with textContent. Sets data-ready on <html> once interactive. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("rows-data").textContent);
  var C = {};
  data.columns.forEach(function (c, i) { C[c] = i; });
  var rows = data.rows;
  var keys = rows.map(function (r) { return (r[C.name] + "\u0000" + r[C.id]).toLowerCase(); });
  var BAND_ORDER = { at_risk: 0, watch: 1, healthy: 2, "": 3 };
  var BAND_LABEL = { at_risk: "at risk", watch: "watch", healthy: "healthy", "": "not scored" };
  var table = document.getElementById("accounts");
  var tbody = table.tBodies[0];
  var pageRows = parseInt(table.getAttribute("data-page-rows"), 10) || 100;
  var el = function (id) { return document.getElementById(id); };
  var controls = { q: el("q"), band: el("f-band"), segment: el("f-segment"), csm: el("f-csm"),
                   renewal: el("f-renewal"), alert: el("f-alert") };
  var state = { sort: "", dir: 1, page: 0 };
  var shown = [];

  function matches(i) {
    var r = rows[i];
    var q = controls.q.value.trim().toLowerCase();
    if (q && keys[i].indexOf(q) < 0) return false;
    var band = controls.band.value;
    if (band && (band === "none" ? r[C.band] !== "" : r[C.band] !== band)) return false;
    if (controls.segment.value && r[C.segment] !== controls.segment.value) return false;
    var csm = controls.csm.value;
    if (csm && r[C.csm] !== (csm === "(none)" ? "" : csm)) return false;
    var ren = controls.renewal.value, days = r[C.days];
    if (ren === "none" && days !== null) return false;
    if (ren === "later" && !(days !== null && days > 180)) return false;
    if (ren && ren !== "none" && ren !== "later" && !(days !== null && days >= 0 && days <= +ren)) return false;
    var alert = controls.alert.value;
    if (alert === "yes" && !r[C.alert]) return false;
    if (alert === "no" && r[C.alert]) return false;
    return true;
  }

  function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  function nullLast(a, b, dir) {
    if (a === null || a === "") return (b === null || b === "") ? 0 : 1;
    if (b === null || b === "") return -1;
    return dir * cmp(a, b);
  }
  function defaultOrder(i, j) {  /* alerts first, then band, then lowest score, then name */
    var a = rows[i], b = rows[j];
    return (a[C.alert] ? 0 : 1) - (b[C.alert] ? 0 : 1) || BAND_ORDER[a[C.band]] - BAND_ORDER[b[C.band]] ||
      nullLast(a[C.score], b[C.score], 1) || cmp(a[C.name], b[C.name]) || cmp(a[C.id], b[C.id]);
  }
  function order(i, j) {
    if (!state.sort) return defaultOrder(i, j);
    var k = C[state.sort], a = rows[i][k], b = rows[j][k];
    if (state.sort === "band") { a = BAND_ORDER[a]; b = BAND_ORDER[b]; }
    if (typeof a === "string" && typeof b === "string") { a = a.toLowerCase(); b = b.toLowerCase(); }
    return nullLast(a, b, state.dir) || defaultOrder(i, j);
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text === null || text === undefined ? "" : String(text);
    tr.appendChild(td);
    return td;
  }
  function money(v) { return v === null ? "" : Math.round(v).toLocaleString("en-US"); }
  function signed(v) { return v === null ? "" : v > 0 ? "+" + v : String(v); }

  function draw() {
    var pages = Math.max(1, Math.ceil(shown.length / pageRows));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * pageRows, end = Math.min(shown.length, start + pageRows);
    var frag = document.createDocumentFragment();
    for (var n = start; n < end; n++) {
      var r = rows[shown[n]];
      var tr = document.createElement("tr");
      tr.setAttribute("data-id", r[C.id]);
      var td = document.createElement("td");
      var a = document.createElement("a");
      a.href = "accounts/" + encodeURIComponent(r[C.page]) + ".html";
      a.textContent = r[C.name] || "(no name)";
      td.appendChild(a);
      var id = document.createElement("span");
      id.className = "id";
      id.textContent = r[C.id];
      td.appendChild(id);
      tr.appendChild(td);
      cell(tr, r[C.segment].replace(/_/g, " "));
      var ctd = document.createElement("td");
      var ca = document.createElement("a");
      ca.href = "csm/" + encodeURIComponent(r[C.csm_page]) + ".html";
      ca.textContent = r[C.csm] || "unassigned";
      ctd.appendChild(ca);
      tr.appendChild(ctd);
      var btd = document.createElement("td");
      var span = document.createElement("span");
      span.className = "band " + (r[C.band] || "none");
      span.textContent = BAND_LABEL[r[C.band]];
      btd.appendChild(span);
      tr.appendChild(btd);
      cell(tr, r[C.score], "num score");
      cell(tr, r[C.model_score], "num");
      cell(tr, signed(r[C.delta]), "num");
      cell(tr, r[C.renewal], "num");
      cell(tr, money(r[C.arr]), "num");
      cell(tr, r[C.alert], "alert");
      cell(tr, r[C.play].replace(/_/g, " "));
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    var count = el("match-count");
    count.setAttribute("data-count", String(shown.length));
    count.textContent = shown.length === rows.length ? rows.length.toLocaleString("en-US") + " accounts"
      : shown.length.toLocaleString("en-US") + " of " + rows.length.toLocaleString("en-US") + " accounts match";
    el("page-info").textContent = shown.length ? "rows " + (start + 1) + "–" + end + " of " + shown.length : "no rows";
    el("prev").disabled = state.page === 0;
    el("next").disabled = state.page >= pages - 1;
  }

  function update() {
    shown = [];
    for (var i = 0; i < rows.length; i++) if (matches(i)) shown.push(i);
    shown.sort(order);
    state.page = 0;
    draw();
  }

  function fromHash() {  /* index.html#csm=NAME&band=at_risk: links from the CSM pages and the alert list */
    var h = window.location.hash.replace(/^#/, "");
    if (h.indexOf("=") < 0) return false;
    var params = new URLSearchParams(h);
    var known = { q: "q", band: "band", segment: "segment", csm: "csm", renewal: "renewal", alert: "alert" };
    var used = false;
    Object.keys(known).forEach(function (k) {
      if (params.has(k)) {
        var c = controls[known[k]], v = params.get(k);
        if (c.tagName === "SELECT" && ![].some.call(c.options, function (o) { return o.value === v; })) v = "";
        c.value = v;
        used = true;
      }
    });
    return used;
  }

  var timer = null;
  controls.q.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 60); });
  ["band", "segment", "csm", "renewal", "alert"].forEach(function (k) {
    controls[k].addEventListener("change", update);
  });
  el("filters").addEventListener("submit", function (e) { e.preventDefault(); });
  [].forEach.call(table.tHead.rows[0].cells, function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var key = th.getAttribute("data-sort");
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      [].forEach.call(table.tHead.rows[0].cells, function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      shown.sort(order);
      state.page = 0;
      draw();
    });
  });
  el("prev").addEventListener("click", function () { state.page -= 1; draw(); });
  el("next").addEventListener("click", function () { state.page += 1; draw(); });
  window.addEventListener("hashchange", function () {
    if (fromHash()) { update(); table.scrollIntoView(); }
  });
  var fromLink = fromHash();
  update();
  if (fromLink) table.scrollIntoView();
  if (window.performance && performance.mark) performance.mark("healthscore-ready");
  document.documentElement.setAttribute("data-ready", "1");
})();
