/* Propose page: show only the part of the form that the chosen kind of change uses. */
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var kind = document.getElementById("id_kind");
    if (!kind) { return; }
    function refresh() {
      document.querySelectorAll("[data-kinds]").forEach(function (el) {
        var kinds = el.getAttribute("data-kinds").split(" ");
        el.hidden = kinds.indexOf(kind.value) === -1;
      });
    }
    kind.addEventListener("change", refresh);
    refresh();
  });
})();
