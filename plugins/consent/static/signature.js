// Drawn signature for the consent form. Without JavaScript the typed name alone signs.
(function () {
  "use strict";
  var pad = document.querySelector("[data-signature-pad]");
  if (!pad) { return; }
  var canvas = pad.querySelector("canvas");
  var field = document.querySelector("input[name=signature_png]");
  var clear = pad.querySelector("[data-signature-clear]");
  var ctx = canvas.getContext("2d");
  var drawing = false, drawn = false;
  pad.hidden = false;

  function size() {
    var ratio = window.devicePixelRatio || 1;
    var rect = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(rect.width * ratio));
    canvas.height = Math.max(1, Math.round(rect.height * ratio));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.lineWidth = 2.2; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#1b2a33";
    drawn = false; field.value = "";
  }
  function point(e) {
    var rect = canvas.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  }
  canvas.addEventListener("pointerdown", function (e) {
    drawing = true; canvas.setPointerCapture(e.pointerId);
    var p = point(e); ctx.beginPath(); ctx.moveTo(p.x, p.y); e.preventDefault();
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!drawing) { return; }
    var p = point(e); ctx.lineTo(p.x, p.y); ctx.stroke(); drawn = true; e.preventDefault();
  });
  function end() {
    if (drawing && drawn) { field.value = canvas.toDataURL("image/png"); }
    drawing = false;
  }
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear.addEventListener("click", function () { ctx.clearRect(0, 0, canvas.width, canvas.height); drawn = false; field.value = ""; });
  size();
}());
