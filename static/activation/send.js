// The send form shows only the fields of the chosen account's channel kind.
(function () {
  "use strict";
  function ready() {
    var select = document.getElementById("id_account");
    var data = document.getElementById("tp-account-kinds");
    if (!select || !data) { return; }
    var kinds = JSON.parse(data.textContent);
    var rows = document.querySelectorAll("#tp-send-form [data-kinds]");
    function apply() {
      var kind = kinds[select.value] || "";
      rows.forEach(function (row) {
        var wanted = row.getAttribute("data-kinds").split(" ");
        row.hidden = Boolean(kind) && wanted.indexOf(kind) === -1;
      });
    }
    select.addEventListener("change", apply);
    apply();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
})();
