// "Copy codes" buttons (templates/account/recovery_codes.html): data-copy names the element
// whose text goes to the clipboard. Shown only where the Clipboard API exists. An external
// file: the CSP forbids inline script.
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) { return; }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      var text = Array.prototype.map.call(source.querySelectorAll("code"), function (c) {
        return c.textContent;
      }).join("\n");
      navigator.clipboard.writeText(text).then(function () {
        if (status) { status.textContent = "Copied to the clipboard."; }
      });
    });
  });
});
