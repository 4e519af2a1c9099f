"""An independent OAuth client (Python's authlib, from PyPI) against a running Gatehouse.

native ISSUER CLIENT_ID
    A native app: listens on a loopback port the OS picks, sends the user to
    /authorize with PKCE (S256), prints {"authorize": URL} and waits for the browser
    (driven by the Rust test) to come back; then exchanges the code, reads /userinfo
    and refreshes, printing what it got as one JSON line.
service ISSUER CLIENT_ID KEY_PEM
    A service with private_key_jwt: authlib's own assertions (an hour long, with iat
    and jti), client_credentials; prints the token response.

TLS is not verified (verify=False on every call): the test server's certificate is
self-signed.
"""

import http.server
import json
import sys
import urllib3

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

urllib3.disable_warnings()


def discover(issuer):
    res = requests.get(issuer + "/.well-known/openid-configuration", verify=False, timeout=10)
    res.raise_for_status()
    return res.json()


def native(issuer, client_id):
    meta = discover(issuer)
    came_back = {}

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            came_back["path"] = self.path
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"You may close this window.")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    port = server.server_address[1]
    redirect_uri = f"http://127.0.0.1:{port}/cb"
    session = OAuth2Session(
        client_id,
        redirect_uri=redirect_uri,
        scope="openid profile offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(48)
    url, _state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier
    )
    print(json.dumps({"authorize": url}), flush=True)
    server.timeout = 60
    server.handle_request()
    server.server_close()
    if "path" not in came_back:
        raise SystemExit("the browser never came back")
    token = session.fetch_token(
        meta["token_endpoint"],
        authorization_response=f"http://127.0.0.1:{port}{came_back['path']}",
        code_verifier=verifier,
        verify=False,
    )
    userinfo = session.get(meta["userinfo_endpoint"], verify=False).json()
    refreshed = session.refresh_token(
        meta["token_endpoint"], refresh_token=token["refresh_token"], verify=False
    )
    print(
        json.dumps(
            {
                "redirect_uri": redirect_uri,
                "userinfo": userinfo,
                "rotated": refreshed["refresh_token"] != token["refresh_token"],
            }
        ),
        flush=True,
    )


def service(issuer, client_id, key_path):
    meta = discover(issuer)
    with open(key_path) as f:
        key = f.read()
    token_endpoint = meta["token_endpoint"]
    session = OAuth2Session(
        client_id,
        key,
        scope="profile",
        token_endpoint_auth_method=PrivateKeyJWT(token_endpoint),
    )
    token = session.fetch_token(token_endpoint, grant_type="client_credentials", verify=False)
    print(json.dumps(token), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"native": native, "service": service}[mode](*args)
