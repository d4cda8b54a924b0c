"""The page assets of vitlib.viz.interactive's figures: colour maps, CSS and the one plain script (chapters 02,
05, 06). Kept apart so that the Python reads on its own; the script builds each kind of figure from its JSON."""

# matplotlib's viridis and magma sampled at 0, 1/8, ..., 1 (RGB 0..255); the script interpolates between them
COLOUR_MAPS = {
    "viridis": [[68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140], [40, 174, 128],
                [94, 201, 98], [173, 220, 48], [253, 231, 37]],
    "magma": [[0, 0, 4], [29, 17, 71], [81, 18, 124], [131, 38, 129], [183, 55, 121], [231, 82, 99],
              [252, 137, 97], [254, 196, 136], [252, 253, 191]],
}

CSS = """.vl-figure{background:#fff;color:#222;font:13px/1.4 system-ui,sans-serif;padding:8px;margin:4px 0;
border:1px solid #ccc;border-radius:4px;overflow-x:auto}
.vl-figure .vl-row{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-bottom:6px}
.vl-figure select,.vl-figure input{font:inherit;color:#222;background:#fff;border:1px solid #999;border-radius:3px;
padding:1px 4px;max-width:100%} .vl-figure .vl-note{color:#555;font-size:12px}
.vl-figure .vl-title{font-weight:600;margin:4px 0} .vl-figure .vl-tokens{display:flex;flex-wrap:wrap;gap:3px}
.vl-figure .vl-tok{display:inline-flex;flex-direction:column;align-items:center;padding:1px 5px;cursor:pointer;
border:2px solid transparent;border-radius:3px;background:#eee} .vl-figure .vl-tok.vl-query{border-color:#d62728}
.vl-figure .vl-hi .vl-word{text-decoration:underline 2px #d62728} .vl-figure .vl-w{font-size:10px}
.vl-figure .vl-heat{display:grid;font-size:10px;line-height:12px;margin-top:6px} .vl-figure .vl-heat div{height:12px}
.vl-figure .vl-lab{padding-right:4px;text-align:right;white-space:nowrap} .vl-figure figure{margin:0;font-size:12px}
.vl-figure .vl-gallery{display:flex;flex-wrap:wrap;gap:10px;text-align:center} .vl-figure .vl-pic{position:relative}
.vl-figure .vl-pic img{width:100%;height:auto;display:block;image-rendering:pixelated;margin:0;border:0}
.vl-figure .vl-grid{position:absolute;left:0;top:0;width:100%;height:100%;display:grid;opacity:.6}
.vl-figure .vl-meter{height:5px;background:#ddd;margin-top:2px} .vl-figure .vl-meter div{height:100%;background:#1f77b4}
"""

# One script for the three kinds; it finds its figure by id, reads the JSON payload and builds the controls.
SCRIPT = r"""(function () {
var ID = "__ID__", s = document.currentScript;
var root = s && s.parentNode && s.parentNode.id === ID ? s.parentNode : document.getElementById(ID);
if (!root || root.getAttribute("data-ready")) return;
function part(name) { return root.querySelector("[id='" + ID + "-" + name + "']"); }  // within this figure
var d = JSON.parse(part("data").textContent), CM = d.colour_maps;
function el(tag, cls, parent, text) {
  var e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; if (parent) parent.appendChild(e); return e; }
function colour(name, v) {  // v in [0, 1] -> an rgb() colour of the map
  var c = CM[name], x = Math.min(Math.max(v || 0, 0), 1) * (c.length - 1);
  var i = Math.min(Math.floor(x), c.length - 2), f = x - i;
  return "rgb(" + [0, 1, 2].map(function (j) { return Math.round(c[i][j] + f * (c[i + 1][j] - c[i][j])); }) + ")"; }
function fill(sel, labels, keep, value) {
  sel.innerHTML = ""; keep.forEach(function (i) { sel.add(new Option(labels[i], String(i))); });
  if (keep.indexOf(value) >= 0) sel.value = String(value); }
function select(parent, name, labels, value, onChange) {
  var lab = el("label", null, parent, name + " "), sel = el("select", null, lab); sel.id = ID + "-" + name;
  fill(sel, labels, labels.map(function (_, i) { return i; }), value);
  sel.addEventListener("change", function () { onChange(+sel.value); }); return sel; }
function picker(parent, what, labels, onChange) {  // a text filter over precomputed labels + a select
  var lab = el("label", null, parent, "filter "), input = el("input", null, lab), sel = el("select", null, parent);
  var note = el("span", "vl-note", parent); input.type = "search"; input.id = ID + "-filter"; sel.id = ID + "-pick";
  input.placeholder = "type words"; sel.addEventListener("change", function () { onChange(+sel.value); });
  function refill() {
    var q = input.value.toLowerCase(), keep = [];
    labels.forEach(function (t, i) { if (t.toLowerCase().indexOf(q) >= 0) keep.push(i); });
    fill(sel, labels, keep, +sel.value);
    note.textContent = keep.length ? keep.length + " of " + labels.length + " precomputed " + what
      : "none of the " + labels.length + " precomputed " + what + " contains \u201c" + input.value + "\u201d";
    if (keep.length) onChange(+sel.value); }
  input.addEventListener("input", refill); return refill; }
function image(parent, n, title) {
  var fig = el("figure", null, parent), pic = el("div", "vl-pic", fig), img = el("img", null, pic);
  pic.style.width = d.size + "px"; img.src = "data:image/png;base64," + d.images[n];
  img.alt = "image " + n; if (title) img.title = title; return fig; }
function tokens(parent, words, state, draw) {  // hover a token to look from it, click to keep it
  return words.map(function (t, i) {
    var s = el("span", "vl-tok", parent); el("span", "vl-word", s, t);
    s.addEventListener("mouseenter", function () { state.at = i; draw(); });
    s.addEventListener("mouseleave", function () { state.at = state.kept; draw(); });
    s.addEventListener("click", function () { state.kept = state.kept === i && d.kind === "itm" ? -1 : i;
      state.at = state.kept; draw(); }); return s; }); }
var kinds = {attention: function () {
  var st = {layer: d.layer, head: d.head, at: d.query, kept: d.query}, T = d.tokens.length;
  var row = el("div", "vl-row", root);
  function range(n) { var r = []; for (var i = 0; i < n; i++) r.push(i); return r; }
  select(row, "layer", d.layers, st.layer, function (v) {
    st.layer = v; var H = d.maps[v].length; st.head = st.head < H ? st.head : 0;
    fill(head, range(H).map(String), range(H), st.head); draw(); });
  var head = select(row, "head", range(d.maps[st.layer].length).map(String), st.head,
                    function (v) { st.head = v; draw(); });
  el("span", "vl-note", row, "hover a token (or a row of the map) to look from it; click to keep it");
  var title = el("div", "vl-title", root), spans = tokens(el("div", "vl-tokens", root), d.tokens, st, draw);
  spans.forEach(function (s) { el("span", "vl-w", s, ""); });
  var heat = el("div", "vl-heat", root), cells = [];
  heat.style.gridTemplateColumns = "max-content repeat(" + T + ", 12px)";
  d.tokens.forEach(function (t, i) {
    el("div", "vl-lab", heat, i + ":" + t); cells.push(d.tokens.map(function () {
      var c = el("div", null, heat); c.addEventListener("click", function () { st.kept = st.at = i; draw(); });
      c.addEventListener("mouseenter", function () { if (st.at !== i) { st.at = i; draw(); } }); return c; })); });
  heat.addEventListener("mouseleave", function () { st.at = st.kept; draw(); });
  el("div", "vl-note", root, "rows: queries, columns: keys, in token order; colour: weight / the map's largest");
  function draw() {
    var w = d.maps[st.layer][st.head], q = st.at, vmax = 1e-9;
    w.forEach(function (r) { r.forEach(function (v) { vmax = Math.max(vmax, v); }); });
    title.textContent = d.layers[st.layer] + ", head " + st.head + ": query " + q + ":\u2018" + d.tokens[q] +
      "\u2019 attends to ...";
    spans.forEach(function (s, j) {
      var v = w[q][j]; s.style.background = colour("viridis", v / vmax);
      s.style.color = v > 0.6 * vmax ? "#000" : "#fff"; s.lastChild.textContent = (v / 1000).toFixed(2);
      s.classList.toggle("vl-query", j === q); s.classList.toggle("vl-hi", d.highlight.indexOf(j) >= 0); });
    cells.forEach(function (r, i) { r.forEach(function (c, j) {
      c.style.background = colour("viridis", w[i][j] / vmax);
      c.style.boxShadow = i === q ? "inset 0 2px 0 #d62728, inset 0 -2px 0 #d62728" : "";
      c.title = "query " + i + ":" + d.tokens[i] + " \u2192 key " + j + ":" + d.tokens[j] + "  " +
        (w[i][j] / 1000).toFixed(3); }); }); }
  draw(); },
retrieval: function () {
  var gallery, refill = picker(el("div", "vl-row", root), "queries", d.queries, function (q) {
    gallery.innerHTML = ""; d.top[q].forEach(function (n, r) {
      var fig = image(gallery, n, d.titles ? d.titles[n] : "");
      el("figcaption", null, fig, (r + 1) + ". #" + n + "  " + d.scores[q][r].toFixed(3)); }); });
  el("div", "vl-note", root, "the top " + d.k + " of " + d.n + " images by score, best first");
  gallery = el("div", "vl-gallery", root); refill(); },
itm: function () {
  var st = {c: 0, at: -1, kept: -1}, spans = [], figs = [];
  var refill = picker(el("div", "vl-row", root), "captions", d.captions, function (c) {
    st.c = c; st.at = st.kept = -1; words.innerHTML = ""; spans = tokens(words, d.tokens[c], st, draw); draw(); });
  var words = el("div", "vl-tokens", root), title = el("div", "vl-title", root);
  el("div", "vl-note", root, "hover a word to see where it looks on the image (brighter: more attention, " +
     "scaled per image); click to keep it");
  var gallery = el("div", "vl-gallery", root);
  d.images.forEach(function (_, n) {
    var fig = image(gallery, n, d.titles ? d.titles[n] : ""), grid = el("div", "vl-grid", fig.firstChild);
    grid.style.gridTemplateColumns = "repeat(" + d.grid + ", 1fr)";
    var f = {cells: [], cap: el("figcaption", null, fig), bar: el("div", null, el("div", "vl-meter", fig))};
    for (var p = 0; p < d.grid * d.grid; p++) f.cells.push(el("div", null, grid));
    figs.push(f); });
  function draw() {
    var A = d.attention[st.c], t = st.at;
    spans.forEach(function (s, i) { s.classList.toggle("vl-query", i === t); });
    title.textContent = t < 0 ? "cross-attention of all words (mean)" : "where \u2018" + d.tokens[st.c][t] +
      "\u2019 looks";
    figs.forEach(function (f, n) {
      var w = t >= 0 ? A[n][t] : A[n][0].map(function (_, p) {
        return A[n].reduce(function (a, r) { return a + r[p]; }, 0) / A[n].length; });
      var lo = Math.min.apply(null, w), hi = Math.max.apply(null, w);
      f.cells.forEach(function (c, p) { c.style.background = colour("magma", (w[p] - lo) / (hi - lo || 1));
        c.title = "patch " + p + ": " + (w[p] / 1000).toFixed(3); });
      var s = d.scores[st.c][n]; f.cap.textContent = "P(match) = " + s.toFixed(3);
      f.bar.style.width = (100 * s).toFixed(1) + "%"; }); }
  refill(); }};
var nojs = part("nojs"); if (nojs) nojs.parentNode.removeChild(nojs);
kinds[d.kind](); root.setAttribute("data-ready", "1");
})();"""
