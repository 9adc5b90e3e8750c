// Passkeys (WebAuthn Level 3) in the browser: the server's options (JSON, binary fields in
// base64url) go to navigator.credentials, and the credential comes back as JSON.
//   form[data-passkey=create]  add a passkey: fills in the credential, then submits
//   form[data-passkey=get]     second factor: the same with an assertion
//   #passkey-sign-in           the sign-in page: a button, and the username field's
//                              autofill (conditional mediation), posting JSON
// An external file: the CSP forbids inline script. Errors of the forms come back from the
// server in the error summary; the sign-in page shows them in #passkey-error.
(function () {
  "use strict";

  function decode(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function encode(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: decode(d.id) });
    });
  }

  function creationOptions(json) {
    var o = JSON.parse(json);
    o.challenge = decode(o.challenge);
    o.user = Object.assign({}, o.user, { id: decode(o.user.id) });
    o.excludeCredentials = descriptors(o.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = JSON.parse(json);
    o.challenge = decode(o.challenge);
    o.allowCredentials = descriptors(o.allowCredentials);
    return o;
  }

  // PublicKeyCredential -> the JSON py_webauthn reads (WebAuthn L3 §5.1.8 toJSON's shape).
  function toJSON(credential) {
    var r = credential.response;
    var response = { clientDataJSON: encode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = encode(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = encode(r.authenticatorData);
      response.signature = encode(r.signature);
      if (r.userHandle) { response.userHandle = encode(r.userHandle); }
    }
    return {
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults() : {}
    };
  }

  // The add-a-passkey and second-factor forms.
  function wireForm(form) {
    var busy = false;
    form.addEventListener("submit", function (event) {
      if (busy) { return; }
      // No name yet: the server says so first, before a passkey exists on the device.
      var name = form.elements.name;
      if (name && !name.value.trim()) { return; }
      event.preventDefault();
      var kind = form.getAttribute("data-passkey");
      var options = form.getAttribute("data-options");
      var ceremony = kind === "create"
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      busy = true;
      ceremony.then(function (credential) {
        form.elements.credential.value = JSON.stringify(toJSON(credential));
      }, function (error) {
        form.elements.client_error.value = (error && error.name) || "Error";
      }).then(function () { form.submit(); });
    });
  }

  // The sign-in page: passwordless, usernameless.
  function wireSignIn(box) {
    var button = document.getElementById("passkey-button");
    var message = document.getElementById("passkey-error");
    var login = document.querySelector("form input[name=csrf_token]");
    var token = login ? login.value : "";
    var nextField = document.querySelector("form input[name=next]");
    var pending = null;  // the AbortController of the conditional request

    function post(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify(body || {})
      });
    }

    function show(text) {
      message.textContent = text;
      message.hidden = false;
    }

    function finish(credential) {
      return post(box.getAttribute("data-verify-url"), {
        credential: toJSON(credential),
        next: nextField ? nextField.value : ""
      }).then(function (answer) {
        return answer.json().then(function (data) {
          if (answer.ok && data.location) {
            window.location.assign(data.location);
          } else {
            // Our refusals carry a message; others (an expired CSRF token) do not.
            show(data.message || "This page expired. Please reload it and try again.");
          }
        });
      });
    }

    function options() {
      return post(box.getAttribute("data-options-url")).then(function (answer) {
        if (!answer.ok) { throw new Error("options"); }
        return answer.text();
      });
    }

    function signIn(mediation) {
      var request = { publicKey: null };
      if (mediation) {
        pending = new AbortController();
        request.mediation = mediation;
        request.signal = pending.signal;
      }
      return options().then(function (json) {
        request.publicKey = requestOptions(json);
        return navigator.credentials.get(request);
      }).then(function (credential) {
        if (credential) { return finish(credential); }
      });
    }

    box.hidden = false;
    button.addEventListener("click", function () {
      if (pending) { pending.abort(); pending = null; }
      message.hidden = true;
      signIn(null).catch(function (error) {
        if (error && error.name === "AbortError") { return; }
        show("The passkey request was cancelled or timed out. Please try again.");
      });
    });

    var username = document.getElementById("username");
    var autofill = username && /\bwebauthn\b/.test(username.getAttribute("autocomplete") || "");
    if (autofill && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (available) {
          signIn("conditional").catch(function () { /* dismissed or replaced: no message */ });
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.PublicKeyCredential || !navigator.credentials) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-passkey]"), wireForm);
    var box = document.getElementById("passkey-sign-in");
    if (box) { wireSignIn(box); }
  });
})();
