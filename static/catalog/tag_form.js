/* Tag form: show the code that will be suggested from the Chinese name (pinyin +
   naming rule) while the code field is empty. No external assets. */
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var name = document.getElementById("id_name");
    var code = document.getElementById("id_code");
    var brand = document.getElementById("id_brand");
    var category = document.getElementById("id_category");
    if (!name || !code) { return; }
    var url = code.getAttribute("data-suggest-url") || "/api/catalog/tags/suggest-code/";
    var timer = null;
    function refresh() {
      if (!name.value.trim()) { code.placeholder = ""; return; }
      var params = new URLSearchParams({ name: name.value.trim() });
      if (brand && brand.value) { params.set("brand_id", brand.value); }
      if (category && category.value) { params.set("category", category.value); }
      fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data && data.code) { code.placeholder = data.code; } })
        .catch(function () { /* the server suggests the code on save anyway */ });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
    [name, brand, category].forEach(function (el) {
      if (el) { el.addEventListener("input", schedule); el.addEventListener("change", schedule); }
    });
    refresh();
  });
})();
