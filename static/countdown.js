// Keeps the session page's "Discharge possible from 11:42 (in 1 h 58 min)" current without a reload.
// The server renders the time; this only refreshes the "in ..." part. Pages work without it.
(function () {
  "use strict";
  function waitText(ms) {
    var minutes = Math.ceil(Math.max(0, ms) / 60000);
    if (minutes < 1) return "less than a minute";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return [hours ? hours + " h" : "", minutes ? minutes + " min" : ""].join(" ").trim();
  }
  function tick() {
    document.querySelectorAll("[data-discharge-at] .countdown").forEach(function (el) {
      var at = Date.parse(el.closest("[data-discharge-at]").getAttribute("data-discharge-at"));
      if (isNaN(at)) return;
      var left = at - Date.now();
      el.textContent = left > 0 ? "in " + waitText(left) : "now";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 20000);
  });
})();
