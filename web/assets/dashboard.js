// The compliance dashboard: each <canvas data-chart="ID"> is drawn by the vendored Chart.js
// from the JSON data block with that id ({kind, stacked, labels, series: [{label, data}]}).
"use strict";
(function () {
  var colours = ["#2f6fb3", "#d9822b", "#3a8a4f", "#a4508b", "#6c757d", "#b5a300", "#8c564b"];
  function draw() {
    if (typeof Chart === "undefined") { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var block = document.getElementById(canvas.getAttribute("data-chart"));
      if (!block) { return; }
      var d = JSON.parse(block.textContent);
      new Chart(canvas, {
        type: d.kind,
        data: {
          labels: d.labels,
          datasets: d.series.map(function (s, i) {
            var c = colours[i % colours.length];
            return { label: s.label, data: s.data, backgroundColor: c, borderColor: c, pointRadius: 0 };
          })
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: { x: { stacked: d.stacked }, y: { stacked: d.stacked, beginAtZero: true } },
          plugins: { legend: { display: d.series.length > 1 } }
        }
      });
      canvas.setAttribute("data-drawn", "true");
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
