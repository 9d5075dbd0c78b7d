/* Wires the "select all" checkboxes (the figures are drawn by tagportal/figures.js). */
(function () {
  "use strict";

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
    wireSelectAll();
  });
})();
