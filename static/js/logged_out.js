// Front-Channel Logout 1.0 §3: once every relying party's logout iframe has loaded (or after
// a few seconds, should one never answer), continue to the post_logout_redirect_uri.
(function () {
  var next = document.getElementById("continue");
  var frames = document.querySelectorAll("iframe.frontchannel");
  var status = document.getElementById("frontchannel-status");
  var left = frames.length;
  var done = false;
  function finish() {
    if (done) { return; }
    done = true;
    if (status) { status.textContent = "Signed out of every application."; }
    if (next) { window.location.assign(next.href); }
  }
  frames.forEach(function (frame) {
    frame.addEventListener("load", function () {
      left -= 1;
      if (left <= 0) { finish(); }
    });
    frame.src = frame.getAttribute("data-src");
  });
  if (left === 0) { finish(); }
  window.setTimeout(finish, 4000);
})();
