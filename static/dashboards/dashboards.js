/* Draws the figures built server-side (json_script "tp-figures") with the plotly.js served
   from static files, and wires the "select all" checkboxes. */
(function () {
  "use strict";

  function drawFigures() {
    var source = document.getElementById("tp-figures");
    if (!source || !window.Plotly) {
      return;
    }
    var figures = JSON.parse(source.textContent);
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      var figure = figures[element.getAttribute("data-figure")];
      if (figure) {
        window.Plotly.newPlot(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
      }
    });
  }

  function wireSelectAll() {
    document.querySelectorAll("[data-select-all]").forEach(function (toggle) {
      toggle.addEventListener("change", function () {
        var name = toggle.getAttribute("data-select-all");
        toggle.form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
          box.checked = toggle.checked;
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawFigures();
    wireSelectAll();
  });
})();
