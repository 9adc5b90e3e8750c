// Password fields (templates/_new_password.html): a show-password toggle and a live count of
// characters against the minimum. Without this file the fields are plain password inputs.
// External file: the CSP forbids inline script. Safe to load twice (each field binds once).
(function () {
  function bind() {
    document.querySelectorAll("button[data-show-password]").forEach(function (button) {
      if (button.dataset.bound) { return; }
      var input = document.getElementById(button.dataset.showPassword);
      if (!input) { return; }
      button.dataset.bound = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        button.setAttribute("aria-pressed", show ? "true" : "false");
      });
      // The password is never left visible in a field the browser may restore or submit.
      if (input.form) {
        input.form.addEventListener("submit", function () {
          input.type = "password";
          button.setAttribute("aria-pressed", "false");
        });
      }
    });
    document.querySelectorAll("[data-password-count]").forEach(function (out) {
      if (out.dataset.bound) { return; }
      var input = document.getElementById(out.dataset.passwordCount);
      if (!input) { return; }
      out.dataset.bound = "1";
      var min = parseInt(out.dataset.min, 10) || 8;
      var timer = null;
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () {
          // Code points after NFKC, as the server counts them.
          var n = Array.from(input.value.normalize("NFKC")).length;
          out.hidden = n === 0;
          out.textContent = n >= min
            ? n + " characters: long enough."
            : n + " of at least " + min + " characters.";
        }, 400);
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", bind);
  } else {
    bind();
  }
})();
