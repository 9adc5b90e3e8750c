// OAuth 2.0 Form Post Response Mode: submit the authorization response to the client.
document.addEventListener("DOMContentLoaded", function () {
  document.getElementById("form-post").submit();
});
