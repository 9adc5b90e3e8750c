// Forms that failed: focus moves to the error summary, so that keyboard and screen reader
// users start from the list of problems (WCAG 2.2 §3.3.1); its links focus the field they
// name, its label scrolled into view with it. An external file: the CSP forbids inline script.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.getElementById("error-summary");
  if (!summary) { return; }
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) { return; }
    event.preventDefault();
    var label = document.querySelector("label[for='" + field.id + "']") ||
      (field.closest("fieldset") && field.closest("fieldset").querySelector("legend"));
    (label || field).scrollIntoView();
    field.focus({ preventScroll: true });
  });
});
