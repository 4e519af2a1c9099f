// Passkeys (DESIGN §17): the browser's half of the WebAuthn ceremonies. Served from
// /static under the strict CSP (no inline script). Each form it drives carries its
// options URL in `data-options` and sends the result as a normal form POST, so the
// server answers with a page or a redirect as for any other form.
//
//   #passkey-signin    sign in (first step, or second factor); with `data-conditional`
//                      the browser also offers passkeys in the username field's autofill
//   #passkey-register  create a passkey (account page, or required during sign-in)
"use strict";

(function () {
  function fromB64u(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function hidden(form, name) {
    return form.querySelector('input[name="' + name + '"]');
  }

  function showError(form, message) {
    var el = form.querySelector("#passkey-error");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
  }

  // The options for this form's ceremony, from the server (tx and csrf as a form).
  function fetchOptions(form) {
    var body = new URLSearchParams();
    ["tx", "csrf"].forEach(function (name) {
      var input = hidden(form, name);
      if (input) body.append(name, input.value);
    });
    return fetch(form.dataset.options, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    }).then(function (res) {
      if (!res.ok) throw new Error("options " + res.status);
      return res.json();
    });
  }

  function sendForm(form, credential) {
    hidden(form, "credential").value = JSON.stringify(credential);
    form.submit();
  }

  // ---- signing in ----

  function assertionOf(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64u(r.authenticatorData),
        clientDataJSON: toB64u(r.clientDataJSON),
        signature: toB64u(r.signature),
        userHandle: r.userHandle ? toB64u(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function requestOptions(options, signal, conditional) {
    var pk = options.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) {
      c.id = fromB64u(c.id);
    });
    var request = { publicKey: pk, signal: signal };
    if (conditional) request.mediation = "conditional";
    return request;
  }

  function signIn(form) {
    var pending = null;

    function ask(conditional) {
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      return fetchOptions(form)
        .then(function (options) {
          return navigator.credentials.get(
            requestOptions(options, controller.signal, conditional)
          );
        })
        .then(function (cred) {
          if (cred) sendForm(form, assertionOf(cred));
        })
        .catch(function (e) {
          if (controller.signal.aborted || (e && e.name === "AbortError")) return;
          if (!conditional) {
            showError(form, "No passkey was used. Try again, or sign in another way.");
          }
        });
    }

    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      ask(false);
    });
    if (form.dataset.conditional && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (available) ask(true);
      });
    }
  }

  // ---- registering ----

  function attestationOf(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64u(r.attestationObject),
        clientDataJSON: toB64u(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined,
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function creationOptions(options) {
    var pk = options.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    pk.user.id = fromB64u(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) {
      c.id = fromB64u(c.id);
    });
    return { publicKey: pk };
  }

  function register(form) {
    var busy = false;
    form.addEventListener("submit", function (event) {
      if (hidden(form, "credential").value) return;
      event.preventDefault();
      if (busy) return;
      busy = true;
      fetchOptions(form)
        .then(function (options) {
          return navigator.credentials.create(creationOptions(options));
        })
        .then(function (cred) {
          sendForm(form, attestationOf(cred));
        })
        .catch(function (e) {
          busy = false;
          var message =
            e && e.name === "InvalidStateError"
              ? "This device already holds a passkey for your account."
              : "No passkey was created. Try again.";
          showError(form, message);
        });
    });
  }

  function start() {
    if (!window.PublicKeyCredential) {
      document.querySelectorAll("#passkey-register, #passkey-signin").forEach(function (form) {
        showError(form, "This browser cannot use passkeys.");
      });
      return;
    }
    var signin = document.getElementById("passkey-signin");
    if (signin) signIn(signin);
    var reg = document.getElementById("passkey-register");
    if (reg) register(reg);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
