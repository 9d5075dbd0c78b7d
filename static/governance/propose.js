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
    categoryHint();
  });

  /* Beside the category: "Suggested category: … (similar tags: …)" from the tag's name,
     description and definition; one click applies it. */
  function categoryHint() {
    var hint = document.getElementById("tp-category-hint");
    var category = document.getElementById("id_category");
    if (!hint || !category) { return; }
    var row = category.closest(".form-row");
    if (row) { row.appendChild(hint); }
    var inputs = ["id_name", "id_description", "id_definition", "id_name_en"].map(function (id) {
      return document.getElementById(id);
    });
    var timer = null;
    function value(i) { return inputs[i] ? inputs[i].value : ""; }
    function ask() {
      var name = value(0).trim();
      if (!name) { hint.hidden = true; return; }
      var params = new URLSearchParams({name: name, description: value(1), name_en: value(3),
                                        exclude: hint.getAttribute("data-exclude") || ""});
      try { if (value(2).trim()) { JSON.parse(value(2)); params.set("definition", value(2)); } } catch (e) { /* not JSON yet */ }
      fetch(hint.getAttribute("data-url") + "?" + params.toString(), {credentials: "same-origin",
                                                                         headers: {Accept: "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { show(body && body.categories ? body.categories : []); })
        .catch(function () { hint.hidden = true; });
    }
    function show(categories) {
      hint.textContent = "";
      var best = categories[0];
      if (!best) { hint.hidden = true; return; }
      var link = document.createElement("a");
      link.href = "#";
      link.id = "tp-category-apply";
      link.setAttribute("data-category", best.id);
      link.title = hint.getAttribute("data-apply");
      link.textContent = best.path;
      link.addEventListener("click", function (event) {
        event.preventDefault();
        category.value = String(best.id);
        category.dispatchEvent(new Event("change", {bubbles: true}));
      });
      hint.appendChild(document.createTextNode(hint.getAttribute("data-label") + " "));
      hint.appendChild(link);
      var names = (best.similar || []).map(function (t) { return t.name; }).join("、");
      if (names) {
        hint.appendChild(document.createTextNode(" (" + hint.getAttribute("data-similar") + " " + names + ")"));
      }
      hint.hidden = false;
    }
    inputs.forEach(function (input) {
      if (input) {
        input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(ask, 400); });
      }
    });
    ask();
  }
})();
