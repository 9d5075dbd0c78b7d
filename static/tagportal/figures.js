/* Draws the figures a page built server-side (json_script "tp-figures") into its
   [data-figure] elements, with the plotly.js served from static files. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
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
  });

  // A figure drawn before the admin's navigation sidebar took its place is wider than
  // its box: fit every figure of the page to its box once the page has laid out.
  window.addEventListener("load", function () {
    if (!window.Plotly) {
      return;
    }
    document.querySelectorAll(".js-plotly-plot").forEach(function (element) {
      window.Plotly.Plots.resize(element);
    });
  });
})();
