// deployctl dashboard: live updates, charts and confirmations on top of server-rendered pages.
//
// The server renders every page whole; this script only
//  - keeps it live: one EventSource per tab; each "update" event carries the new HTML of
//    the list rows or of the Rollout's content, which replaces the old;
//  - draws each <div class="chart" data-chart="..."> with uPlot: the measurements, the
//    threshold (dashed red), the `for` windows (shaded), where the breach began and the
//    rollback (vertical lines);
//  - asks for confirmation before an action and sends it with the page's token.
(function () {
  "use strict";

  var body = document.body;
  var page = body.getAttribute("data-page");
  var live = document.getElementById("live");
  var banner = document.getElementById("banner");
  var tokenMeta = document.querySelector('meta[name="deployctl-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var charts = [];

  var COLOURS = {
    line: "#2563eb",
    threshold: "#dc2626",
    window: "rgba(245, 158, 11, 0.22)",
    breach: "#f59e0b",
    rollback: "#7f1d1d",
    Successful: "#16a34a",
    Failed: "#dc2626",
    Pending: "#f59e0b",
    Inconclusive: "#6b7280",
    Error: "#dc2626",
    Running: "#2563eb",
  };

  function say(text, kind) {
    banner.textContent = text;
    banner.className = "banner " + (kind || "note");
    banner.hidden = !text;
  }

  // ---------------------------------------------------------------- charts

  function verticalLine(u, x, colour, label) {
    var ctx = u.ctx;
    var px = Math.round(u.valToPos(x, "x", true));
    if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) return;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(px, u.bbox.top);
    ctx.lineTo(px, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.fillStyle = colour;
    ctx.font = 12 * devicePixelRatio + "px sans-serif";
    ctx.textAlign = px > u.bbox.left + u.bbox.width * 0.8 ? "right" : "left";
    var pad = ctx.textAlign === "right" ? -4 : 4;
    ctx.fillText(label, px + pad * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
    ctx.restore();
  }

  function horizontalLine(u, y, label, dash) {
    var ctx = u.ctx;
    var py = Math.round(u.valToPos(y, "y", true));
    ctx.save();
    ctx.strokeStyle = COLOURS.threshold;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash(dash.map(function (d) { return d * devicePixelRatio; }));
    ctx.beginPath();
    ctx.moveTo(u.bbox.left, py);
    ctx.lineTo(u.bbox.left + u.bbox.width, py);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = COLOURS.threshold;
    ctx.font = 12 * devicePixelRatio + "px sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(label, u.bbox.left + 4 * devicePixelRatio, py - 4 * devicePixelRatio);
    ctx.restore();
  }

  // Drawn under the measurements: the `for` windows, then the threshold lines.
  function drawUnder(u, data) {
    var ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = COLOURS.window;
    (data.windows || []).forEach(function (w) {
      var x0 = Math.max(u.valToPos(w[0], "x", true), u.bbox.left);
      var x1 = Math.min(u.valToPos(w[1], "x", true), u.bbox.left + u.bbox.width);
      ctx.fillRect(x0, u.bbox.top, Math.max(x1 - x0, 2 * devicePixelRatio), u.bbox.height);
    });
    ctx.restore();
    if (data.max !== null) horizontalLine(u, data.max, "max " + data.max, [8, 6]);
    if (data.min !== null) horizontalLine(u, data.min, "min " + data.min, [2, 4]);
  }

  function drawOver(u, data) {
    if (data.breachAt !== null && data.breachAt !== undefined) {
      verticalLine(u, data.breachAt, COLOURS.breach, "breach");
    }
    if (data.rollbackAt !== null && data.rollbackAt !== undefined) {
      verticalLine(u, data.rollbackAt, COLOURS.rollback, "rollback");
    }
  }

  function drawChart(element) {
    var data = JSON.parse(element.getAttribute("data-chart"));
    var xs = data.points.map(function (p) { return p[0]; });
    var ys = data.points.map(function (p) { return p[1]; });
    var values = ys.filter(function (v) { return v !== null; });
    var bounds = [data.max, data.min].filter(function (v) { return v !== null; });
    var top = Math.max.apply(null, values.concat(bounds).concat([0]));
    var bottom = Math.min.apply(null, values.concat(bounds).concat([0]));
    var span = Math.max(data.to - data.from, 30);
    var middle = (data.to + data.from) / 2;
    var series = [{}, {
      label: data.name,
      stroke: COLOURS.line,
      width: 2,
      spanGaps: false,
      points: { show: true, size: 8, fill: COLOURS.line },
    }];
    var width = Math.max(element.clientWidth || 0, 320);
    var options = {
      width: width,
      height: 220,
      series: series,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: function () { return [middle - span * 0.55, middle + span * 0.55]; } },
        y: { range: function () { return [bottom, top === bottom ? top + 1 : top + (top - bottom) * 0.15]; } },
      },
      axes: [{}, { size: 60 }],
      hooks: {
        drawAxes: [function (u) { drawUnder(u, data); }],
        draw: [function (u) { drawOver(u, data); }],
      },
    };
    var plot = new uPlot(options, [xs, ys], element);
    element._uplot = plot;
    element._chartData = data;
    charts.push(plot);
  }

  function drawCharts(root) {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    if (typeof uPlot === "undefined") return;
    Array.prototype.forEach.call(root.querySelectorAll(".chart[data-chart]"), drawChart);
  }

  // ---------------------------------------------------------------- live updates

  function target() {
    return page === "list" ? document.getElementById("rows") : document.getElementById("content");
  }

  function connect() {
    var url = body.getAttribute("data-stream");
    if (!url || typeof EventSource === "undefined") return;
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      live.textContent = "live";
      live.className = "live on";
    });
    source.addEventListener("error", function () {
      live.textContent = "reconnecting";
      live.className = "live off";
    });
    source.addEventListener("update", function (event) {
      var update = JSON.parse(event.data);
      var where = target();
      if (!where) return;
      where.innerHTML = update.html;
      drawCharts(where);
      body.setAttribute("data-updates", String(Number(body.getAttribute("data-updates") || 0) + 1));
    });
  }

  // ---------------------------------------------------------------- actions

  var dialog = document.getElementById("confirm");
  var pending = null;

  function send(form) {
    var label = form.getAttribute("data-label");
    say(label + ": sent, waiting for the controller to act", "note");
    fetch(form.getAttribute("data-post"), {
      method: "POST",
      headers: { "X-Deployctl-Token": token, Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) { return response.json(); })
      .then(function (result) { say(result.message, result.ok ? "ok" : "bad"); })
      .catch(function (error) { say(label + " failed: " + error, "bad"); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-post") || !dialog || !dialog.showModal) return;
    event.preventDefault();
    pending = form;
    document.getElementById("confirm-title").textContent =
      form.getAttribute("data-label") + " " + (document.getElementById("title") || {}).textContent + "?";
    document.getElementById("confirm-text").textContent = form.getAttribute("data-confirm");
    dialog.returnValue = "";
    dialog.showModal();
  });

  if (dialog) {
    dialog.addEventListener("close", function () {
      var form = pending;
      pending = null;
      if (form && dialog.returnValue === "confirm") send(form);
    });
  }

  // Filters on the list page apply as soon as they change.
  Array.prototype.forEach.call(document.querySelectorAll("form.filters select"), function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  drawCharts(document);
  connect();
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { drawCharts(document.getElementById("content")); }, 200);
  });
})();
