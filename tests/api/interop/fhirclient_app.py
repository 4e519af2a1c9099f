"""The SMART on FHIR Python client (`fhirclient` from PyPI) as an app, driven by
tests/api/smart/fhirclient.rs against Gatehouse and the tests' FHIR server.

    fhirclient_app.py app FHIR_BASE CLIENT_ID REDIRECT_URI SCOPE [LAUNCH]
        prints {"authorize": URL}; reads the callback URL the browser reached on stdin;
        exchanges the code, reads the patient in context, refreshes; prints the result.
    fhirclient_app.py backend FHIR_BASE CLIENT_ID SCOPE ASSERTION
        SMART Backend Services: client_credentials with the client assertion given;
        searches Patient?name=ana; prints the ids found.

Gatehouse's TLS certificate is verified against the file REQUESTS_CA_BUNDLE names (the
test server's own self-signed one); the FHIR server is plain HTTP on loopback.
"""

import json
import sys

from fhirclient import client
from fhirclient.models import patient


def smart(settings):
    return client.FHIRClient(settings=settings, save_func=lambda state: None)


def app(base, client_id, redirect_uri, scope, launch=None):
    settings = {
        "app_id": client_id,
        "api_base": base,
        "redirect_uri": redirect_uri,
        "scope": scope,
    }
    if launch:
        settings["launch_token"] = launch
    c = smart(settings)
    print(json.dumps({"authorize": c.authorize_url}), flush=True)
    callback = sys.stdin.readline().strip()
    c.handle_callback(callback)
    context = dict(c.launch_context or {})
    first = c.server.auth.access_token
    me = patient.Patient.read(c.patient_id, c.server)
    name = me.name[0]
    refreshed = c.reauthorize()
    again = patient.Patient.read(c.patient_id, c.server)
    print(
        json.dumps(
            {
                "patient_id": c.patient_id,
                "name": " ".join(name.given + [name.family]),
                "context": {k: v for k, v in context.items() if k != "refresh_token"},
                "refreshed": refreshed and c.server.auth.access_token != first,
                "read_after_refresh": again.id,
            }
        ),
        flush=True,
    )


def backend(base, client_id, scope, assertion):
    c = smart(
        {"app_id": client_id, "api_base": base, "scope": scope, "jwt_token": assertion}
    )
    # No patient is asked for: a backend service works on the whole server.
    c.wants_patient = False
    c.prepare()
    c.authorize()
    found = patient.Patient.where(struct={"name": "ana"}).perform_resources(c.server)
    print(json.dumps({"ids": sorted(p.id for p in found)}), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"app": app, "backend": backend}[mode](*args)
