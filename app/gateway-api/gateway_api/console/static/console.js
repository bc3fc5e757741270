// The Edge console's only script (no inline script anywhere: the CSP forbids it).
// Charts: every element with data-chart="<id>" is drawn with uPlot from the JSON in
// <script type="application/json" id="<id>">, on load and after each htmx swap.
// Forms with data-confirm="..." ask before they are sent.
(function () {
  "use strict";
  var palette = ["#2457c5", "#98a2b3", "#d92d20", "#16794c", "#a15c07", "#7a5af8"];

  function draw(el) {
    if (el.dataset.drawn === "1" || typeof uPlot === "undefined") return;
    var source = document.getElementById(el.dataset.chart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var series = [{}];
    var columns = [data.x];
    (data.series || []).forEach(function (s, i) {
      series.push({ label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: true });
      columns.push(s.values);
    });
    var width = Math.max(el.clientWidth || 600, 300);
    var opts = {
      width: width,
      height: parseInt(el.dataset.height || "220", 10),
      series: series,
      scales: { x: { time: data.time !== false } },
      axes: [{}, { size: 60 }],
      legend: { show: true },
    };
    el.dataset.drawn = "1";
    new uPlot(opts, columns, el);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { drawAll(ev.target); });
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  }, true);
})();
