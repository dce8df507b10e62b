// Leaderboard table: sortable columns, a baseline with deltas, toggles. No dependencies, no network.
// Only numbers written at build time are read from the DOM; labels go back in through textContent.
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
  if (!table) return;
  var data = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var tbody = table.tBodies[0];
  var state = { col: null, dir: 1 };

  function cellFor(row, col) {
    for (var i = 0; i < row.cells.length; i++) if (row.cells[i].getAttribute("data-col") === col) return row.cells[i];
    return null;
  }

  function sortValue(row, col, type) {
    var cell = cellFor(row, col);
    var raw = cell ? cell.getAttribute("data-v") : "";
    if (raw === null || raw === "") return null;
    if (type === "num") { var x = parseFloat(raw); return isNaN(x) ? null : x; }
    return raw.toLowerCase();
  }

  function sortBy(th) {
    var col = th.getAttribute("data-col");
    var type = th.getAttribute("data-type");
    // metrics sort best (highest) first on the first click; failures, length and cost lowest first; text A-Z
    var first = type === "num" && th.getAttribute("data-first") !== "asc" ? -1 : 1;
    if (state.col === col) state.dir = -state.dir; else { state.col = col; state.dir = first; }
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.forEach(function (r, i) { r._i = i; });
    rows.sort(function (a, b) {
      var va = sortValue(a, col, type), vb = sortValue(b, col, type);
      if (va === null && vb === null) return a._i - b._i;
      if (va === null) return 1;   // missing values always last
      if (vb === null) return -1;
      if (va < vb) return -state.dir;
      if (va > vb) return state.dir;
      return a._i - b._i;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    table.querySelectorAll("th.sortable").forEach(function (h) {
      h.removeAttribute("aria-sort");
      h.classList.remove("asc", "desc");
    });
    th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    th.classList.add(state.dir > 0 ? "asc" : "desc");
  }

  table.querySelectorAll("th.sortable").forEach(function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });

  // Baseline selector: delta = row value - baseline value, per metric column.
  var select = document.getElementById("baseline-select");
  data.rows.forEach(function (r) {
    var opt = document.createElement("option");
    opt.value = r.id;
    opt.textContent = r.label + (r.kind === "reported" ? " (reported)" : "");
    select.appendChild(opt);
  });

  function applyBaseline() {
    var id = select.value;
    var base = id ? document.getElementById(id) : null;
    Array.prototype.forEach.call(tbody.rows, function (row) {
      row.classList.toggle("is-baseline", row === base);
      row.querySelectorAll("td.metric").forEach(function (cell) {
        var out = cell.querySelector(".delta");
        out.textContent = "";
        out.className = "delta";
        if (!base || row === base) return;
        var col = cell.getAttribute("data-col");
        var b = sortValue(base, col, "num"), v = parseFloat(cell.getAttribute("data-v"));
        if (b === null || isNaN(v)) return;
        var d = v - b;
        out.textContent = (d > 0 ? "+" : d < 0 ? "\u2212" : "\u00b1") + Math.abs(d).toFixed(1);
        out.classList.add(d > 0.05 ? "up" : d < -0.05 ? "down" : "same");
      });
    });
  }
  select.addEventListener("change", applyBaseline);
  if (data.baseline) select.value = data.baseline;
  applyBaseline();

  var rep = document.getElementById("show-reported");
  if (rep) rep.addEventListener("change", function () { table.classList.toggle("hide-reported", !rep.checked); });
  var ci = document.getElementById("show-ci");
  ci.addEventListener("change", function () { table.classList.toggle("hide-ci", !ci.checked); });
})();
