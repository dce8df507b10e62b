// Item browser of a run page. Item data arrives as a JSONL string in a <script src> file (browsers
// refuse fetch() on file://), loaded when its section is first opened. Everything from the items
// goes into the page as text (textContent), never as HTML.
(function () {
  "use strict";
  var PAGE = 25;
  var SHORT = 280;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function parseItems(text) {
    var out = [];
    text.split("\n").forEach(function (line, i) {
      if (!line.trim()) return;
      try {
        var item = JSON.parse(line);
        if (item === null || typeof item !== "object") throw new Error("not an object");
        out.push(item);
      } catch (err) {
        out.push({ item_id: "line " + (i + 1), task: "", status: "unreadable", values: {},
                   response: "", judge: { error: "this line of the items file is not valid JSON: " + err.message } });
      }
    });
    return out;
  }

  function fmtValue(v) {
    if (Array.isArray(v) && v.length === 2) return +v[1] === 1 ? fmtValue(+v[0]) : (+v[0]).toString() + "/" + (+v[1]).toString();
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
    return String(v);
  }

  function scoresCell(item) {
    var td = el("td", "scores");
    var values = item.values || {};
    Object.keys(values).filter(function (k) { return k.indexOf("/") < 0; }).forEach(function (k) {
      td.appendChild(el("div", null, k + " " + fmtValue(values[k])));
    });
    return td;
  }

  function responseCell(item) {
    var td = el("td", "response");
    var text = typeof item.response === "string" ? item.response : JSON.stringify(item.response);
    var box = el("div", "text", text.length > SHORT ? text.slice(0, SHORT) + "\u2026" : text);
    td.appendChild(box);
    if (text.length > SHORT) {
      var more = el("button", "more", "show all " + text.length + " characters");
      more.type = "button";
      more.addEventListener("click", function () {
        var full = box.classList.toggle("full");
        box.textContent = full ? text : text.slice(0, SHORT) + "\u2026";
        more.textContent = full ? "show less" : "show all " + text.length + " characters";
      });
      td.appendChild(more);
    }
    return td;
  }

  function judgeCell(item) {
    var td = el("td", "judge");
    var j = item.judge;
    if (!j) { td.textContent = "\u2013"; return td; }
    if (j.error_kind || j.error) td.appendChild(el("div", "error", (j.error_kind || "error") + (j.error ? ": " + j.error : "")));
    // Fields cut to the judge config's limit before judging: the judge saw only the start of them.
    var cut = Object.keys(j.truncated || {});
    if (cut.length) {
      td.appendChild(el("div", "truncated", "truncated for the judge: " + cut.map(function (k) {
        return k + " (" + j.truncated[k] + " characters)";
      }).join(", ")));
    }
    var constraints = (item.extra && item.extra.constraints) || [];
    var scores = j.scores || [];
    var reasons = j.reasons || [];
    // Judges score 0-10 (TRACE, ComplexBench) or 0/1 (CFBench): full marks is the scale's top.
    var top = scores.some(function (x) { return x > 1; }) ? 10 : 1;
    if (scores.length || reasons.length) {
      var ol = el("ol", "reasons");
      for (var i = 0; i < Math.max(scores.length, reasons.length); i++) {
        var li = el("li");
        if (i < scores.length) li.appendChild(el("b", scores[i] >= top ? "pass" : "fail", fmtValue(scores[i])));
        if (constraints[i]) li.appendChild(el("span", "constraint", " " + constraints[i]));
        if (reasons[i]) li.appendChild(el("div", "reason", reasons[i]));
        ol.appendChild(li);
      }
      td.appendChild(ol);
    }
    if (j.raw) {
      var d = el("details", "raw");
      d.appendChild(el("summary", null, "raw judge reply"));
      d.appendChild(el("pre", null, j.raw));
      td.appendChild(d);
    }
    return td;
  }

  function haystack(item) {
    var j = item.judge || {};
    return [item.item_id, item.task, item.response, j.raw, (j.reasons || []).join(" "), j.error]
      .filter(Boolean).join("\n").toLowerCase();
  }

  function setup(section, items) {
    var tbody = section.querySelector(".item-table tbody");
    var search = section.querySelector(".item-search");
    var status = section.querySelector(".item-status");
    var count = section.querySelector(".item-count");
    var prev = section.querySelector(".item-prev");
    var next = section.querySelector(".item-next");
    var page = 0, shown = items;

    function filter() {
      var q = search.value.trim().toLowerCase();
      var s = status.value;
      shown = items.filter(function (it) {
        if (s === "ok" && it.status !== "ok") return false;
        if (s === "failed" && it.status === "ok") return false;
        return !q || haystack(it).indexOf(q) >= 0;
      });
      page = 0;
      draw();
    }

    function draw() {
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      var start = page * PAGE;
      shown.slice(start, start + PAGE).forEach(function (it) {
        var tr = el("tr", it.status === "ok" ? "ok" : "failed");
        tr.appendChild(el("td", "id", it.item_id));
        tr.appendChild(el("td", null, it.task));
        tr.appendChild(el("td", "status", it.status));
        tr.appendChild(scoresCell(it));
        tr.appendChild(responseCell(it));
        tr.appendChild(judgeCell(it));
        tbody.appendChild(tr);
      });
      var end = Math.min(start + PAGE, shown.length);
      count.textContent = shown.length ? (start + 1) + "\u2013" + end + " of " + shown.length + " items" : "no items match";
      prev.disabled = page === 0;
      next.disabled = end >= shown.length;
    }

    search.addEventListener("input", filter);
    status.addEventListener("change", filter);
    prev.addEventListener("click", function () { if (page > 0) { page--; draw(); } });
    next.addEventListener("click", function () { if ((page + 1) * PAGE < shown.length) { page++; draw(); } });
    draw();
  }

  function load(section) {
    if (section.getAttribute("data-loaded")) return;
    section.setAttribute("data-loaded", "loading");
    var bench = section.getAttribute("data-bench");
    var src = section.getAttribute("data-src");
    if (!src) return;
    var s = document.createElement("script");
    s.src = src;
    s.onload = function () {
      // The items file holds the JSONL inside a function's comment (see render.py): read it back.
      var fn = (window.IOPO_ITEMS || {})[bench];
      var text = "";
      if (typeof fn === "function") {
        var src = Function.prototype.toString.call(fn);
        text = src.slice(src.indexOf("/*") + 3, src.lastIndexOf("*/") - 1);
      }
      section.setAttribute("data-loaded", "yes");
      setup(section, parseItems(text));
    };
    s.onerror = function () {
      section.setAttribute("data-loaded", "error");
      section.appendChild(el("p", "warn", "Could not load " + src + " (was the site copied without its runs/ folder?)"));
    };
    document.body.appendChild(s);
  }

  document.querySelectorAll("details.items").forEach(function (section) {
    section.addEventListener("toggle", function () { if (section.open) load(section); });
    if (section.open) load(section);
  });
})();
