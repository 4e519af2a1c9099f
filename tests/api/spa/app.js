// The app: a UserManager against the Gatehouse the test started (config.js names it).
// It signs in by redirect, shows the profile userinfo returned, and refreshes silently
// (oidc-client-ts spends the refresh token when it holds one).
"use strict";

// The library's own warnings and errors go to the console, where index.html collects
// the errors.
oidc.Log.setLogger(console);
oidc.Log.setLevel(oidc.Log.WARN);

var manager = new oidc.UserManager({
  authority: window.SPA_CONFIG.authority,
  client_id: window.SPA_CONFIG.client_id,
  redirect_uri: location.origin + "/callback.html",
  response_type: "code",
  scope: "openid profile email offline_access",
  loadUserInfo: true,
  // The test decides when to refresh.
  automaticSilentRenew: false,
});

function show(id, text) {
  document.getElementById(id).textContent = text == null ? "" : String(text);
}

function claimsOf(jwt) {
  var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
}

// A token is never shown, only the start of its SHA-256.
async function fingerprint(token) {
  var digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest).slice(0, 8))
    .map(function (b) { return b.toString(16).padStart(2, "0"); })
    .join("");
}

async function render(user) {
  show("sub", user.profile.sub);
  show("username", user.profile.preferred_username);
  show("email", user.profile.email);
  var access = claimsOf(user.access_token);
  show("token-sub", access.sub);
  show("token-exp", access.exp);
  show("token-id", await fingerprint(user.access_token));
}

function fail(step, err) {
  var what = err && err.error
    ? err.error + ": " + (err.error_description || "")
    : (err && err.name) + ": " + (err && err.message);
  show("failure", step + " failed: " + what);
  document.body.dataset.state = step + "-failed";
}

var refreshes = 0;

document.getElementById("sign-in").addEventListener("click", function () {
  manager.signinRedirect().catch(function (err) { fail("sign-in", err); });
});

document.getElementById("refresh").addEventListener("click", function () {
  document.body.dataset.state = "refreshing";
  manager.signinSilent().then(
    async function (user) {
      await render(user);
      refreshes += 1;
      show("refreshes", refreshes);
      document.body.dataset.state = "refreshed-" + refreshes;
    },
    function (err) { fail("refresh", err); }
  );
});

if (location.pathname === "/callback.html") {
  manager.signinRedirectCallback().then(
    async function (user) {
      await render(user);
      document.body.dataset.state = "signed-in";
    },
    function (err) { fail("callback", err); }
  );
} else {
  document.body.dataset.state = "ready";
}
