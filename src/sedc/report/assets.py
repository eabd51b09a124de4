"""The report page's inline stylesheet and script.

Both are inlined into ``report.html`` so that the page opens from disk without any network.
The script renders the gallery from the page's JSON data a page of cards at a time, so
filtering or sorting 10,000 rows only lays out the first cards. It uses no ``//`` comments
and holds no URL, and builds the cards with DOM calls (``textContent``), never from HTML text.
"""

CSS = """
:root{--bg:#f5f6f8;--panel:#fff;--text:#1f2328;--muted:#5f6873;--line:#dde2e8;
--soft:#eef1f4;--accent:#0b63ce;--found:#1a7f37;--found-bg:#dcf5e3;--miss:#cf222e;
--miss-bg:#ffe9e7;--limit:#9a6700;--limit-bg:#fff4c2;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0e1116;--panel:#161b22;--text:#e6edf3;
--muted:#8d96a0;--line:#2b323b;--soft:#1d242d;--accent:#4493f8;--found:#3fb950;
--found-bg:#15291d;--miss:#f85149;--miss-bg:#31161a;--limit:#d29922;--limit-bg:#2b2212}}
.m0{--c:#4e79a7}.m1{--c:#f28e2b}.m2{--c:#b07aa1}.m3{--c:#76b7b2}.m4{--c:#edc948}
.m5{--c:#9c755f}.m6{--c:#ff9da7}.m7{--c:#bab0ac}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:32px 24px 72px}
h1{font-size:30px;line-height:1.2;margin:0 0 6px;letter-spacing:-.015em}
h2{font-size:19px;margin:0 0 4px;letter-spacing:-.01em}
h3{font-size:14px;margin:0 0 8px;color:var(--muted);font-weight:600}
.meta,.note{color:var(--muted)}
.note{font-size:13px;margin:0 0 12px}
section{margin-top:36px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(148px,1fr));gap:12px;
margin-top:22px}
.stat,.panel,.card{background:var(--panel);border:1px solid var(--line);border-radius:12px}
.stat{padding:14px 16px}
.stat .v{display:block;font-size:26px;font-weight:680;font-variant-numeric:tabular-nums;
line-height:1.25}
.stat .l{display:block;font-size:13px;color:var(--muted)}
.stat.good .v{color:var(--found)}.stat.bad .v{color:var(--miss)}
.panel{padding:6px 16px 10px;overflow-x:auto}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:14px}
.plots{grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;
vertical-align:middle}
tr:last-child td{border-bottom:0}
th{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
font-weight:650}
.n{text-align:right;white-space:nowrap}
tr.all td{font-weight:680;background:var(--soft)}
.rate{display:inline-flex;align-items:center;gap:8px;justify-content:flex-end}
.meter{display:inline-block;width:70px;height:7px;border-radius:4px;background:var(--soft);
overflow:hidden}
.meter i{display:block;height:100%;background:var(--found)}
.meter.lim i{background:var(--limit)}
.count-bar{display:inline-block;height:8px;border-radius:4px;background:var(--accent);
opacity:.75;vertical-align:middle}
.arrow{color:var(--muted);padding:0 4px}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;
font-weight:600;white-space:nowrap}
.pill.found{background:var(--found-bg);color:var(--found)}
.pill.miss{background:var(--miss-bg);color:var(--miss)}
.pill.limit{background:var(--limit-bg);color:var(--limit)}
.mode{white-space:nowrap}
.mode::before{content:"";display:inline-block;width:9px;height:9px;border-radius:3px;
margin-right:6px;background:var(--c,var(--muted))}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.chart{width:100%;height:auto;display:block}
.chart text{fill:var(--muted);font-size:12.5px}
.chart .title,.chart .legend{fill:var(--text);font-size:13px}
.chart .grid{stroke:var(--line)}
.chart .axis,.chart .tickmark{stroke:var(--muted)}
.chart .mc{fill:var(--c)}
.chart .found{fill:var(--found)}.chart .miss{fill:var(--miss)}
.chart .dots:not(.dense) circle{fill-opacity:.6}
.chart g:hover>rect{opacity:.8}
.plot{padding:12px 14px}
#toward{margin-top:14px}
.empty{color:var(--muted);font-style:italic}
.controls{position:sticky;top:0;z-index:5;background:var(--bg);padding:10px 0;
display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;border-bottom:1px solid var(--line);
margin-bottom:14px}
.group{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.chip{font:inherit;font-size:13px;color:var(--text);background:var(--panel);
border:1px solid var(--line);border-radius:999px;padding:3px 12px;cursor:pointer}
.chip:hover{border-color:var(--accent)}
.chip[aria-pressed="true"]{background:var(--accent);border-color:var(--accent);color:#fff}
.chip .k{opacity:.7;margin-left:4px;font-variant-numeric:tabular-nums}
select,input[type=search]{font:inherit;font-size:13px;color:var(--text);
background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:4px 8px}
input[type=search]{min-width:190px}
#count{color:var(--muted);font-size:13px;margin-left:auto}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(268px,1fr));gap:14px}
.card{overflow:hidden;display:flex;flex-direction:column;border-top:3px solid var(--miss)}
.card.found{border-top-color:var(--found)}.card.limit{border-top-color:var(--limit)}
.thumb{display:block;aspect-ratio:3/1.22;background:#fff;border-bottom:1px solid var(--line)}
.thumb img{width:100%;height:100%;object-fit:contain;display:block}
.thumb.none{display:flex;align-items:center;justify-content:center;color:#8d96a0;
font-size:13px;background:var(--soft)}
.body{padding:9px 12px 11px;display:flex;flex-direction:column;gap:5px;font-size:13.5px}
.classes{font-weight:620;font-size:14.5px;line-height:1.35}
.classes .to{color:var(--found)}
.card.miss .classes .to,.card.limit .classes .to{color:var(--muted);font-weight:500}
.badges{display:flex;flex-wrap:wrap;gap:4px 10px;color:var(--muted);font-size:12.5px;
align-items:center}
.truth.ok{color:var(--found)}.truth.bad{color:var(--miss)}
.name{color:var(--muted);font-size:12px;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
.more{display:block;margin:18px auto 0;font:inherit;font-size:14px;padding:8px 22px;
border-radius:999px;border:1px solid var(--accent);background:var(--panel);
color:var(--accent);cursor:pointer}
.more[hidden]{display:none}
.errors td:last-child{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12.5px;color:var(--miss)}
footer{margin-top:48px;color:var(--muted);font-size:12.5px;text-align:center}
"""

JS = """
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("sedc-data").textContent);
  var C = D.columns, rows = D.rows, names = D.names, PAGE = D.page;
  var grid = document.getElementById("gallery");
  var moreButton = document.getElementById("more");
  var countText = document.getElementById("count");
  var state = {status: "all", mode: -1, query: "", sort: "file", order: [], shown: 0};

  function num(r, key, missing) { var v = r[C[key]]; return v === null ? missing : v; }
  function byKey(get, dir) {
    return function (a, b) {
      var x = get(rows[a]), y = get(rows[b]);
      return x < y ? -dir : (x > y ? dir : a - b);
    };
  }
  var SORTS = {
    "k-asc": byKey(function (r) { return r[C.found] ? r[C.k] : Infinity; }, 1),
    "k-desc": byKey(function (r) { return r[C.found] ? r[C.k] : -Infinity; }, -1),
    "time-desc": byKey(function (r) { return num(r, "time", -Infinity); }, -1),
    "time-asc": byKey(function (r) { return num(r, "time", Infinity); }, 1),
    "evals-desc": byKey(function (r) { return num(r, "evals", -Infinity); }, -1),
    "segments-desc": byKey(function (r) { return num(r, "segments", -Infinity); }, -1),
    "score-desc": byKey(function (r) { return num(r, "original_score", -Infinity); }, -1)
  };

  function haystack(r) {
    var parts = [r[C.image], names[r[C.original]], names[r[C["new"]]]];
    if (r[C.truth] >= 0) { parts.push(names[r[C.truth]]); }
    if (r[C.target] >= 0) { parts.push(names[r[C.target]]); }
    return parts.join(" ").toLowerCase();
  }
  function keep(r) {
    if (state.mode >= 0 && r[C.mode] !== state.mode) { return false; }
    var s = state.status;
    if (s === "found" && !r[C.found]) { return false; }
    if (s === "notfound" && r[C.found]) { return false; }
    if (s === "limit" && !r[C.limit]) { return false; }
    if (s === "misclassified" && r[C.correct] !== 0) { return false; }
    if (s === "toward" && !r[C.toward]) { return false; }
    if (s === "fragile" && !r[C.fragile]) { return false; }
    if (s === "unverified" && r[C.verified] !== 0) { return false; }
    return !state.query || haystack(r).indexOf(state.query) >= 0;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function fmt(v, digits) { return v === null ? "?" : Number(v).toFixed(digits); }
  function seconds(v) { return v === null ? "?" : (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " s"; }

  function thumb(r) {
    var fig = r[C.figure];
    if (!fig) { return el("div", "thumb none", "no figure"); }
    var link = el("a", "thumb");
    link.href = fig;
    link.title = "open the figure";
    if (r[C.thumb]) {
      var img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = r[C.image];
      img.src = "thumbs/" + fig.replace(/\\.[^.\\/]*$/, "") + ".jpg";
      link.appendChild(img);
    } else {
      link.className = "thumb none";
      link.textContent = "open figure";
    }
    return link;
  }
  function classes(r) {
    var line = el("div", "classes");
    line.appendChild(el("span", "from", names[r[C.original]]));
    line.appendChild(el("span", "arrow", "\\u2192"));
    var to = r[C.found] ? names[r[C["new"]]] : "no counterfactual";
    line.appendChild(el("span", "to", to));
    return line;
  }
  function badges(r) {
    var box = el("div", "badges");
    var reason = names[r[C.reason]];
    var kind = r[C.found] ? "found" : (r[C.limit] ? "limit" : "miss");
    box.appendChild(el("span", "pill " + kind, r[C.found] ? "k = " + r[C.k] : reason));
    box.appendChild(el("span", "mode m" + (r[C.mode] % 8), D.modes[r[C.mode]]));
    box.appendChild(el("span", null, fmt(r[C.original_score], 2) + " \\u2192 " +
                                      fmt(r[C.new_score], 2)));
    if (r[C.fragile]) {
      var pill = el("span", "pill limit", "fragile");
      if (r[C.fills] >= 0) { pill.title = names[r[C.fills]]; }
      box.appendChild(pill);
    }
    if (r[C.verified] === 0) { box.appendChild(el("span", "pill miss", "not verified")); }
    return box;
  }
  function costs(r) {
    var parts = [r[C.evals] + " evaluations", seconds(r[C.time])];
    if (r[C.segments] !== null) { parts.push(r[C.segments] + " segments"); }
    return el("div", "badges", parts.join(" \\u00b7 "));
  }
  function card(i) {
    var r = rows[i];
    var kind = r[C.found] ? "found" : (r[C.limit] ? "limit" : "miss");
    var node = el("article", "card " + kind);
    node.dataset.i = i;
    node.dataset.found = r[C.found];
    node.dataset.mode = D.modes[r[C.mode]];
    node.dataset.k = r[C.found] ? r[C.k] : "";
    node.appendChild(thumb(r));
    var body = el("div", "body");
    body.appendChild(classes(r));
    body.appendChild(badges(r));
    body.appendChild(costs(r));
    if (r[C.truth] >= 0) {
      var ok = r[C.correct] === 1;
      body.appendChild(el("div", "truth " + (ok ? "ok" : "bad"),
        (ok ? "\\u2713 correct: " : "\\u2717 true class: ") + names[r[C.truth]]));
    }
    if (r[C.target] >= 0) {
      body.appendChild(el("div", "target", "target: " + names[r[C.target]]));
    }
    var name = el("div", "name", r[C.image]);
    name.title = r[C.image];
    body.appendChild(name);
    node.appendChild(body);
    return node;
  }

  function more() {
    var end = Math.min(state.order.length, state.shown + PAGE);
    var frag = document.createDocumentFragment();
    for (var j = state.shown; j < end; j++) { frag.appendChild(card(state.order[j])); }
    grid.appendChild(frag);
    state.shown = end;
    var left = state.order.length - end;
    moreButton.hidden = left <= 0;
    moreButton.textContent = "Show " + Math.min(PAGE, left) + " more (" +
      left.toLocaleString() + " left)";
    countText.textContent = "Showing " + end.toLocaleString() + " of " +
      state.order.length.toLocaleString() + " matching rows (" +
      rows.length.toLocaleString() + " in all)";
  }
  function update() {
    var order = [];
    for (var i = 0; i < rows.length; i++) { if (keep(rows[i])) { order.push(i); } }
    if (SORTS[state.sort]) { order.sort(SORTS[state.sort]); }
    state.order = order;
    state.shown = 0;
    grid.textContent = "";
    more();
  }

  function chips(groupId, key, parse) {
    var group = document.getElementById(groupId);
    if (!group) { return; }
    group.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) { return; }
      var all = group.querySelectorAll("button");
      for (var j = 0; j < all.length; j++) { all[j].setAttribute("aria-pressed", "false"); }
      button.setAttribute("aria-pressed", "true");
      state[key] = parse(button.dataset.value);
      update();
    });
  }
  chips("status-filter", "status", String);
  chips("mode-filter", "mode", Number);
  document.getElementById("sort").addEventListener("change", function (event) {
    state.sort = event.target.value;
    update();
  });
  var timer = null;
  document.getElementById("search").addEventListener("input", function (event) {
    clearTimeout(timer);
    timer = setTimeout(function () {
      state.query = event.target.value.trim().toLowerCase();
      update();
    }, 150);
  });
  moreButton.addEventListener("click", more);
  update();
})();
"""
